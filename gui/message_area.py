"""The message area: notices that stay on screen until the user dismisses them.

Errors and the end of a batch used to flash by in the status bar; here each one is a banner
with what happened, the files and reasons, and a close button.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .controller import Notice

MAX_BANNERS = 5  # the oldest goes when a sixth arrives
INLINE_DETAILS = 4  # more lines than this go into a scrolling box

# Translucent fills and solid edges read on the light and the dark palette alike.
LEVEL_COLOURS = {
    "error": ("rgba(220, 40, 40, 40)", "rgb(200, 40, 40)"),
    "warning": ("rgba(230, 160, 20, 45)", "rgb(200, 140, 20)"),
    "info": ("rgba(60, 130, 220, 40)", "rgb(60, 120, 200)"),
}
LEVEL_ICONS = {
    "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
    "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
}


class NoticeBanner(QFrame):
    """One notice: icon, text, the per-file details, an optional folder button, close."""

    dismissed = Signal()
    open_folder_requested = Signal(object)  # Path

    def __init__(self, notice: Notice, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.notice = notice
        self.setObjectName(f"notice_{notice.level}")
        fill, edge = LEVEL_COLOURS[notice.level]
        self.setStyleSheet(
            f"#{self.objectName()} {{ background: {fill}; border: 1px solid {edge};"
            " border-radius: 4px; }"
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 6, 4, 6)
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(LEVEL_ICONS[notice.level]).pixmap(20, 20))
        row.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)

        body = QVBoxLayout()
        self.text_label = QLabel(notice.text, objectName="noticeText")
        self.text_label.setWordWrap(True)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        body.addWidget(self.text_label)
        self.details: QLabel | QPlainTextEdit | None = None
        if notice.details:
            text = "\n".join(notice.details)
            if len(notice.details) <= INLINE_DETAILS:
                label = QLabel(text, objectName="noticeDetails")
                label.setWordWrap(True)
                label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                self.details = label
            else:
                box = QPlainTextEdit(text, objectName="noticeDetails")
                box.setReadOnly(True)
                box.setMaximumHeight(110)
                self.details = box
            body.addWidget(self.details)
        if notice.folder is not None:
            self.folder_button = QPushButton("Open output folder", objectName="noticeFolderButton")
            self.folder_button.clicked.connect(
                lambda: self.open_folder_requested.emit(notice.folder)
            )
            buttons = QHBoxLayout()
            buttons.addWidget(self.folder_button)
            buttons.addStretch(1)
            body.addLayout(buttons)
        row.addLayout(body, 1)

        self.close_button = QToolButton(objectName="dismissButton")
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismissed)
        row.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)

    def details_text(self) -> str:
        if isinstance(self.details, QPlainTextEdit):
            return self.details.toPlainText()
        return self.details.text() if self.details is not None else ""


class MessageArea(QWidget):
    """A stack of banners, newest on top; hidden when there is nothing to say."""

    open_folder_requested = Signal(object)  # Path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageArea")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 4)
        self._layout.setSpacing(4)
        self.setVisible(False)

    def banners(self) -> list[NoticeBanner]:
        return [
            w
            for i in range(self._layout.count())
            if isinstance(w := self._layout.itemAt(i).widget(), NoticeBanner)
        ]

    def show_notice(self, notice: Notice) -> NoticeBanner:
        replaced = {notice.topic, *notice.supersedes} - {""}
        for banner in self.banners():
            if banner.notice.topic in replaced or banner.notice == notice:
                self._remove(banner)
        banner = NoticeBanner(notice, self)
        banner.dismissed.connect(lambda: self._remove(banner))
        banner.open_folder_requested.connect(self.open_folder_requested)
        self._layout.insertWidget(0, banner)
        banner.show()  # a layout shows a new child only later, from the event loop
        for old in self.banners()[MAX_BANNERS:]:
            self._remove(old)
        self.setVisible(True)
        return banner

    def dismiss_all(self) -> None:
        for banner in self.banners():
            self._remove(banner)

    def _remove(self, banner: NoticeBanner) -> None:
        self._layout.removeWidget(banner)
        banner.hide()
        banner.deleteLater()
        self.setVisible(bool(self.banners()))
