"""The main window: lays out the messages, the queue, the comparison, the side panel and the
run bar, and wires them to the controller.

It holds no state of its own beyond what the widgets show (and which row the comparison
shows): user actions go to the ``Controller``, and the controller's signals update the widgets.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.devices import available_devices
from .compare_panel import ComparePanel
from .controller import (
    Controller,
    ModelInfo,
    plural,
    recommended_model,
    shipped_models,
)
from .desktop import Desktop
from .message_area import MessageArea
from .model_picker import ModelEntry
from .panels import SidePanel
from .queue_model import IMAGE_SUFFIXES, Status
from .queue_panel import QueuePanel

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ")"
MODEL_FILTER = "Models (*.safetensors *.pth *.pt *.ckpt *.bin);;All files (*)"


class MainWindow(QMainWindow):
    def __init__(
        self, controller: Controller, desktop: Desktop | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.desktop = desktop or Desktop()
        self._shown_key: int | None = None  # the row the comparison shows
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
        side_scroll.setMinimumWidth(340)

        self.queue_panel = QueuePanel(controller.queue)
        self.queue_view = self.queue_panel.view
        self.compare_panel = ComparePanel()
        self.compare_view = self.compare_panel.view
        self.left_splitter = QSplitter(Qt.Orientation.Vertical)
        self.left_splitter.addWidget(self.queue_panel)
        self.left_splitter.addWidget(self.compare_panel)
        self.left_splitter.setStretchFactor(0, 2)
        self.left_splitter.setStretchFactor(1, 3)
        self.main_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.main_splitter.addWidget(self.left_splitter)
        self.main_splitter.addWidget(side_scroll)
        self.main_splitter.setStretchFactor(0, 1)
        self.main_splitter.setStretchFactor(1, 0)

        self.message_area = MessageArea()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.message_area)
        layout.addWidget(self.main_splitter, 1)
        layout.addLayout(self._run_bar())
        self.setCentralWidget(central)

        self._create_actions()
        self._connect()
        self._show_initial_state()

    # --- layout --------------------------------------------------------------------------------

    def _run_bar(self) -> QHBoxLayout:
        bar = QHBoxLayout()
        self.total_progress = QProgressBar(objectName="totalProgress")
        self.total_progress.setRange(0, 100)
        self.total_progress.setValue(0)
        self.eta_label = QLabel("", objectName="etaLabel")
        self.eta_label.setMinimumWidth(90)
        self.start_button = QPushButton("Start", objectName="startButton")
        self.start_button.setToolTip("Upscale every image not done yet (Ctrl+Enter)")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", objectName="cancelButton")
        self.cancel_button.setToolTip(
            "Stop before the model’s next step; nothing partial is written (Esc)"
        )
        self.cancel_button.setEnabled(False)
        bar.addWidget(self.total_progress, 1)
        bar.addWidget(self.eta_label)
        bar.addWidget(self.start_button)
        bar.addWidget(self.cancel_button)
        return bar

    def _create_actions(self) -> None:
        def action(text: str, keys: list[QKeySequence | str], slot, name: str) -> QAction:
            act = QAction(text, self)
            act.setObjectName(name)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        std = QKeySequence.StandardKey
        view = self.compare_view
        self.add_action = action("Add files", [std.Open], self.add_files, "addAction")
        self.start_action = action(
            "Start", ["Ctrl+Return", "Ctrl+Enter"], self.controller.start, "startAction"
        )
        self.cancel_action = action("Cancel", ["Esc"], self.controller.cancel, "cancelAction")
        self.paste_action = action("Paste", [std.Paste], self.paste, "pasteAction")
        self.remove_action = self.queue_panel.remove_action
        # Image-viewer keys; a text field that has focus keeps its typing (Qt lets it claim them).
        self.zoom_in_action = action(
            "Zoom in", ["+", "=", std.ZoomIn], lambda: view.zoom_in(), "zoomInAction"
        )
        self.zoom_out_action = action(
            "Zoom out", ["-", std.ZoomOut], lambda: view.zoom_out(), "zoomOutAction"
        )
        self.actual_size_action = action(
            "Actual size", ["1", "0", "Ctrl+0"], view.actual_size, "actualSizeAction"
        )
        self.fit_action = action("Fit", ["F"], view.fit, "fitAction")

    def _connect(self) -> None:
        c, panel, queue = self.controller, self.side_panel, self.queue_panel
        queue.add_files_requested.connect(self.add_files)
        queue.add_folder_requested.connect(self.add_folder)
        queue.remove_requested.connect(c.remove_rows)
        queue.clear_finished_requested.connect(c.clear_finished)
        queue.redo_requested.connect(c.redo)
        queue.open_requested.connect(self.open_result)
        queue.reveal_requested.connect(self.reveal_result)
        queue.open_folder_requested.connect(self.open_result_folder)
        queue.current_changed.connect(self._on_current_changed)
        c.queue.rowsRemoved.connect(self._on_rows_removed)
        c.queue.dataChanged.connect(self._on_rows_changed)
        self.start_button.clicked.connect(c.start)
        self.cancel_button.clicked.connect(c.cancel)

        panel.choice_changed.connect(self._on_choice)
        panel.model_chosen.connect(self._choose_model)
        panel.open_model_requested.connect(self.open_model_dialog)
        panel.preset_chosen.connect(self._choose_preset)
        panel.browse_output_requested.connect(self.browse_output)
        panel.output_dir_chosen.connect(self.choose_output_dir)

        c.model_changed.connect(self._show_model)
        c.model_loading.connect(self._on_model_loading)
        c.running_changed.connect(self._on_running)
        c.cancelling.connect(self._on_cancelling)
        c.progress_changed.connect(self._on_progress)
        c.message.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        c.notice.connect(self.message_area.show_notice)
        c.preview_ready.connect(self._on_preview_ready)
        c.item_finished.connect(self._on_item_finished)
        self.message_area.open_folder_requested.connect(self._open_folder)

    def _show_initial_state(self) -> None:
        from ..core.presets import list_presets

        c = self.controller
        self.side_panel.set_presets([(p.name, p.description) for p in list_presets()])
        self.side_panel.apply_choices(c.choices)
        spec = c.choices.model or recommended_model()
        if spec:
            c.load_model(spec)
        self._refresh_models()
        self.compare_panel.show_nothing()
        c.refresh_progress()
        self._on_running(False)
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
        return self.queue_panel.selected_rows()

    def remove_selected(self) -> None:
        self.controller.remove_rows(self.selected_rows())

    def clear_finished(self) -> None:
        self.controller.clear_finished()

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
            self.choose_output_dir(folder)

    def choose_output_dir(self, text: str) -> None:
        """A folder typed, cleared or browsed to; the editor shows what the controller kept."""
        self.controller.set_output_dir(text)
        self.side_panel.apply_choices(self.controller.choices)

    def open_result(self, key: int) -> None:
        path = self.controller.result_path(key)
        if path is not None:
            self.desktop.open_path(path)

    def reveal_result(self, key: int) -> None:
        path = self.controller.result_path(key)
        if path is not None:
            self.desktop.reveal(path)

    def open_result_folder(self, key: int) -> None:
        path = self.controller.result_path(key)
        if path is not None:
            self.desktop.open_path(path.parent)

    def _open_folder(self, folder: Path) -> None:
        self.desktop.open_path(folder)

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
        recommended = recommended_model()
        entries = [
            ModelEntry(m.name, m.description, m.name == recommended) for m in shipped_models()
        ]
        current = c.choices.model if c.model_info else ""
        self.side_panel.model_picker.set_models(entries, c.choices.recent_models, current)

    def _show_model(self, info: ModelInfo | None) -> None:
        self.side_panel.model_picker.show_model(info)

    def _on_model_loading(self, loading: bool) -> None:
        if loading:
            self.side_panel.model_picker.show_model(None, loading=True)
        else:
            self._refresh_models()  # the picker shows the model now loaded (or still loaded)
            self._show_model(self.controller.model_info)
        self._on_running(self.controller.running)

    def _on_running(self, running: bool) -> None:
        ready = not running and not self.controller.loading
        self.start_button.setEnabled(ready)
        self.start_action.setEnabled(ready)
        self.cancel_button.setEnabled(running)
        self.cancel_button.setText("Cancel")
        self.cancel_action.setEnabled(running)
        self.queue_panel.set_running(running)
        self.side_panel.setEnabled(not running)
        if not running:
            self.eta_label.setText("")

    def _on_cancelling(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.cancel_action.setEnabled(False)

    def _on_progress(self, percent: int, text: str, eta: str) -> None:
        self.total_progress.setValue(percent)
        self.total_progress.setFormat(text)
        self.eta_label.setText(eta)

    # --- the comparison follows the current row ------------------------------------------------

    def _on_current_changed(self, key: int | None) -> None:
        if key is None:
            self._show_row(None)
        elif key != self._shown_key:
            self._show_row(key)

    def _show_row(self, key: int | None, reload: bool = False) -> None:
        item = self.controller.queue.find(key) if key is not None else None
        if item is None:
            self._shown_key = None
            self.compare_panel.show_nothing()
            return
        if key != self._shown_key:
            self.compare_view.clear("Loading…")  # never another row's image meanwhile
        self._shown_key = key
        self.compare_panel.show_item(item)
        if key is not None and (reload or not self.compare_view.has_images()):
            self.controller.request_preview(key)

    def _on_preview_ready(self, key: int, before: QImage, after: QImage) -> None:
        item = self.controller.queue.find(key)
        if key == self._shown_key and item is not None:
            self.compare_panel.set_images(item, before, after)

    def _on_rows_removed(self, *_args) -> None:
        if self._shown_key is not None and self.controller.queue.find(self._shown_key) is None:
            current = self.queue_panel.current_item()
            self._show_row(current.key if current is not None else None)

    def _on_rows_changed(self, *_args) -> None:
        item = self.controller.queue.find(self._shown_key) if self._shown_key else None
        if item is not None:
            self.compare_panel.show_item(item)  # its state line follows progress and status
            if item.output_path is None:
                self.compare_view.drop_after()  # upscaled again: the old result is not its own

    def _on_item_finished(self, key: int) -> None:
        # The row in view shows how it ended; with no row chosen, the newest result shows.
        current = self.queue_panel.current_item()
        if current is not None:
            if current.key == key:
                self._show_row(key, reload=True)
            return
        item = self.controller.queue.find(key)
        if item is not None and item.status is Status.DONE:
            self._show_row(key, reload=True)

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

    def confirm_stop(self) -> bool:
        """Ask before closing stops a running batch; True to stop and close."""
        left = self.controller.images_left()
        box = QMessageBox(self)
        box.setObjectName("confirmCloseBox")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Stop upscaling?")
        box.setText(f"Upscaling is still running: {plural(left, 'image')} not finished.")
        box.setInformativeText(
            "Closing stops it. The image in progress is not written; finished ones are kept."
        )
        stop = box.addButton("Stop and close", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep upscaling", QMessageBox.ButtonRole.RejectRole)
        stop.setObjectName("stopAndCloseButton")
        keep.setObjectName("keepRunningButton")
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.exec()
        return box.clickedButton() is stop

    def closeEvent(self, event: QCloseEvent) -> None:
        c = self.controller
        if c.running:
            if not self.confirm_stop():
                event.ignore()
                return
            # The model ends the pass it is in before the batch stops (seconds on a CPU): the
            # window goes at once and that wait happens behind it.
            self.hide()
            QGuiApplication.sync()
        c.shutdown()  # cancels before the next pass and waits: nothing partial is left behind
        c.settings.save_bytes("geometry", self.saveGeometry())
        c.settings.save_bytes("main_splitter", self.main_splitter.saveState())
        c.settings.save_bytes("left_splitter", self.left_splitter.saveState())
        c.save_choices()
        c.settings.sync()
        super().closeEvent(event)
