"""Building the application and its window."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from .controller import Controller
from .desktop import Desktop
from .main_window import MainWindow
from .settings import APPLICATION, ORGANIZATION, AppSettings
from .theme import follow_system_theme


def create_window(
    settings: AppSettings | None = None, desktop: Desktop | None = None
) -> MainWindow:
    """A window over a fresh controller (``settings`` defaults to the user's own;
    ``desktop`` is how files are handed to the system, a recorder in tests)."""
    controller = Controller(settings or AppSettings())
    window = MainWindow(controller, desktop)
    controller.setParent(window)
    return window


def run(argv: list[str] | None = None) -> int:
    """Start the app; files and folders named on the command line are queued."""
    argv = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(argv)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("NEXUS Upscaler")
    follow_system_theme(app)
    window = create_window()
    paths = [Path(a) for a in app.arguments()[1:] if Path(a).exists()]
    if paths:
        window.controller.add_paths(paths)
    window.show()
    return app.exec()
