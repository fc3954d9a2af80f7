"""The comparison panel: what row is shown and its state, zoom buttons, the before/after view."""

from __future__ import annotations

from PySide6.QtGui import QImage, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .compare_view import CompareView
from .queue_model import FAILED_TEXT, QueueItem, Status


def state_text(item: QueueItem) -> str:
    """What the panel says about the row it shows, in words."""
    if item.status is Status.DONE:
        made = f" with {item.model}" if item.model else ""
        return f"Upscaled{made}: {item.output_path}"
    if item.status is Status.FAILED:
        return f"Failed: {item.error}"
    if item.status is Status.RUNNING:
        return f"Upscaling… {item.percent}%"
    if item.status is Status.CANCELLED:
        return "Cancelled before it was written; Start picks it up again."
    return "Waiting to be upscaled."


class ComparePanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.title = QLabel("Before / after", objectName="compareTitle")
        self.zoom_label = QLabel("", objectName="zoomLabel")
        self.zoom_out_button = QPushButton("−", objectName="zoomOutButton")
        self.zoom_out_button.setToolTip("Zoom out (−)")
        self.zoom_in_button = QPushButton("+", objectName="zoomInButton")
        self.zoom_in_button.setToolTip("Zoom in (+)")
        self.fit_button = QPushButton("Fit", objectName="fitButton")
        self.fit_button.setToolTip("Show the whole image (F)")
        self.actual_button = QPushButton("1:1", objectName="actualSizeButton")
        self.actual_button.setToolTip("One output pixel per screen pixel (1 or 0)")
        for button in (self.zoom_out_button, self.zoom_in_button):
            button.setFixedWidth(32)
        bar.addWidget(self.title, 1)
        for widget in (
            self.zoom_label,
            self.zoom_out_button,
            self.zoom_in_button,
            self.fit_button,
            self.actual_button,
        ):
            bar.addWidget(widget)
        layout.addLayout(bar)
        self.state_label = QLabel("", objectName="rowStateLabel")
        self.state_label.setWordWrap(True)
        self.state_label.setVisible(False)
        layout.addWidget(self.state_label)
        self.view = CompareView()
        layout.addWidget(self.view, 1)

        self.zoom_out_button.clicked.connect(lambda: self.view.zoom_out())
        self.zoom_in_button.clicked.connect(lambda: self.view.zoom_in())
        self.fit_button.clicked.connect(self.view.fit)
        self.actual_button.clicked.connect(self.view.actual_size)
        self.view.zoom_changed.connect(
            lambda z: self.zoom_label.setText(f"{z:.0%}" if self.view.has_images() else "")
        )

    def show_item(self, item: QueueItem) -> None:
        """Say which row is shown and its state; the images follow with ``set_images``."""
        self.title.setText(
            f"Before / after: {item.path.name}"
            if item.status is Status.DONE
            else f"Input: {item.path.name}"
        )
        self.state_label.setText(state_text(item))
        self.state_label.setVisible(True)
        palette = self.state_label.palette()
        role = QPalette.ColorRole.WindowText
        if item.status is Status.FAILED:
            palette.setColor(role, FAILED_TEXT)
        else:
            palette.setColor(role, self.palette().color(role))
        self.state_label.setPalette(palette)

    def set_images(self, item: QueueItem, before: QImage, after: QImage) -> None:
        if before.isNull() and after.isNull():
            reason = item.error if item.status is Status.FAILED else "it cannot be read"
            self.view.clear(f"{item.path.name} cannot be shown: {reason}")
            return
        caption = "" if not after.isNull() else "Input"
        self.view.set_images(before, None if after.isNull() else after, caption)

    def show_nothing(self) -> None:
        self.title.setText("Before / after")
        self.state_label.setVisible(False)
        self.zoom_label.setText("")
        self.view.clear("Select an image to see it here; a finished one before and after.")
