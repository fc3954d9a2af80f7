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
    queue_arguments(window, app.arguments()[1:])  # Qt has taken its own options out
    window.show()
    return app.exec()


def queue_arguments(window: MainWindow, arguments: list[str]) -> None:
    """Queue the files and folders named on the command line; one that holds no image (a
    typo, an empty folder) is named in a notice rather than dropped without a word."""
    if arguments:
        window.controller.add_paths([Path(a) for a in arguments])
