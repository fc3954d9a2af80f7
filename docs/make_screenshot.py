"""Take docs/screenshot.png from the real app: the recommended shipped model, a finished
upscale of examples/sample.png compared at 200 %, and two photos waiting (when
``../shared/datasets`` is there).

``python docs/make_screenshot.py`` with the package importable (installed, or its parent
folder on PYTHONPATH). It renders offscreen (``QWidget.grab``): no display is needed, and the
user's own settings are not touched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WAITING = ("Set5/butterfly.png", "Set14/zebra.png")  # real photos, when the data sets are here
SIZE = (1280, 820)
ZOOM = 2.0
DETAIL = (180, 140)  # input pixel at the view's centre, under the divider: text, edges, texture


def main(out: Path = ROOT / "docs" / "screenshot.png") -> int:
    from nexus_upscaler.gui.app import create_window
    from nexus_upscaler.gui.settings import APPLICATION, ORGANIZATION, AppSettings
    from nexus_upscaler.gui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    apply_theme(app)

    def wait_until(done, seconds: float = 600) -> None:
        end = time.monotonic() + seconds
        while not done():
            if time.monotonic() > end:
                raise TimeoutError("the app did not get there in time")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)

    with tempfile.TemporaryDirectory(prefix="nexus-") as tmp:
        pictures = Path(tmp) / "Pictures"
        pictures.mkdir()
        shutil.copy(ROOT / "examples" / "sample.png", pictures / "sample.png")
        datasets = ROOT.parent / "shared" / "datasets"
        waiting = [datasets / name for name in WAITING if (datasets / name).is_file()]
        for photo in waiting:
            shutil.copy(photo, pictures / photo.name)

        window = create_window(AppSettings(Path(tmp) / "gui.ini"))
        window.resize(*SIZE)
        window.show()
        c = window.controller
        wait_until(lambda: c.model_info is not None and not c.loading)
        c.add_paths([pictures / "sample.png"])
        window.queue_view.selectRow(0)
        window.queue_view.setCurrentIndex(c.queue.index(0, 0))
        c.start()
        wait_until(lambda: not c.running)
        c.add_paths([pictures / p.name for p in waiting])
        wait_until(lambda: all(i.thumbnail is not None for i in c.queue.items()))
        wait_until(window.compare_view.is_comparing)

        view = window.compare_view
        view.actual_size()  # 100 %, centred on the image's centre; then onto the detail
        scale = c.model_info.scale
        size = view.image_size()
        view.pan_by(size.width() / 2 - DETAIL[0] * scale, size.height() / 2 - DETAIL[1] * scale)
        while view.zoom < ZOOM:
            view.zoom_in()  # about the view's centre, as the + key does
        view.set_split(0.5)
        for _ in range(20):
            app.processEvents()
        if not window.grab().save(str(out)):
            raise OSError(f"could not write {out}")
        c.shutdown()
    print(f"wrote {out} ({SIZE[0]}x{SIZE[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
