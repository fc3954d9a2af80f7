"""Handing files to the rest of the desktop: open a result, show it in the file manager.

Everything goes through one ``Desktop`` object the window is given, so tests can substitute
one that records what would have been opened instead of launching viewers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices


class Desktop:
    """Opens files and folders with the user's applications.

    ``platform`` is ``sys.platform`` unless given (tests check each platform's way of
    showing a file in its folder).
    """

    def __init__(self, platform: str | None = None) -> None:
        self.platform = platform or sys.platform

    # --- the three ways out to the system (what a test double overrides) -----------------------

    def open_url(self, url: QUrl) -> bool:
        return QDesktopServices.openUrl(url)

    def start_detached(self, program: str, arguments: list[str]) -> bool:
        ok, _pid = QProcess.startDetached(program, arguments)
        return bool(ok)

    def show_items(self, path: Path) -> bool:
        """The freedesktop.org file manager interface, which selects the file (Linux, BSD)."""
        try:
            from PySide6.QtDBus import QDBusConnection, QDBusInterface, QDBusMessage
        except ImportError:
            return False
        bus = QDBusConnection.sessionBus()
        if not bus.isConnected():
            return False
        interface = QDBusInterface(
            "org.freedesktop.FileManager1",
            "/org/freedesktop/FileManager1",
            "org.freedesktop.FileManager1",
            bus,
        )
        if not interface.isValid():
            return False
        reply = interface.call("ShowItems", [QUrl.fromLocalFile(str(path)).toString()], "")
        return reply.type() != QDBusMessage.MessageType.ErrorMessage

    # --- what the app asks for -----------------------------------------------------------------

    def open_path(self, path: Path) -> bool:
        """Open a file with its default application, or a folder in the file manager."""
        return self.open_url(QUrl.fromLocalFile(str(path)))

    def reveal(self, path: Path) -> bool:
        """Show ``path`` selected in its folder; where that is not possible, open the folder."""
        if self.platform.startswith("win"):
            # two arguments: Windows quotes one holding spaces, and Explorer wants the path apart
            return self.start_detached("explorer.exe", ["/select,", _windows_path(path)])
        if self.platform == "darwin":
            return self.start_detached("open", ["-R", str(path)])
        return self.show_items(path) or self.open_path(path.parent)


def _windows_path(path: Path) -> str:
    return str(path).replace("/", "\\")
