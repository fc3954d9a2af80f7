"""Before/after comparison: one view, a draggable divider, shared zoom and pan.

Both images are drawn into the same rectangle (the input stretched to the output's size), so
zoom and pan are synchronized by construction: the divider only decides which image shows on
which side of it. With only an input (a row not upscaled yet) the view shows it whole.

Zoom moves along fixed steps (..., 50 %, 100 %, 200 %, 400 %, ...) so the exact magnifications
people check pixels at are always reachable from the keyboard and the wheel.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

MIN_ZOOM, MAX_ZOOM = 0.02, 64.0
ZOOM_STEPS = (
    *(0.03125, 0.0625, 0.125, 0.25, 1 / 3, 0.5, 2 / 3),
    *(1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0),
)
WHEEL_NOTCH = 120  # angle delta of one wheel notch: one zoom step
DIVIDER_GRAB = 8  # pixels either side of the divider that grab it instead of panning


class CompareView(QWidget):
    """Shows ``before`` left of the divider and ``after`` right of it.

    ``zoom`` is screen pixels per output pixel; ``offset`` is where the image's top-left
    corner sits in widget coordinates; ``split`` is the divider's position as a fraction of
    the widget's width.
    """

    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.setMinimumSize(200, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._before: QPixmap | None = None
        self._after: QPixmap | None = None
        self._zoom = 1.0
        self._offset = QPointF(0, 0)
        self._split = 0.5
        self._fit_mode = True  # refit on resize until the user zooms or pans
        self._drag: str | None = None  # "divider" or "pan"
        self._last_pos = QPointF()
        self._placeholder = "Select an image to see it here; a finished one before and after."
        self._caption = ""
        self._wheel = 0  # angle delta not yet turned into steps (touchpads send small ones)

    # --- public API ----------------------------------------------------------------------------

    def set_images(self, before: QImage | None, after: QImage | None, caption: str = "") -> None:
        """Show a new pair, or the input alone when ``after`` is None or null (GUI thread
        only: this is where pixmaps are made). ``caption`` labels a lone input."""
        self._before = (
            QPixmap.fromImage(before) if before is not None and not before.isNull() else None
        )
        self._after = QPixmap.fromImage(after) if after is not None and not after.isNull() else None
        self._caption = caption
        self.fit()

    def drop_after(self, caption: str = "Input") -> None:
        """Show the input alone (the result shown is no longer the row's), fitted."""
        if self._after is not None:
            self._after = None
            self._caption = caption
            self.fit()

    def clear(self, message: str | None = None) -> None:
        self._before = self._after = None
        self._caption = ""
        if message is not None:
            self._placeholder = message
        self.zoom_changed.emit(self._zoom)  # nothing shown: nothing to say about zoom
        self.update()

    def has_images(self) -> bool:
        return self._after is not None or self._before is not None

    def is_comparing(self) -> bool:
        """True when both images are shown, either side of the divider."""
        return self._after is not None and self._before is not None

    @property
    def placeholder(self) -> str:
        return self._placeholder

    @property
    def zoom(self) -> float:
        return self._zoom

    @property
    def split(self) -> float:
        return self._split

    def set_split(self, fraction: float) -> None:
        self._split = min(1.0, max(0.0, fraction))
        self.update()

    def image_size(self) -> QSize:
        """The frame both images are drawn in: the output's size (or the input's alone)."""
        if self._after is not None:
            return self._after.size()
        if self._before is not None:
            return self._before.size()
        return QSize()

    def fit(self) -> None:
        """Zoom so the whole image is visible, centred."""
        self._fit_mode = True
        size = self.image_size()
        if size.isEmpty():
            self.update()
            return
        zoom = min(self.width() / size.width(), self.height() / size.height())
        self._set_zoom(zoom, keep_fit=True)
        self._centre()

    def actual_size(self) -> None:
        """One output pixel per screen pixel, keeping the view's centre where it is."""
        self.zoom_at(1.0, self._centre_point())

    def zoom_in(self, anchor: QPointF | None = None) -> None:
        """The next zoom step up, keeping the view's centre (or ``anchor``) in place."""
        bigger = [z for z in ZOOM_STEPS if z > self._zoom * 1.001]
        if bigger:
            self.zoom_at(bigger[0], anchor if anchor is not None else self._centre_point())

    def zoom_out(self, anchor: QPointF | None = None) -> None:
        smaller = [z for z in ZOOM_STEPS if z < self._zoom * 0.999]
        if smaller:
            self.zoom_at(smaller[-1], anchor if anchor is not None else self._centre_point())

    def _centre_point(self) -> QPointF:
        return QPointF(self.width() / 2, self.height() / 2)

    def zoom_at(self, zoom: float, anchor: QPointF) -> None:
        """Set ``zoom`` keeping the image point under ``anchor`` fixed on screen."""
        if self.image_size().isEmpty():
            return
        image_point = (anchor - self._offset) / self._zoom
        self._set_zoom(zoom)
        self._offset = anchor - image_point * self._zoom
        self.update()

    def pan_by(self, dx: float, dy: float) -> None:
        self._fit_mode = False
        self._offset += QPointF(dx, dy)
        self.update()

    # --- internals -----------------------------------------------------------------------------

    def _set_zoom(self, zoom: float, keep_fit: bool = False) -> None:
        self._fit_mode = keep_fit
        self._zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        self.zoom_changed.emit(self._zoom)

    def _centre(self) -> None:
        size = self.image_size()
        self._offset = QPointF(
            (self.width() - size.width() * self._zoom) / 2,
            (self.height() - size.height() * self._zoom) / 2,
        )
        self.update()

    def _divider_x(self) -> float:
        return self._split * self.width()

    def _target(self) -> QRectF:
        size = self.image_size()
        return QRectF(
            self._offset.x(),
            self._offset.y(),
            size.width() * self._zoom,
            size.height() * self._zoom,
        )

    # --- events --------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.window().color().darker(115))
        if not self.has_images():
            painter.setPen(palette.placeholderText().color())
            flags = Qt.AlignmentFlag.AlignCenter.value | Qt.TextFlag.TextWordWrap.value
            painter.drawText(self.rect().adjusted(24, 24, -24, -24), flags, self._placeholder)
            return
        # Smooth when shrinking (avoids aliasing), nearest when magnifying (shows real pixels).
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._zoom < 1.0)
        target = self._target()
        if not self.is_comparing():
            lone = self._after or self._before
            assert lone is not None
            painter.drawPixmap(target, lone, QRectF(lone.rect()))
            if self._caption:
                self._paint_label(painter, self._caption, QRectF(10, 8, 600, 22), left=True)
            return
        x = self._divider_x()
        for pixmap, clip in (
            (self._before, QRectF(0, 0, x, self.height())),
            (self._after, QRectF(x, 0, self.width() - x, self.height())),
        ):
            if pixmap is None:
                continue
            painter.save()
            painter.setClipRect(clip)
            painter.drawPixmap(target, pixmap, QRectF(pixmap.rect()))
            painter.restore()
        self._paint_divider(painter, x)

    def _paint_divider(self, painter: QPainter, x: float) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(255, 255, 255, 230), 2))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        handle = QRectF(x - 9, self.height() / 2 - 18, 18, 36)
        painter.setBrush(QColor(40, 40, 40, 200))
        painter.drawRoundedRect(handle, 6, 6)
        self._paint_label(painter, "Before", QRectF(x - 110, 8, 100, 22), left=False)
        self._paint_label(painter, "After", QRectF(x + 10, 8, 100, 22), left=True)

    def _paint_label(self, painter: QPainter, text: str, rect: QRectF, left: bool) -> None:
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        align = Qt.AlignmentFlag.AlignLeft if left else Qt.AlignmentFlag.AlignRight
        box = painter.boundingRect(rect, align | Qt.AlignmentFlag.AlignVCenter, text)
        box.adjust(-6, -2, 6, 2)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        self._wheel += event.angleDelta().y()
        while abs(self._wheel) >= WHEEL_NOTCH:
            if self._wheel > 0:
                self._wheel -= WHEEL_NOTCH
                self.zoom_in(event.position())
            else:
                self._wheel += WHEEL_NOTCH
                self.zoom_out(event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self.has_images():
            return super().mousePressEvent(event)
        near_divider = (
            self.is_comparing() and abs(event.position().x() - self._divider_x()) <= DIVIDER_GRAB
        )
        self._drag = "divider" if near_divider else "pan"
        self._last_pos = event.position()
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._drag == "divider":
            self.set_split(pos.x() / max(1, self.width()))
        elif self._drag == "pan":
            delta = pos - self._last_pos
            self.pan_by(delta.x(), delta.y())
        self._last_pos = pos
        near = abs(pos.x() - self._divider_x()) <= DIVIDER_GRAB
        if self._drag == "pan":
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._drag == "divider" or (near and self.is_comparing()):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        else:
            self.setCursor(Qt.CursorShape.OpenHandCursor)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag = None
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        # Double-click toggles between fitting the window and 1:1, like most image viewers.
        if self._fit_mode:
            self.zoom_at(1.0, event.position())
        else:
            self.fit()
