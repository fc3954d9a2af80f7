"""The main window: lays out the queue, the comparison, the side panel and the run bar.

It holds no state of its own beyond what the widgets show: user actions go to the
``Controller``, and the controller's signals update the widgets.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
    QPainter,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from .compare_view import CompareView
from .controller import Controller, ModelInfo, available_devices, shipped_models
from .panels import SidePanel
from .queue_model import IMAGE_SUFFIXES, QueueModel, Status

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ")"
MODEL_FILTER = "Models (*.safetensors *.pth *.pt *.ckpt *.bin);;All files (*)"


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


class MainWindow(QMainWindow):
    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._compare_key: int | None = None
        self.setObjectName("mainWindow")
        self.setWindowTitle("NEXUS Upscaler")
        self.setAcceptDrops(True)
        self.resize(1280, 820)

        self.side_panel = SidePanel(available_devices())
        self.side_panel.setObjectName("sidePanel")
        side_scroll = QScrollArea()
        side_scroll.setWidget(self.side_panel)
        side_scroll.setWidgetResizable(True)
        side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_scroll.setMinimumWidth(330)

        self.left_splitter = QSplitter(Qt.Orientation.Vertical)
        self.left_splitter.addWidget(self._queue_area())
        self.left_splitter.addWidget(self._compare_area())
        self.left_splitter.setStretchFactor(0, 2)
        self.left_splitter.setStretchFactor(1, 3)
        self.main_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.main_splitter.addWidget(self.left_splitter)
        self.main_splitter.addWidget(side_scroll)
        self.main_splitter.setStretchFactor(0, 1)
        self.main_splitter.setStretchFactor(1, 0)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.main_splitter, 1)
        layout.addLayout(self._run_bar())
        self.setCentralWidget(central)
        self.statusBar().showMessage("Drop images or folders anywhere on the window.")

        self._create_actions()
        self._connect()
        self._show_initial_state()

    # --- layout --------------------------------------------------------------------------------

    def _queue_area(self) -> QWidget:
        area = QWidget()
        layout = QVBoxLayout(area)
        layout.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add files…", objectName="addButton")
        self.add_button.setToolTip("Add images (Ctrl+O); or drop files and folders, or paste")
        self.add_folder_button = QPushButton("Add folder…", objectName="addFolderButton")
        self.remove_button = QPushButton("Remove", objectName="removeButton")
        self.remove_button.setToolTip("Remove the selected images from the queue (Delete)")
        self.clear_done_button = QPushButton("Clear finished", objectName="clearDoneButton")
        for button in (
            self.add_button,
            self.add_folder_button,
            self.remove_button,
            self.clear_done_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

        self.queue_view = QTableView(objectName="queueView")
        self.queue_view.setModel(self.controller.queue)
        self.queue_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.queue_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.queue_view.setIconSize(QSize(48, 48))
        self.queue_view.verticalHeader().setVisible(False)
        self.queue_view.verticalHeader().setDefaultSectionSize(56)
        self.queue_view.setShowGrid(False)
        self.queue_view.setAlternatingRowColors(True)
        self.queue_view.setWordWrap(False)
        header = self.queue_view.horizontalHeader()
        header.setSectionResizeMode(QueueModel.IMAGE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(QueueModel.SIZE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(QueueModel.STATUS, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(QueueModel.STATUS, 240)
        self.queue_view.setItemDelegateForColumn(
            QueueModel.STATUS, StatusDelegate(self.controller.queue, self.queue_view)
        )
        layout.addWidget(self.queue_view, 1)
        return area

    def _compare_area(self) -> QWidget:
        area = QWidget()
        layout = QVBoxLayout(area)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.compare_title = QLabel("Before / after", objectName="compareTitle")
        self.fit_button = QPushButton("Fit", objectName="fitButton")
        self.fit_button.setToolTip("Show the whole image")
        self.actual_button = QPushButton("1:1", objectName="actualSizeButton")
        self.actual_button.setToolTip("One output pixel per screen pixel")
        self.zoom_label = QLabel("", objectName="zoomLabel")
        bar.addWidget(self.compare_title, 1)
        bar.addWidget(self.zoom_label)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.actual_button)
        layout.addLayout(bar)
        self.compare_view = CompareView()
        layout.addWidget(self.compare_view, 1)
        return area

    def _run_bar(self) -> QHBoxLayout:
        bar = QHBoxLayout()
        self.total_progress = QProgressBar(objectName="totalProgress")
        self.total_progress.setRange(0, 100)
        self.total_progress.setValue(0)
        self.total_progress.setFormat("%p% of the batch")
        self.eta_label = QLabel("", objectName="etaLabel")
        self.eta_label.setMinimumWidth(90)
        self.start_button = QPushButton("Start", objectName="startButton")
        self.start_button.setToolTip("Upscale every image not done yet (Ctrl+Enter)")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", objectName="cancelButton")
        self.cancel_button.setToolTip("Stop at the next tile; nothing partial is written (Esc)")
        self.cancel_button.setEnabled(False)
        bar.addWidget(self.total_progress, 1)
        bar.addWidget(self.eta_label)
        bar.addWidget(self.start_button)
        bar.addWidget(self.cancel_button)
        return bar

    def _create_actions(self) -> None:
        def action(text: str, keys: list[QKeySequence], slot, name: str) -> QAction:
            act = QAction(text, self)
            act.setObjectName(name)
            act.setShortcuts(keys)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        std = QKeySequence.StandardKey
        self.add_action = action("Add files", [QKeySequence(std.Open)], self.add_files, "addAction")
        self.remove_action = action(
            "Remove", [QKeySequence(std.Delete)], self.remove_selected, "removeAction"
        )
        self.start_action = action(
            "Start",
            [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")],
            self.controller.start,
            "startAction",
        )
        self.cancel_action = action(
            "Cancel", [QKeySequence(Qt.Key.Key_Escape)], self.controller.cancel, "cancelAction"
        )
        self.paste_action = action("Paste", [QKeySequence(std.Paste)], self.paste, "pasteAction")

    def _connect(self) -> None:
        c, panel = self.controller, self.side_panel
        self.add_button.clicked.connect(self.add_files)
        self.add_folder_button.clicked.connect(self.add_folder)
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_done_button.clicked.connect(self.clear_finished)
        self.start_button.clicked.connect(c.start)
        self.cancel_button.clicked.connect(c.cancel)
        self.fit_button.clicked.connect(self.compare_view.fit)
        self.actual_button.clicked.connect(self.compare_view.actual_size)
        self.compare_view.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z:.0%}"))
        self.queue_view.selectionModel().currentRowChanged.connect(self._on_current_row)

        panel.choice_changed.connect(self._on_choice)
        panel.model_chosen.connect(self._choose_model)
        panel.open_model_requested.connect(self.open_model_dialog)
        panel.preset_chosen.connect(self._choose_preset)
        panel.browse_output_requested.connect(self.browse_output)

        c.model_changed.connect(self._show_model)
        c.model_loading.connect(self._on_model_loading)
        c.running_changed.connect(self._on_running)
        c.total_progress.connect(self._on_total_progress)
        c.message.connect(lambda text: self.statusBar().showMessage(text, 15000))
        c.compare_ready.connect(self._on_compare_ready)
        c.item_finished.connect(self._on_item_finished)

    def _show_initial_state(self) -> None:
        from ..core.presets import list_presets

        c = self.controller
        self.side_panel.set_presets([(p.name, p.description) for p in list_presets()])
        self.side_panel.apply_choices(c.choices)
        if c.choices.model:
            c.load_model(c.choices.model)
        else:
            from ..core.zoo import default_model_name

            default = default_model_name()
            if default:
                c.load_model(default)
        self._refresh_models()
        for key, splitter in (("main", self.main_splitter), ("left", self.left_splitter)):
            state = c.settings.load_bytes(f"{key}_splitter")
            if state is not None:
                splitter.restoreState(state)
        geometry = c.settings.load_bytes("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    # --- user actions --------------------------------------------------------------------------

    def add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add images", "", IMAGE_FILTER)
        if files:
            self.controller.add_paths(files)

    def add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if folder:
            self.controller.add_paths([folder])

    def paste(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None or not self.controller.add_mime(mime):
            self.statusBar().showMessage("The clipboard holds no image or image file.", 8000)

    def selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.queue_view.selectionModel().selectedRows()})

    def remove_selected(self) -> None:
        self.controller.remove_rows(self.selected_rows())

    def clear_finished(self) -> None:
        rows = [
            row
            for row, item in enumerate(self.controller.queue.items())
            if item.status is Status.DONE
        ]
        self.controller.remove_rows(rows)

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", "", MODEL_FILTER)
        if path:
            self.open_model_file(path)
        else:
            self._refresh_models()  # put the picker back on the current model

    def open_model_file(self, path: str | Path) -> None:
        """What "Open model..." does with the chosen file (tests call it directly)."""
        self._choose_model(str(Path(path).expanduser().resolve()))

    def browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder")
        if folder:
            self.controller.set_choices(output_dir=folder)
            self.side_panel.apply_choices(self.controller.choices)

    # --- reacting to the controller -------------------------------------------------------------

    def _choose_model(self, spec: str) -> None:
        self.controller.load_model(spec)  # in the background; the window stays responsive

    def _choose_preset(self, name: str) -> None:
        self.controller.choose_preset(name)
        self.side_panel.apply_choices(self.controller.choices)

    def _on_choice(self, name: str, value: object) -> None:
        self.controller.set_choices(**{name: value})

    def _refresh_models(self) -> None:
        c = self.controller
        shipped = [
            (m.name, m.description or f"{m.architecture or 'model'} ×{m.scale or '?'}")
            for m in shipped_models()
        ]
        current = c.choices.model if c.model_info else ""
        self.side_panel.set_models(shipped, c.choices.recent_models, current)

    def _show_model(self, info: ModelInfo | None) -> None:
        self.side_panel.model_info.setText(info.summary() if info else "No model loaded")

    def _on_model_loading(self, loading: bool) -> None:
        if loading:
            self.side_panel.model_info.setText("Loading...")
        else:
            self._refresh_models()  # the picker shows the model now loaded (or still loaded)
            self._show_model(self.controller.model_info)
        self._on_running(self.controller.running)

    def _on_running(self, running: bool) -> None:
        ready = not running and not self.controller.loading
        self.start_button.setEnabled(ready)
        self.start_action.setEnabled(ready)
        self.cancel_button.setEnabled(running)
        self.remove_button.setEnabled(not running)
        self.clear_done_button.setEnabled(not running)
        self.side_panel.setEnabled(not running)
        if not running:
            self.eta_label.setText("")

    def _on_total_progress(self, percent: int, eta: str) -> None:
        self.total_progress.setValue(percent)
        self.eta_label.setText(eta)

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        item = self.controller.queue.item(current.row())
        self._show_compare(item.key)

    def _on_item_finished(self, key: int) -> None:
        # Show the newest result unless the user is looking at another finished row.
        current = self.queue_view.currentIndex()
        looking_elsewhere = (
            current.isValid()
            and self.compare_view.has_images()
            and self.controller.queue.item(current.row()).key != key
        )
        if not looking_elsewhere:
            self._show_compare(key)

    def _show_compare(self, key: int) -> None:
        if self.controller.request_compare(key):
            self._compare_key = key
            item = self.controller.queue.find(key)
            if item is not None:
                self.compare_title.setText(f"Before / after: {item.path.name}")

    def _on_compare_ready(self, key: int, before: QImage, after: QImage) -> None:
        if key == self._compare_key:
            self.compare_view.set_images(before, after)

    # --- window events -------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        if self.controller.add_mime(event.mimeData()):
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        c = self.controller
        if c.running:
            self.statusBar().showMessage("Cancelling the running batch before closing...")
        c.shutdown()  # cancels at the next tile and waits: nothing partial is left behind
        c.settings.save_bytes("geometry", self.saveGeometry())
        c.settings.save_bytes("main_splitter", self.main_splitter.saveState())
        c.settings.save_bytes("left_splitter", self.left_splitter.saveState())
        c.save_choices()
        c.settings.sync()
        super().closeEvent(event)
