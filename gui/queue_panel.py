"""The queue panel: its buttons, the table of images, and what it says while empty.

Layout and view state only (what is selected, which actions apply to it); what the actions
do is the controller's, wired up by the window.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .queue_model import QueueItem, QueueModel, Status

EMPTY_TEXT = (
    "<p style='font-size: 15pt'><b>Drop images or folders here</b></p>"
    "<p>or paste an image or copied files with Ctrl+V,<br>or add them with the buttons below.</p>"
    "<p>Pick a model on the right, then press Start.</p>"
)


class StatusDelegate(QStyledItemDelegate):
    """Draws a running row's status as a progress bar."""

    def __init__(self, model: QueueModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = model

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        item = self._model.item(index.row())
        if item.status is not Status.RUNNING:
            return super().paint(painter, option, index)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(4, 8, -4, -8)  # type: ignore[attr-defined]
        bar.minimum, bar.maximum, bar.progress = 0, 100, item.percent
        bar.text = f"{item.percent}%"
        bar.textVisible = True
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        style = option.widget.style() if option.widget else QApplication.style()  # type: ignore[attr-defined]
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class QueuePanel(QWidget):
    add_files_requested = Signal()
    add_folder_requested = Signal()
    remove_requested = Signal(list)  # rows
    clear_finished_requested = Signal()
    redo_requested = Signal(list)  # keys
    open_requested = Signal(int)  # key of a finished row: open its result
    reveal_requested = Signal(int)  # key: show the result selected in its folder
    open_folder_requested = Signal(int)  # key: open the folder holding the result
    current_changed = Signal(object)  # key of the current row, or None

    def __init__(self, model: QueueModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._running = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._create_actions()
        layout.addLayout(self._buttons())

        self.stack = QStackedWidget()
        self.empty_state = self._empty_state()
        self.view = self._table()
        self.stack.addWidget(self.empty_state)
        self.stack.addWidget(self.view)
        layout.addWidget(self.stack, 1)

        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset):
            signal.connect(self._show_empty_state)
        model.dataChanged.connect(lambda *_: self.update_actions())
        self._show_empty_state()

    # --- layout --------------------------------------------------------------------------------

    def _create_actions(self) -> None:
        def action(text: str, name: str, tip: str, keys: list[QKeySequence] = ()) -> QAction:
            act = QAction(text, self)
            act.setObjectName(name)
            act.setToolTip(tip)
            act.setShortcuts(list(keys))
            self.addAction(act)
            return act

        std = QKeySequence.StandardKey
        self.remove_action = action(
            "Remove", "removeAction", "Remove the selected images from the queue (Delete)",
            [QKeySequence(std.Delete)],
        )  # fmt: skip
        self.open_action = action(
            "Open result", "openResultAction", "Open the upscaled image (or double-click the row)"
        )
        self.reveal_action = action(
            "Show in folder", "showInFolderAction", "Show the upscaled file in its folder"
        )
        self.open_folder_action = action(
            "Open output folder", "openOutputFolderAction", "Open the folder the result is in"
        )
        self.redo_action = action(
            "Upscale again",
            "redoAction",
            "Upscale the selected images again with the current model and options; "
            "earlier results are kept",
        )
        # Delete removes rows only where the queue has the focus, not from a combo box.
        self.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.remove_action.triggered.connect(
            lambda: self.remove_requested.emit(self.selected_rows())
        )
        self.open_action.triggered.connect(lambda: self._emit_for_current(self.open_requested))
        self.reveal_action.triggered.connect(lambda: self._emit_for_current(self.reveal_requested))
        self.open_folder_action.triggered.connect(
            lambda: self._emit_for_current(self.open_folder_requested)
        )
        self.redo_action.triggered.connect(
            lambda: self.redo_requested.emit([i.key for i in self.selected_items()])
        )

    def _buttons(self) -> QHBoxLayout:
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add files…", objectName="addButton")
        self.add_button.setToolTip("Add images (Ctrl+O); or drop files and folders, or paste")
        self.add_folder_button = QPushButton("Add folder…", objectName="addFolderButton")
        self.remove_button = QPushButton("Remove", objectName="removeButton")
        self.remove_button.setToolTip(self.remove_action.toolTip())
        self.clear_done_button = QPushButton("Clear finished", objectName="clearDoneButton")
        self.clear_done_button.setToolTip("Remove the finished rows (their files stay)")
        self.add_button.clicked.connect(self.add_files_requested)
        self.add_folder_button.clicked.connect(self.add_folder_requested)
        self.remove_button.clicked.connect(self.remove_action.trigger)
        self.clear_done_button.clicked.connect(self.clear_finished_requested)
        for button in (
            self.add_button,
            self.add_folder_button,
            self.remove_button,
            self.clear_done_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.redo_button = self._tool_button(self.redo_action, "redoButton")
        self.reveal_button = self._tool_button(self.reveal_action, "showInFolderButton")
        self.open_folder_button = self._tool_button(self.open_folder_action, "openFolderButton")
        for button in (self.redo_button, self.reveal_button, self.open_folder_button):
            buttons.addWidget(button)
        return buttons

    def _tool_button(self, action: QAction, name: str) -> QToolButton:
        button = QToolButton(objectName=name)
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        return button

    def _empty_state(self) -> QWidget:
        page = QWidget(objectName="emptyQueue")
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        self.empty_label = QLabel(EMPTY_TEXT, objectName="emptyQueueLabel")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        layout.addWidget(self.empty_label)
        row = QHBoxLayout()
        row.addStretch(1)
        self.empty_add_button = QPushButton("Add files…", objectName="emptyAddButton")
        self.empty_add_folder_button = QPushButton("Add folder…", objectName="emptyAddFolder")
        self.empty_add_button.clicked.connect(self.add_files_requested)
        self.empty_add_folder_button.clicked.connect(self.add_folder_requested)
        row.addWidget(self.empty_add_button)
        row.addWidget(self.empty_add_folder_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)
        return page

    def _table(self) -> QTableView:
        view = QTableView(objectName="queueView")
        view.setModel(self.model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        view.setIconSize(QSize(48, 48))
        view.verticalHeader().setVisible(False)
        view.verticalHeader().setDefaultSectionSize(56)
        view.setShowGrid(False)
        view.setAlternatingRowColors(True)
        view.setWordWrap(True)  # a failed row's reason takes the row's two lines before eliding
        header = view.horizontalHeader()
        header.setSectionResizeMode(QueueModel.IMAGE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(QueueModel.SIZE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(QueueModel.STATUS, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(QueueModel.STATUS, 260)
        view.setItemDelegateForColumn(QueueModel.STATUS, StatusDelegate(self.model, view))
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._context_menu)
        view.doubleClicked.connect(self._on_double_click)
        view.selectionModel().currentRowChanged.connect(self._on_current_row)
        view.selectionModel().selectionChanged.connect(lambda *_: self.update_actions())
        return view

    # --- view state ----------------------------------------------------------------------------

    def selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.view.selectionModel().selectedRows()})

    def selected_items(self) -> list[QueueItem]:
        return [self.model.item(row) for row in self.selected_rows()]

    def current_item(self) -> QueueItem | None:
        index = self.view.currentIndex()
        return self.model.item(index.row()) if index.isValid() else None

    def set_running(self, running: bool) -> None:
        self._running = running
        self.update_actions()

    def update_actions(self) -> None:
        """Enable what applies to the selection: results only for finished rows."""
        current = self.current_item()
        has_result = (
            current is not None
            and current.status is Status.DONE
            and current.output_path is not None
        )
        for act in (self.open_action, self.reveal_action, self.open_folder_action):
            act.setEnabled(has_result)
        ended = (Status.DONE, Status.FAILED, Status.CANCELLED)
        redoable = any(item.status in ended for item in self.selected_items())
        self.redo_action.setEnabled(redoable and not self._running)
        self.remove_action.setEnabled(not self._running)
        self.remove_button.setEnabled(not self._running)
        self.clear_done_button.setEnabled(not self._running)

    def _show_empty_state(self, *_args) -> None:
        self.stack.setCurrentWidget(self.view if self.model.rowCount() else self.empty_state)
        self.update_actions()

    def _emit_for_current(self, signal) -> None:
        item = self.current_item()
        if item is not None:
            signal.emit(item.key)

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.update_actions()
        self.current_changed.emit(self.model.item(current.row()).key if current.isValid() else None)

    def _on_double_click(self, index: QModelIndex) -> None:
        item = self.model.item(index.row())
        if item.status is Status.DONE and item.output_path is not None:
            self.open_requested.emit(item.key)

    def _context_menu(self, pos: QPoint) -> None:
        if not self.view.indexAt(pos).isValid():
            return
        menu = QMenu(self)
        menu.addAction(self.open_action)
        menu.addAction(self.reveal_action)
        menu.addAction(self.open_folder_action)
        menu.addSeparator()
        menu.addAction(self.redo_action)
        menu.addAction(self.remove_action)
        menu.popup(self.view.viewport().mapToGlobal(pos))
