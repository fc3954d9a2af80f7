"""The desktop app driven through its real widgets (pytest-qt, offscreen)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from nexus_upscaler.gui.app import create_window  # noqa: E402
from nexus_upscaler.gui.queue_model import Status  # noqa: E402
from nexus_upscaler.gui.settings import AppSettings  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from spandrel.architectures.Compact import Compact  # noqa: E402

RUN_TIMEOUT_MS = 30_000


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # No shipped weights (no default model to load) and no user presets from the real machine.
    (tmp_path / "weights").mkdir()
    monkeypatch.setenv("NEXUS_UPSCALER_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("NEXUS_UPSCALER_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    """A real 2x SRVGGNet-Compact checkpoint with 8 features (about 2,300 parameters)."""
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    path = tmp_path / "tiny-compact-x2.safetensors"
    save_file(model.state_dict(), str(path))
    return path


def make_window(qtbot, tmp_path):
    window = create_window(AppSettings(tmp_path / "gui.ini"))
    window.controller.paste_dir = tmp_path / "pasted"
    qtbot.addWidget(window)
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
    assert "2×" in window.side_panel.model_info.text()
    assert "RealESRGAN Compact" in window.side_panel.model_info.text()
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
    assert "b.png" in window.compare_title.text()

    # a second run of the same files with "keep both" never replaces the first outputs
    for item in queue.items():
        queue.update(item.key, status=Status.WAITING)
    assert start_and_wait(qtbot, window) is False
    assert queue.item(0).output_path == tmp_path / "in" / "upscaled" / "a_upscaled-2.png"
    assert Image.open(out_a).size == (80, 60)


def test_cancel_mid_batch_leaves_no_partial_file_and_cancels_the_rest(
    qtbot, window, tmp_path, tiny_model
):
    inputs = [write_png(tmp_path / "in" / f"{n}.png", 96, 96, seed=n) for n in range(3)]
    assert open_model(qtbot, window, tiny_model)
    window.side_panel.advanced_toggle.setChecked(True)
    window.side_panel.tile_spin.setValue(32)  # 9 tiles per image: cancel lands mid-image
    window.side_panel.overlap_spin.setValue(8)
    drop(window, inputs)

    # Hold the worker at the second image's first tile until Cancel has been clicked, so the
    # click lands mid-image however fast the machine is.
    second = window.controller.queue.item(1).key
    reached, clicked = threading.Event(), threading.Event()

    def hold(key, done, total):
        if key == second and not reached.is_set():
            reached.set()
            clicked.wait(10)

    window.controller.start()
    window.controller._worker.signals.item_progress.connect(hold, Qt.DirectConnection)
    qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)
    assert window.cancel_button.isEnabled()
    with qtbot.waitSignal(window.controller.batch_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
        clicked.set()
    assert blocker.args == [True]

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
    assert "Could not load model" in window.statusBar().currentMessage()
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
    assert window.side_panel.model_info.text() == "Loading..."
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
    assert "2×" in panel.model_info.text()
    options = second.controller.options()
    assert (options.tile, options.tta, options.target_scale) == (256, True, 3.0)


def test_closing_the_window_cancels_and_waits_for_the_worker(qtbot, tmp_path, tiny_model):
    window = make_window(qtbot, tmp_path)
    inputs = [write_png(tmp_path / "in" / f"{n}.png", 96, 96, seed=n) for n in range(2)]
    assert open_model(qtbot, window, tiny_model)
    window.side_panel.tile_spin.setValue(32)
    window.side_panel.overlap_spin.setValue(8)
    drop(window, inputs)
    first = window.controller.queue.item(0).key
    reached, cancelled = threading.Event(), threading.Event()

    def hold(key, done, total):
        if key == first and not reached.is_set():
            reached.set()
            cancelled.wait(10)  # released once the window has cancelled the batch

    window.controller.message.connect(
        lambda text: cancelled.set() if text.startswith("Cancelling") else None,
        Qt.DirectConnection,
    )
    window.controller.start()
    window.controller._worker.signals.item_progress.connect(hold, Qt.DirectConnection)
    qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)

    window.close()  # returns only when the worker has stopped

    assert window.controller._batch_pool.activeThreadCount() == 0
    out_dir = tmp_path / "in" / "upscaled"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


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
