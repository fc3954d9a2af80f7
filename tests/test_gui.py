"""The desktop app driven through its real widgets (pytest-qt, offscreen)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from nexus_upscaler.gui.app import create_window  # noqa: E402
from nexus_upscaler.gui.desktop import Desktop  # noqa: E402
from nexus_upscaler.gui.queue_model import Status  # noqa: E402
from nexus_upscaler.gui.settings import AppSettings  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl  # noqa: E402
from PySide6.QtGui import (  # noqa: E402
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QPushButton, QStyleOptionViewItem  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from spandrel.architectures.Compact import Compact  # noqa: E402

RUN_TIMEOUT_MS = 30_000


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # No shipped weights (no default model to load) and no user presets from the real machine.
    (tmp_path / "weights").mkdir()
    monkeypatch.setenv("NEXUS_UPSCALER_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("NEXUS_UPSCALER_CONFIG_DIR", str(tmp_path / "config"))


def compact(path: Path, scale: int) -> Path:
    """A real SRVGGNet-Compact checkpoint with 8 features (about 2,300 parameters)."""
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale)
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    return compact(tmp_path / "tiny-compact-x2.safetensors", 2)


class RecordingDesktop(Desktop):
    """Records what the app hands to the system instead of launching viewers."""

    def __init__(self, platform: str = "linux") -> None:
        super().__init__(platform)
        self.opened: list[Path] = []
        self.started: list[tuple[str, list[str]]] = []
        self.shown: list[Path] = []

    def open_url(self, url: QUrl) -> bool:
        assert url.isLocalFile()
        self.opened.append(Path(url.toLocalFile()))
        return True

    def start_detached(self, program: str, arguments: list[str]) -> bool:
        self.started.append((program, list(arguments)))
        return True

    def show_items(self, path: Path) -> bool:
        self.shown.append(path)
        return False  # no file manager on the bus: the app falls back to opening the folder


def stop_batch(window) -> None:
    window.controller.shutdown()
    QApplication.processEvents()  # the batch's end, queued by the worker


def make_window(qtbot, tmp_path, desktop: Desktop | None = None):
    window = create_window(AppSettings(tmp_path / "gui.ini"), desktop or RecordingDesktop())
    window.controller.paste_dir = tmp_path / "pasted"
    # A test that fails mid-batch must not hang on the "Stop upscaling?" question at teardown.
    qtbot.addWidget(window, before_close_func=stop_batch)
    window.show()
    return window


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


def write_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def drop(window, paths, over=None):
    """Drag file URLs onto the window (over the widget ``over``) and drop them, as the window
    system does: enter, then drop, delivered to the native window."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    target = over or window.queue_view
    pos = target.mapTo(window, target.rect().center())
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the QPoint constructor
        enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, buttons, modifiers)
    assert QApplication.sendEvent(window.windowHandle(), enter)
    assert enter.isAccepted()
    dropped = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(window.windowHandle(), dropped)


def statuses(window):
    return [item.status for item in window.controller.queue.items()]


def open_model(qtbot, window, path) -> bool:
    """Open a checkpoint as "Open model..." does and wait for the background load to end."""
    with qtbot.waitSignal(
        window.controller.model_loading, timeout=RUN_TIMEOUT_MS, check_params_cb=lambda on: not on
    ):
        window.open_model_file(path)
    return window.statusBar().currentMessage().startswith("Loaded ")


def start_and_wait(qtbot, window):
    with qtbot.waitSignal(window.controller.batch_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]  # True when cancelled


def notices(window) -> list[str]:
    """The text and details of every notice on screen, newest first."""
    return [
        f"{b.text_label.text()}\n{b.details_text()}".strip()
        for b in window.message_area.banners()
        if b.isVisible()
    ]


def wait_for_probe(qtbot, window):
    """Every queued file has been checked (a thumbnail, or flagged unreadable) and the check's
    notice is shown."""
    qtbot.waitUntil(
        lambda: (
            all(
                i.thumbnail is not None or i.status is Status.FAILED
                for i in window.controller.queue.items()
            )
            and window.controller._probe_pool.activeThreadCount() == 0
        ),
        timeout=RUN_TIMEOUT_MS,
    )
    QApplication.processEvents()  # the signals the check sent last


def select_row(qtbot, window, row: int):
    window.queue_view.setCurrentIndex(window.controller.queue.index(row, 0))
    window.queue_view.selectRow(row)


def wait_preview(qtbot, window, row: int):
    """Select ``row`` and wait until the comparison shows its images."""
    key = window.controller.queue.item(row).key
    with qtbot.waitSignal(
        window.controller.preview_ready,
        timeout=RUN_TIMEOUT_MS,
        check_params_cb=lambda k, *_: k == key,
    ):
        select_row(qtbot, window, row)


def answer_dialog(qtbot, button_name: str):
    """Click ``button_name`` in the next modal dialog, as the user would, once it is open."""
    clicked = []

    def click():
        dialog = QApplication.activeModalWidget()
        button = dialog.findChild(QPushButton, button_name) if dialog else None
        if button is None:
            QTimer.singleShot(20, click)
            return
        clicked.append(dialog.windowTitle())
        button.click()

    QTimer.singleShot(0, click)
    return clicked


def test_qt_calls_keep_none_alive(qtbot, window):
    """PySide6 6.12.0 takes a reference from None at each call of a Qt function returning
    nothing; before Python 3.12 the app then dies ("deallocating None") once a long batch has
    made enough calls. pyproject.toml excludes that version; this catches it installed anyway."""
    import sys

    label = window.compare_panel.state_label
    before = sys.getrefcount(None)
    for n in range(2000):
        label.setText(str(n))
        QApplication.processEvents()
    assert sys.getrefcount(None) > before - 100


def start_held(qtbot, window, tmp_path, model, count: int, hold_row: int) -> threading.Event:
    """Start a batch of ``count`` 96x96 images in 32 px tiles (9 per image) and hold the worker
    at the first tile of row ``hold_row`` until the returned event is set, so that what the
    test does next lands mid-image however fast the machine is."""
    inputs = [write_png(tmp_path / "in" / f"{n}.png", 96, 96, seed=n) for n in range(count)]
    assert open_model(qtbot, window, model)
    window.side_panel.tile_spin.setValue(32)
    window.side_panel.overlap_spin.setValue(8)
    drop(window, inputs)
    held = window.controller.queue.item(hold_row).key
    reached, release = threading.Event(), threading.Event()

    def hold(key, done, total):
        if key == held and not reached.is_set():
            reached.set()
            release.wait(10)

    window.controller.start()
    window.controller._worker.signals.item_progress.connect(hold, Qt.DirectConnection)
    qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)
    return release


def test_dropping_files_and_folders_fills_the_queue(qtbot, window, tmp_path):
    a = write_png(tmp_path / "in" / "a.png", 20, 10)
    folder = tmp_path / "folder"
    b = write_png(folder / "b.png", 12, 8)
    c = write_png(folder / "sub" / "c.png", 8, 8)
    write_png(folder / "upscaled" / "b_upscaled.png", 24, 16)  # an earlier output: skipped
    (folder / "notes.txt").write_text("not an image")

    drop(window, [a, folder])
    drop(window, [a], over=window.compare_view)  # anywhere; already queued: not added twice

    view = window.findChild(type(window.queue_view), "queueView")
    assert view.model().rowCount() == 3
    assert [item.path for item in window.controller.queue.items()] == [a, b, c]
    assert statuses(window) == [Status.WAITING] * 3
    assert window.controller.queue.size_text(window.controller.queue.item(0)) == "20×10"
    qtbot.waitUntil(lambda: all(i.thumbnail is not None for i in window.controller.queue.items()))


def test_run_writes_outputs_of_the_right_size_beside_the_inputs(
    qtbot, window, tmp_path, tiny_model
):
    a = write_png(tmp_path / "in" / "a.png", 40, 30, seed=1)
    b = write_png(tmp_path / "in" / "b.png", 17, 23, seed=2)
    before = a.read_bytes()
    assert open_model(qtbot, window, tiny_model)
    assert "2×" in window.side_panel.model_picker.info.text()
    assert "RealESRGAN Compact" in window.side_panel.model_picker.info.text()
    drop(window, [a, b])
    queue = window.controller.queue
    assert queue.size_text(queue.item(0)) == "40×30 → 80×60"

    assert start_and_wait(qtbot, window) is False
    assert statuses(window) == [Status.DONE, Status.DONE]
    out_a = tmp_path / "in" / "upscaled" / "a_upscaled.png"
    out_b = tmp_path / "in" / "upscaled" / "b_upscaled.png"
    assert [item.output_path for item in queue.items()] == [out_a, out_b]
    assert Image.open(out_a).size == (80, 60)
    assert Image.open(out_b).size == (34, 46)
    assert a.read_bytes() == before  # the input is untouched
    assert window.total_progress.value() == 100
    # the newest result is shown in the comparison (the output's size frames both images)
    qtbot.waitUntil(lambda: window.compare_view.image_size().width() == 34)
    assert "b.png" in window.compare_panel.title.text()

    # a second run of the same files with "keep both" never replaces the first outputs
    with qtbot.waitSignal(window.controller.batch_finished, timeout=RUN_TIMEOUT_MS):
        window.controller.redo([item.key for item in queue.items()])
    assert queue.item(0).output_path == tmp_path / "in" / "upscaled" / "a_upscaled-2.png"
    assert Image.open(out_a).size == (80, 60)


def test_cancel_mid_batch_leaves_no_partial_file_and_cancels_the_rest(
    qtbot, window, tmp_path, tiny_model
):
    clicked = start_held(qtbot, window, tmp_path, tiny_model, count=3, hold_row=1)
    assert window.cancel_button.isEnabled()
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    # the model is still in its pass: the window says it is stopping, Cancel is not offered again
    assert window.total_progress.format().startswith("Cancelling")
    assert window.cancel_button.text() == "Cancelling…" and not window.cancel_button.isEnabled()
    assert not window.cancel_action.isEnabled()
    with qtbot.waitSignal(window.controller.batch_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        clicked.set()
    assert blocker.args == [True]
    assert window.cancel_button.text() == "Cancel"

    assert statuses(window) == [Status.DONE, Status.CANCELLED, Status.CANCELLED]
    out_dir = tmp_path / "in" / "upscaled"
    assert sorted(p.name for p in out_dir.iterdir()) == ["0_upscaled.png"]  # no temp files
    assert window.start_button.isEnabled() and not window.cancel_button.isEnabled()

    # Start again picks up only what was not done
    assert start_and_wait(qtbot, window) is False
    assert statuses(window) == [Status.DONE] * 3
    assert Image.open(out_dir / "2_upscaled.png").size == (192, 192)


def test_a_corrupt_image_fails_only_its_own_row(qtbot, window, tmp_path, tiny_model):
    good_1 = write_png(tmp_path / "in" / "a.png", 16, 16, seed=1)
    broken = tmp_path / "in" / "b.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"definitely not image data" * 4)
    good_2 = write_png(tmp_path / "in" / "c.png", 16, 12, seed=3)
    assert open_model(qtbot, window, tiny_model)
    drop(window, [good_1, broken, good_2])
    assert window.controller.queue.size_text(window.controller.queue.item(1)) == "?"

    assert start_and_wait(qtbot, window) is False
    assert statuses(window) == [Status.DONE, Status.FAILED, Status.DONE]
    failed = window.controller.queue.item(1)
    assert failed.error  # the reason is shown in the row
    assert failed.status_text().startswith("failed: ")
    assert not (tmp_path / "in" / "upscaled" / "b_upscaled.png").exists()
    assert Image.open(tmp_path / "in" / "upscaled" / "c_upscaled.png").size == (32, 24)


def test_an_unloadable_model_is_reported_and_not_remembered(qtbot, window, tmp_path):
    bad = tmp_path / "photo.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert not open_model(qtbot, window, bad)
    assert f"Could not load the model {bad}" in notices(window)[0]
    assert window.controller.choices.recent_models == []
    assert not window.controller.start()  # no model: nothing starts


def test_a_slow_model_load_leaves_the_window_responsive(
    qtbot, window, tmp_path, tiny_model, monkeypatch
):
    """A checkpoint loads off the GUI thread: the window takes drops meanwhile, and Start
    waits until the model is there."""
    import nexus_upscaler.core.loading as loading

    release = threading.Event()
    real_load = loading.load_model

    def slow_load(*args, **kwargs):
        release.wait(10)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(loading, "load_model", slow_load)
    window.open_model_file(tiny_model)  # returns at once
    assert window.controller.loading and not window.start_button.isEnabled()
    assert window.side_panel.model_picker.info.text() == "Loading..."
    drop(window, [write_png(tmp_path / "in" / "a.png", 12, 10)])
    assert window.controller.queue.rowCount() == 1
    assert not window.controller.start()
    assert "still loading" in window.statusBar().currentMessage()

    with qtbot.waitSignal(window.controller.model_loading, timeout=RUN_TIMEOUT_MS):
        release.set()
    assert window.start_button.isEnabled() and window.controller.model_info.scale == 2
    assert start_and_wait(qtbot, window) is False
    assert Image.open(tmp_path / "in" / "upscaled" / "a_upscaled.png").size == (24, 20)


def test_settings_survive_closing_and_reopening(qtbot, tmp_path, tiny_model):
    first = make_window(qtbot, tmp_path)
    panel = first.side_panel
    assert open_model(qtbot, first, tiny_model)
    panel.format_combo.setCurrentIndex(panel.format_combo.findData("webp"))
    panel.quality_spin.setValue(80)
    panel.tile_spin.setValue(256)
    panel.tta_check.setChecked(True)
    panel.target_scale_spin.setValue(3.0)
    panel.suffix_edit.setText("_big")
    panel.suffix_edit.editingFinished.emit()
    panel.overwrite_combo.setCurrentIndex(panel.overwrite_combo.findData("fail"))
    first.close()

    second = make_window(qtbot, tmp_path)
    panel = second.side_panel
    assert panel.format_combo.currentData() == "webp"
    assert panel.quality_spin.value() == 80
    assert panel.tile_spin.value() == 256
    assert panel.tta_check.isChecked()
    assert panel.target_scale_spin.value() == 3.0
    assert panel.suffix_edit.text() == "_big"
    assert panel.overwrite_combo.currentData() == "fail"
    # the model is reopened (in the background) and listed among the recent ones
    qtbot.waitUntil(lambda: second.controller.model_info is not None, timeout=RUN_TIMEOUT_MS)
    assert panel.model_combo.currentData() == str(tiny_model)
    assert "2×" in panel.model_picker.info.text()
    options = second.controller.options()
    assert (options.tile, options.tta, options.target_scale) == (256, True, 3.0)


def test_closing_the_window_cancels_and_waits_for_the_worker(qtbot, tmp_path, tiny_model):
    window = make_window(qtbot, tmp_path)
    release = start_held(qtbot, window, tmp_path, tiny_model, count=2, hold_row=0)
    token = window.controller._token
    gone_while_waiting = []

    def release_once_cancelled():
        # The model's pass goes on after Cancel (seconds on a CPU); the window must not.
        end = time.monotonic() + 10
        while not token.cancelled and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.2)  # the GUI thread now waits for the worker
        gone_while_waiting.append(not window.isVisible())
        release.set()

    threading.Thread(target=release_once_cancelled, daemon=True).start()
    answered = answer_dialog(qtbot, "stopAndCloseButton")
    window.close()  # asks, then returns only when the worker has stopped
    assert answered == ["Stop upscaling?"]
    assert gone_while_waiting == [True]

    assert window.controller._batch_pool.activeThreadCount() == 0
    out_dir = tmp_path / "in" / "upscaled"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_closing_stops_checking_new_files(qtbot, tmp_path, monkeypatch):
    """Closing right after adding a large folder does not wait for every file's check."""
    from nexus_upscaler.gui import worker

    window = make_window(qtbot, tmp_path)
    inputs = [write_png(tmp_path / "in" / f"{n}.png", 8, 8, seed=n) for n in range(5)]
    real_decode = worker.decode
    checked, go_on = [], threading.Event()

    def slow_decode(path, *args, **kwargs):  # as a large photo takes its time
        checked.append(path.name)
        go_on.wait(10)
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(worker, "decode", slow_decode)
    drop(window, inputs)
    qtbot.waitUntil(lambda: bool(checked), timeout=RUN_TIMEOUT_MS)
    threading.Timer(0.2, go_on.set).start()
    window.close()
    assert checked == ["0.png"]


def test_keyboard_delete_removes_and_ctrl_enter_starts(qtbot, window, tmp_path, tiny_model):
    inputs = [write_png(tmp_path / "in" / f"{n}.png", 16, 16, seed=n) for n in range(3)]
    assert open_model(qtbot, window, tiny_model)
    drop(window, inputs)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.queue_view.setFocus()
    window.queue_view.selectRow(1)
    qtbot.keyClick(window.queue_view, Qt.Key.Key_Delete)
    assert [item.path.name for item in window.controller.queue.items()] == ["0.png", "2.png"]

    with qtbot.waitSignal(window.controller.batch_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(window.queue_view, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert statuses(window) == [Status.DONE, Status.DONE]


def test_pasting_image_data_queues_it_as_a_png(qtbot, window, tmp_path):
    image = QImage(24, 16, QImage.Format.Format_RGB32)
    image.fill(0x3366CC)
    QGuiApplication.clipboard().setImage(image)
    window.paste_action.trigger()
    items = window.controller.queue.items()
    assert len(items) == 1
    assert items[0].path.parent == tmp_path / "pasted" and items[0].path.suffix == ".png"
    assert Image.open(items[0].path).size == (24, 16)


# --- issue 17: an app that guides -------------------------------------------------------------


def corrupt_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"definitely not image data" * 4)
    return path


def run_one_good_one_broken(qtbot, window, good: Path, broken: Path, model: Path) -> None:
    """Upscale a good image and a corrupt one (flagged when added) in one batch."""
    assert open_model(qtbot, window, model)
    drop(window, [good, corrupt_png(broken)])
    wait_for_probe(qtbot, window)
    assert start_and_wait(qtbot, window) is False


def test_failures_and_the_batch_summary_stay_until_dismissed(qtbot, window, tmp_path, tiny_model):
    good = write_png(tmp_path / "in" / "a.png", 16, 16, seed=1)
    run_one_good_one_broken(qtbot, window, good, tmp_path / "in" / "broken.png", tiny_model)

    summary = notices(window)[0]
    assert summary.startswith("Finished in ")
    assert "1 done, 1 failed" in summary
    assert f"Saved in {tmp_path / 'in' / 'upscaled'}" in summary
    failed = window.controller.queue.item(1)
    assert f"broken.png: {failed.error}" in summary  # the file and its reason
    assert "not an image" in failed.error or "unreadable" in failed.error

    # Later activity (status-bar messages come and go) leaves it on screen ...
    drop(window, [write_png(tmp_path / "in" / "c.png", 8, 8)])
    window.controller.message.emit("something else")
    qtbot.wait(50)
    assert notices(window)[0] == summary
    assert window.message_area.isVisible()
    # ... until the user closes it.
    banners = window.message_area.banners()
    for banner in banners:
        qtbot.mouseClick(banner.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.message_area.isVisible())
    assert notices(window) == []


def test_the_model_picker_says_what_each_model_is_for(qtbot, tmp_path):
    """The picker lists the zoo's models in the zoo's order, recommended first, each with the
    zoo's plain description, and says under it what the loaded model is for."""
    from nexus_upscaler.core.loading import load_model, save_model
    from nexus_upscaler.core.zoo import default_model_name, list_shipped_models

    weights = tmp_path / "weights"
    words = {
        "nexus-x4": "Photos, four times larger. Slower; the most natural detail.",
        "hyresr-x2": "Twice as large, fast. Good for drawings and screenshots.",
        "my-own-x2": "",  # a file the user put there, with no description
    }
    for name, text in words.items():
        scale = int(name[-1])
        raw = compact(tmp_path / f"{name}-raw.safetensors", scale)
        save_model(load_model(raw), weights / f"{name}.safetensors", description=text or None)
    zoo = list_shipped_models()
    recommended = default_model_name()
    assert recommended == zoo[0].name != "my-own-x2"  # the zoo puts its recommendation first
    window = make_window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=RUN_TIMEOUT_MS)

    picker = window.side_panel.model_picker
    combo = picker.combo
    assert [combo.itemData(i) for i in range(len(zoo))] == [m.name for m in zoo]
    for row, model in enumerate(zoo):
        assert combo.itemText(row) == model.name
        assert combo.itemData(row, Qt.ItemDataRole.UserRole + 1) == words[model.name]
        assert combo.itemData(row, Qt.ItemDataRole.UserRole + 2) == (row == 0)  # recommended
        if words[model.name]:
            assert combo.itemData(row, Qt.ItemDataRole.ToolTipRole) == words[model.name]
    # the list draws the description under each name: a row is taller than one line of text
    view = combo.view()
    option = QStyleOptionViewItem()
    option.initFrom(view)
    row_height = view.itemDelegate().sizeHint(option, view.model().index(0, 0)).height()
    assert row_height > 2 * combo.fontMetrics().height()

    # the recommended model is loaded on first launch, and said in words under the picker
    assert combo.currentData() == recommended
    assert picker.description.text() == words[recommended] and picker.description.isVisible()
    assert f"{zoo[0].scale}×" in picker.info.text()

    # picking another model shows its words instead
    other = next(name for name in words if name not in (recommended, "my-own-x2"))
    row = combo.findData(other)
    with qtbot.waitSignal(window.controller.model_changed, timeout=RUN_TIMEOUT_MS):
        combo.setCurrentIndex(row)
        combo.activated.emit(row)
    assert picker.description.text() == words[other]
    assert combo.currentData() == other


def test_a_finished_row_opens_its_result_and_folder(qtbot, tmp_path, tiny_model):
    desktop = RecordingDesktop()
    window = make_window(qtbot, tmp_path, desktop)
    a = write_png(tmp_path / "in" / "a.png", 20, 12)
    b = write_png(tmp_path / "in" / "b.png", 12, 12, seed=2)
    assert open_model(qtbot, window, tiny_model)
    drop(window, [a, b])
    panel = window.queue_panel
    select_row(qtbot, window, 0)
    assert not panel.open_folder_action.isEnabled()  # nothing to open while waiting
    assert start_and_wait(qtbot, window) is False
    result = tmp_path / "in" / "upscaled" / "a_upscaled.png"

    # double-click opens the result with the user's viewer
    view = window.queue_view
    rect = view.visualRect(window.controller.queue.index(0, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert desktop.opened == [result]

    # "Show in folder" and "Open output folder" on the selected finished row
    select_row(qtbot, window, 0)
    assert panel.reveal_action.isEnabled() and panel.open_folder_action.isEnabled()
    qtbot.mouseClick(panel.reveal_button, Qt.MouseButton.LeftButton)
    assert desktop.shown == [result]  # the file manager is asked to select the file ...
    assert desktop.opened[-1] == result.parent  # ... and without one, the folder opens
    qtbot.mouseClick(panel.open_folder_button, Qt.MouseButton.LeftButton)
    assert desktop.opened[-1] == result.parent

    # the end-of-batch notice offers the folder too
    banner = window.message_area.banners()[0]
    qtbot.mouseClick(banner.folder_button, Qt.MouseButton.LeftButton)
    assert desktop.opened[-1] == result.parent

    # a result deleted since is reported, not opened
    result.unlink()
    count = len(desktop.opened)
    panel.open_action.trigger()
    assert len(desktop.opened) == count
    assert f"{result} is no longer there" in notices(window)[0]


@pytest.mark.parametrize(
    ("platform", "program", "arguments"),
    [
        ("win32", "explorer.exe", ["/select,", "C:\\out\\a b.png"]),
        ("darwin", "open", ["-R", "C:/out/a b.png"]),
    ],
)
def test_show_in_folder_selects_the_file_on_each_platform(platform, program, arguments):
    desktop = RecordingDesktop(platform)
    assert desktop.reveal(Path("C:/out/a b.png"))
    assert desktop.started == [(program, arguments)]
    assert desktop.opened == []


def test_panels_show_the_current_state(qtbot, window, tmp_path, tiny_model):
    a = write_png(tmp_path / "in" / "a.png", 40, 30, seed=1)
    run_one_good_one_broken(qtbot, window, a, tmp_path / "in" / "b.png", tiny_model)
    queue = window.controller.queue
    qtbot.waitUntil(lambda: window.compare_view.is_comparing(), timeout=RUN_TIMEOUT_MS)

    # selecting the failed row shows that row: its reason, never the other image
    select_row(qtbot, window, 1)
    qtbot.waitUntil(lambda: not window.compare_view.has_images(), timeout=RUN_TIMEOUT_MS)
    qtbot.wait(100)  # a late preview of another row must not come back
    assert not window.compare_view.has_images()
    reason = queue.item(1).error
    assert window.compare_panel.state_label.text() == f"Failed: {reason}"
    assert "b.png" in window.compare_panel.title.text()
    assert "b.png cannot be shown" in window.compare_view.placeholder

    # switching model keeps a finished row's sizes; a waiting row shows the new plan
    c = write_png(tmp_path / "in" / "c.png", 10, 10, seed=3)
    drop(window, [c])
    assert window.total_progress.value() == 33  # not the finished batch's 100 %
    assert window.total_progress.format() == "1 of 3 images done, 1 failed"
    assert open_model(qtbot, window, compact(tmp_path / "x4.safetensors", 4))
    assert queue.size_text(queue.item(0)) == "40×30 → 80×60"  # what was written
    assert queue.size_text(queue.item(2)) == "10×10 → 40×40"  # what the new model will write

    # Clear finished: the comparison lets go of the cleared image
    wait_preview(qtbot, window, 0)
    assert window.compare_view.is_comparing()
    qtbot.mouseClick(window.queue_panel.clear_done_button, Qt.MouseButton.LeftButton)
    assert [i.path.name for i in queue.items()] == ["b.png", "c.png"]
    assert "a.png" not in window.compare_panel.title.text()
    qtbot.waitUntil(lambda: not window.compare_view.is_comparing(), timeout=RUN_TIMEOUT_MS)
    assert window.total_progress.format() == "0 of 2 images done, 1 failed"


def test_a_finished_image_is_redone_with_another_model(qtbot, window, tmp_path, tiny_model):
    a = write_png(tmp_path / "in" / "a.png", 12, 10, seed=1)
    assert open_model(qtbot, window, tiny_model)
    panel = window.side_panel
    panel.name_model_check.setChecked(True)  # output names say which model made them
    drop(window, [a])
    assert start_and_wait(qtbot, window) is False
    first = tmp_path / "in" / "upscaled" / "a_upscaled_tiny-compact-x2.png"
    assert window.controller.queue.item(0).output_path == first

    assert open_model(qtbot, window, compact(tmp_path / "big-x4.safetensors", 4))
    select_row(qtbot, window, 0)
    assert window.queue_panel.redo_action.isEnabled()
    with qtbot.waitSignal(window.controller.batch_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(window.queue_panel.redo_button, Qt.MouseButton.LeftButton)
    item = window.controller.queue.item(0)
    second = tmp_path / "in" / "upscaled" / "a_upscaled_big-x4.png"
    assert item.status is Status.DONE and item.output_path == second
    assert Image.open(second).size == (48, 40)
    assert Image.open(first).size == (24, 20)  # the first result is kept
    assert window.controller.queue.rowCount() == 1  # redone in place, not re-added
    assert window.controller.queue.size_text(item) == "12×10 → 48×40"
    assert "big-x4" in window.compare_panel.state_label.text()


def test_upscaling_again_shows_the_input_until_the_new_result(qtbot, window, tmp_path, tiny_model):
    assert open_model(qtbot, window, tiny_model)
    window.side_panel.tile_spin.setValue(32)
    drop(window, [write_png(tmp_path / "in" / "a.png", 96, 96)])
    assert start_and_wait(qtbot, window) is False
    wait_preview(qtbot, window, 0)
    view = window.compare_view
    assert view.is_comparing()

    reached, release = threading.Event(), threading.Event()

    def hold(_key, _done, _total):
        reached.set()
        release.wait(10)

    window.controller.redo([window.controller.queue.item(0).key])
    window.controller._worker.signals.item_progress.connect(hold, Qt.DirectConnection)
    qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)
    QApplication.processEvents()
    # the old result is not shown as the "after" of a row being upscaled again
    assert view.has_images() and not view.is_comparing()
    assert window.compare_panel.title.text() == "Input: a.png"
    with qtbot.waitSignal(window.controller.batch_finished, timeout=RUN_TIMEOUT_MS):
        release.set()
    qtbot.waitUntil(view.is_comparing, timeout=RUN_TIMEOUT_MS)  # the new result


def test_an_output_folder_that_is_a_file_is_refused_when_chosen(qtbot, window, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    edit = window.side_panel.output_dir_edit
    edit.setText(str(folder))
    edit.editingFinished.emit()
    assert window.controller.choices.output_dir == str(folder)

    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    for typed, named in ((a_file, f"{a_file} is a file"), (a_file / "sub", f"{a_file} is a file")):
        edit.setText(str(typed))
        edit.editingFinished.emit()
        assert named in notices(window)[0]
        assert window.controller.choices.output_dir == str(folder)  # the choice stands
        assert edit.text() == str(folder)  # and the field shows it again
    assert len(notices(window)) == 1  # one notice on the topic, the newest


def test_an_output_folder_that_became_a_file_fails_its_rows_naming_it(
    qtbot, window, tmp_path, tiny_model
):
    assert open_model(qtbot, window, tiny_model)
    a = write_png(tmp_path / "in" / "a.png", 8, 8)
    (tmp_path / "in" / "upscaled").write_text("someone's file")  # where outputs would go
    drop(window, [a])
    assert start_and_wait(qtbot, window) is False
    item = window.controller.queue.item(0)
    assert item.status is Status.FAILED
    assert f"{tmp_path / 'in' / 'upscaled'} is a file" in item.error


def test_first_launch_guides_and_checks_files_as_they_come(qtbot, window, tmp_path):
    panel = window.queue_panel
    assert panel.empty_state.isVisible() and not window.queue_view.isVisible()
    text = panel.empty_label.text()
    assert "Drop images" in text and "paste" in text and "add them" in text
    qtbot.waitUntil(lambda: window.side_panel.model_picker.info.text() == "No model loaded")

    good = write_png(tmp_path / "in" / "a.png", 30, 20)
    broken = corrupt_png(tmp_path / "in" / "b.png")
    truncated = tmp_path / "in" / "c.png"
    truncated.write_bytes(write_png(tmp_path / "full.png", 64, 64).read_bytes()[:300])
    drop(window, [good, broken, truncated])
    assert window.queue_view.isVisible() and not panel.empty_state.isVisible()
    wait_for_probe(qtbot, window)

    # corrupt files are flagged now, before any run, with a reason one can read
    queue = window.controller.queue
    assert statuses(window) == [Status.WAITING, Status.FAILED, Status.FAILED]
    flagged = notices(window)[0]
    assert flagged.startswith("2 files cannot be read")
    for row in (1, 2):
        item = queue.item(row)
        assert f"{item.path.name}: {item.error}" in flagged
        assert item.error in queue.data(queue.index(row, queue.STATUS), Qt.ItemDataRole.ToolTipRole)
        background = queue.data(queue.index(row, 0), Qt.ItemDataRole.BackgroundRole)
        assert background.red() > 2 * background.green()  # failed rows are red
    assert queue.data(queue.index(0, 0), Qt.ItemDataRole.BackgroundRole) is None

    # a waiting image shows its preview when selected: the input alone, at its own size
    wait_preview(qtbot, window, 0)
    view = window.compare_view
    assert view.has_images() and not view.is_comparing()
    assert (view.image_size().width(), view.image_size().height()) == (30, 20)
    assert window.compare_panel.state_label.text() == "Waiting to be upscaled."


def test_adding_says_what_it_left_out(qtbot, window, tmp_path):
    from nexus_upscaler.core.imageio import write_image

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    drop(window, [empty])
    assert window.controller.queue.rowCount() == 0
    assert notices(window) == [
        f"Nothing added. Found no image in:\n{empty}: no images in this folder or below it "
        "(PNG, JPEG, WebP, TIFF, BMP or GIF files; “upscaled” folders and hidden files are skipped)"
    ]

    folder = tmp_path / "photos"
    write_png(folder / "a.png", 8, 8)
    write_image(folder / "a_upscaled.png", np.zeros((16, 16, 3), np.uint8))  # an earlier result
    drop(window, [folder])
    assert [i.path.name for i in window.controller.queue.items()] == ["a.png"]
    assert window.statusBar().currentMessage() == (
        "Added 1 image; left out 1 earlier result (images this app wrote)."
    )
    drop(window, [folder])
    assert notices(window)[0] == (
        "Nothing added; left out 1 already in the queue and 1 earlier result "
        "(images this app wrote)."
    )
    assert len(notices(window)) == 1  # one notice about adding: the newest


def test_paths_named_on_the_command_line_are_queued_or_named(qtbot, window, tmp_path):
    from nexus_upscaler.gui.app import queue_arguments

    photo = write_png(tmp_path / "photo.png", 8, 8)
    queue_arguments(window, [str(photo), str(tmp_path / "phtoo.png")])
    assert [i.path for i in window.controller.queue.items()] == [photo]
    assert notices(window)[0].endswith(f"{tmp_path / 'phtoo.png'}: no such file or folder")


def test_every_unreadable_file_stays_named_and_readable(qtbot, window, tmp_path):
    first = corrupt_png(tmp_path / "in" / "first.png")
    drop(window, [first])
    wait_for_probe(qtbot, window)
    second = tmp_path / "in" / "notes.txt"
    second.write_text("not an image")
    drop(window, [second])
    wait_for_probe(qtbot, window)
    flagged = notices(window)
    assert len(flagged) == 1 and flagged[0].startswith("2 files cannot be read")
    assert "first.png: " in flagged[0]
    assert "notes.txt: not an image, or in a format that cannot be read" in flagged[0]

    # the reason fits in the row (two lines), not cut after a few words
    view, queue = window.queue_view, window.controller.queue
    index = queue.index(1, queue.STATUS)
    text = queue.data(index, Qt.ItemDataRole.DisplayRole)
    cell = view.visualRect(index).adjusted(4, 2, -4, -2)
    needed = view.fontMetrics().boundingRect(cell, Qt.TextFlag.TextWordWrap, text)
    assert view.wordWrap() and needed.height() <= cell.height()


def test_zoom_steps_and_keys(qtbot, window, tmp_path):
    drop(window, [write_png(tmp_path / "in" / "a.png", 64, 48)])
    wait_preview(qtbot, window, 0)
    view = window.compare_view
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)

    for target in (view, window.queue_view):  # the keys work wherever the focus is
        target.setFocus()
        qtbot.keyClick(target, Qt.Key.Key_1)
        assert view.zoom == 1.0
        seen = []
        for _ in range(4):
            qtbot.keyClick(target, Qt.Key.Key_Plus)
            seen.append(view.zoom)
        assert seen == [1.5, 2.0, 3.0, 4.0]  # 100 %, 200 % and 400 % are steps
        assert window.compare_panel.zoom_label.text() == "400%"
        qtbot.keyClick(target, Qt.Key.Key_Minus)
        assert view.zoom == 3.0
        qtbot.keyClick(target, Qt.Key.Key_0)
        assert view.zoom == 1.0
        qtbot.keyClick(target, Qt.Key.Key_Equal)  # "+" without Shift on many keyboards
        assert view.zoom == 1.5
        qtbot.keyClick(target, Qt.Key.Key_F)
        assert view.zoom == pytest.approx(min(view.width() / 64, view.height() / 48))

    # the buttons and the wheel move along the same steps
    view.actual_size()
    qtbot.mouseClick(window.compare_panel.zoom_in_button, Qt.MouseButton.LeftButton)
    assert view.zoom == 1.5
    qtbot.mouseClick(window.compare_panel.zoom_out_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(window.compare_panel.zoom_out_button, Qt.MouseButton.LeftButton)
    assert view.zoom == pytest.approx(2 / 3)

    def wheel(delta: int):
        centre = QPointF(view.rect().center())
        event = QWheelEvent(
            centre, view.mapToGlobal(centre), QPoint(), QPoint(0, delta),
            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase, False,
        )  # fmt: skip
        QApplication.sendEvent(view, event)

    view.actual_size()
    wheel(120)  # one notch: one step
    assert view.zoom == 1.5
    for _ in range(4):
        wheel(30)  # a touchpad's small deltas add up to one notch
    assert view.zoom == 2.0
    wheel(-240)
    assert view.zoom == 1.0

    # typing in a text field keeps its characters
    suffix = window.side_panel.suffix_edit
    suffix.setFocus()
    suffix.clear()
    zoom = view.zoom
    qtbot.keyClicks(suffix, "x10f+")
    assert suffix.text() == "x10f+" and view.zoom == zoom


def test_one_key_shortcuts_leave_the_side_panel_alone(qtbot, window, tmp_path):
    """F, 1 and Delete act on the image and the queue, not while a combo box has the focus."""
    drop(window, [write_png(tmp_path / "in" / f"{n}.png", 64, 48, seed=n) for n in range(2)])
    wait_preview(qtbot, window, 0)
    view = window.compare_view
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    view.zoom_in()
    zoom = view.zoom

    combo = window.side_panel.format_combo
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_T)  # the combo's own search by first letter
    assert combo.currentData() == "tiff"
    for key in (Qt.Key.Key_F, Qt.Key.Key_1, Qt.Key.Key_Delete):
        qtbot.keyClick(combo, key)
    assert view.zoom == zoom
    assert window.controller.queue.rowCount() == 2

    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_1)  # over the image they work
    assert view.zoom == 1.0
    window.queue_view.setFocus()
    qtbot.keyClick(window.queue_view, Qt.Key.Key_Delete)
    assert window.controller.queue.rowCount() == 1


def test_show_advanced_options_is_remembered(qtbot, tmp_path):
    first = make_window(qtbot, tmp_path)
    assert not first.side_panel.advanced.isVisible()
    qtbot.mouseClick(first.side_panel.advanced_toggle, Qt.MouseButton.LeftButton)
    assert first.side_panel.advanced.isVisible()
    first.close()
    second = make_window(qtbot, tmp_path)
    assert second.side_panel.advanced_toggle.isChecked()
    assert second.side_panel.advanced.isVisible()


def test_closing_during_a_batch_asks_first(qtbot, tmp_path, tiny_model):
    window = make_window(qtbot, tmp_path)
    release = start_held(qtbot, window, tmp_path, tiny_model, count=2, hold_row=0)

    answered = answer_dialog(qtbot, "keepRunningButton")
    assert not window.close()  # the user chose to keep upscaling
    assert answered == ["Stop upscaling?"]
    assert window.isVisible() and window.controller.running
    with qtbot.waitSignal(window.controller.batch_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        release.set()
    assert blocker.args == [False]
    assert statuses(window) == [Status.DONE, Status.DONE]
    assert window.close()  # nothing running: closes without asking


def test_quality_is_offered_only_for_lossy_formats(qtbot, window):
    panel = window.side_panel
    enabled = {}
    for fmt in ("png", "jpeg", "webp", "tiff", "same"):
        panel.format_combo.setCurrentIndex(panel.format_combo.findData(fmt))
        enabled[fmt] = panel.quality_spin.isEnabled()
    assert enabled == {"png": False, "jpeg": True, "webp": True, "tiff": False, "same": True}
    assert panel.format_combo.itemText(panel.format_combo.findData("same")) == "Same as input"


def test_same_as_input_keeps_each_files_format(qtbot, window, tmp_path, tiny_model):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(pixels).save(folder / "photo.jpg", quality=90)
    Image.fromarray(pixels).save(folder / "drawing.png")
    Image.fromarray(pixels).save(folder / "old.bmp")
    assert open_model(qtbot, window, tiny_model)
    panel = window.side_panel
    panel.format_combo.setCurrentIndex(panel.format_combo.findData("same"))
    drop(window, [folder])
    assert start_and_wait(qtbot, window) is False
    out = folder / "upscaled"
    assert sorted(p.name for p in out.iterdir()) == [
        "drawing_upscaled.png",
        "old_upscaled.png",  # BMP is not written: PNG instead
        "photo_upscaled.jpg",
    ]
    assert Image.open(out / "photo_upscaled.jpg").format == "JPEG"
    assert Image.open(out / "drawing_upscaled.png").format == "PNG"


def test_cpu_threads_reach_the_engine_and_are_remembered(qtbot, tmp_path):
    """The app's "CPU threads", as ``nexus-upscale --threads``: Automatic leaves torch's choice."""
    window = make_window(qtbot, tmp_path)
    panel = window.side_panel
    assert panel.threads_spin.value() == 0 and panel.threads_spin.text() == "Automatic"
    assert window.controller.options().threads is None
    panel.threads_spin.setValue(2)
    assert window.controller.options().threads == 2
    window.close()
    reopened = make_window(qtbot, tmp_path)
    assert reopened.side_panel.threads_spin.value() == 2
    assert reopened.controller.options().threads == 2


def test_max_pixels_refuses_a_larger_image_and_is_remembered(qtbot, tmp_path, tiny_model):
    """The app's own "Max pixels" setting, as ``nexus-upscale --max-pixels``."""
    window = make_window(qtbot, tmp_path)
    big = tmp_path / "in" / "big.png"
    big.parent.mkdir(parents=True)
    Image.new("RGB", (1100, 1000)).save(big)  # 1.1 megapixels
    small = write_png(tmp_path / "in" / "small.png", 16, 16)
    assert open_model(qtbot, window, tiny_model)
    panel = window.side_panel
    assert panel.max_pixels_spin.value() == 200  # the core's default, in megapixels
    panel.max_pixels_spin.setValue(1)
    drop(window, [big, small])
    wait_for_probe(qtbot, window)  # flagged when added, with the reason the batch would give
    assert statuses(window) == [Status.FAILED, Status.WAITING]
    assert "more than the limit of 1.0 megapixels" in notices(window)[0]
    assert start_and_wait(qtbot, window) is False
    assert statuses(window) == [Status.FAILED, Status.DONE]
    assert "more than the limit of 1.0 megapixels" in window.controller.queue.item(0).error
    window.close()
    reopened = make_window(qtbot, tmp_path)
    assert reopened.side_panel.max_pixels_spin.value() == 1
    assert reopened.controller.choices.max_megapixels == 1
