"""The model picker: each model with what it is for, in the zoo's words, recommended first.

The closed picker shows the model's name; its list shows each shipped model's name over its
description; under the picker the loaded model's description and its technical summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from .controller import ModelInfo

OPEN_MODEL = "\x00open"  # item data of the "Open model..." entry
DESCRIPTION_ROLE = Qt.ItemDataRole.UserRole + 1
RECOMMENDED_ROLE = Qt.ItemDataRole.UserRole + 2
RECOMMENDED = "recommended"
PADDING = 6

_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    recommended: bool = False


def _small(font: QFont) -> QFont:
    small = QFont(font)
    small.setPointSizeF(max(6.0, font.pointSizeF() * 0.9))
    return small


class ModelItemDelegate(QStyledItemDelegate):
    """Draws a model as its name (bold, with a "recommended" mark) over its description."""

    def __init__(self, view: QListView, width: Callable[[], int]) -> None:
        super().__init__(view)
        self._width = width  # the list's width before it is first shown (the picker's)

    def _is_separator(self, index: _Index) -> bool:
        return index.data(Qt.ItemDataRole.AccessibleDescriptionRole) == "separator"

    def _text_width(self, option: QStyleOptionViewItem) -> int:
        return max(120, self._width() - 2 * PADDING - 4)

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        if self._is_separator(index):
            return QSize(10, 7)
        description = index.data(DESCRIPTION_ROLE) or ""
        font = option.font  # type: ignore[attr-defined]
        height = QFontMetrics(font).height() + 2 * PADDING
        if description:
            rect = QFontMetrics(_small(font)).boundingRect(
                QRect(0, 0, self._text_width(option), 10_000),
                Qt.TextFlag.TextWordWrap,
                description,
            )
            height += rect.height() + 2
        return QSize(self._text_width(option), height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        rect: QRect = option.rect  # type: ignore[attr-defined]
        palette: QPalette = option.palette  # type: ignore[attr-defined]
        if self._is_separator(index):
            y = rect.center().y()
            painter.setPen(palette.mid().color())
            painter.drawLine(rect.left() + PADDING, y, rect.right() - PADDING, y)
            return
        selected = bool(option.state & QStyle.StateFlag.State_Selected)  # type: ignore[attr-defined]
        painter.save()
        if selected:
            painter.fillRect(rect, palette.highlight())
        text_colour = palette.highlightedText() if selected else palette.text()
        muted = text_colour.color()
        if not selected:
            muted = palette.placeholderText().color()
        inner = rect.adjusted(PADDING, PADDING, -PADDING, -PADDING)
        bold = QFont(option.font)  # type: ignore[attr-defined]
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(text_colour.color())
        name = index.data(Qt.ItemDataRole.DisplayRole) or ""
        line = QFontMetrics(bold).height()
        painter.drawText(inner.left(), inner.top(), inner.width(), line, 0, name)
        if index.data(RECOMMENDED_ROLE):
            painter.setFont(_small(option.font))  # type: ignore[attr-defined]
            painter.setPen(muted)
            left = inner.left() + QFontMetrics(bold).horizontalAdvance(name) + 8
            painter.drawText(
                left, inner.top(), inner.right() - left, line,
                Qt.AlignmentFlag.AlignVCenter, RECOMMENDED,
            )  # fmt: skip
        description = index.data(DESCRIPTION_ROLE) or ""
        if description:
            painter.setFont(_small(option.font))  # type: ignore[attr-defined]
            painter.setPen(muted)
            below = QRect(inner.left(), inner.top() + line + 2, inner.width(), inner.height())
            painter.drawText(below, Qt.TextFlag.TextWordWrap, description)
        painter.restore()


class ModelPicker(QWidget):
    model_chosen = Signal(str)  # a shipped model name or a checkpoint path
    open_model_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.combo = QComboBox(objectName="modelCombo")
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(12)
        view = QListView()
        view.setWordWrap(True)
        view.setUniformItemSizes(False)
        view.setItemDelegate(ModelItemDelegate(view, self.combo.width))
        self.combo.setView(view)
        self.combo.setToolTip("Which model upscales the images; the list says what each is for")
        self.combo.activated.connect(self._on_activated)
        self.description = QLabel("", objectName="modelDescriptionLabel")
        self.description.setWordWrap(True)
        self.info = QLabel("No model loaded", objectName="modelInfoLabel")
        self.info.setWordWrap(True)
        self.info.setFont(_small(self.info.font()))
        self.info.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(self.combo)
        layout.addWidget(self.description)
        layout.addWidget(self.info)

    def _on_activated(self, _index: int) -> None:
        data = self.combo.currentData()
        if data == OPEN_MODEL:
            self.open_model_requested.emit()
        elif data:
            self.model_chosen.emit(data)

    def set_models(self, shipped: list[ModelEntry], recent: list[str], current: str) -> None:
        """Fill the list: shipped models (in the given order), recent files, Open model..."""
        combo = self.combo
        combo.blockSignals(True)
        combo.clear()
        shipped_names = {entry.name for entry in shipped}
        for entry in shipped:
            combo.addItem(entry.name, entry.name)
            row = combo.count() - 1
            combo.setItemData(row, entry.description, DESCRIPTION_ROLE)
            combo.setItemData(row, entry.recommended, RECOMMENDED_ROLE)
            if entry.description:
                combo.setItemData(row, entry.description, Qt.ItemDataRole.ToolTipRole)
        files = [m for m in recent if m not in shipped_names]
        if files:
            if combo.count():
                combo.insertSeparator(combo.count())
            for path in files:
                combo.addItem(Path(path).name, path)
                row = combo.count() - 1
                combo.setItemData(row, f"A checkpoint you opened: {path}", DESCRIPTION_ROLE)
                combo.setItemData(row, path, Qt.ItemDataRole.ToolTipRole)
        if combo.count():
            combo.insertSeparator(combo.count())
        combo.addItem("Open model…", OPEN_MODEL)
        combo.setItemData(
            combo.count() - 1,
            "Any checkpoint spandrel reads: ESRGAN, SwinIR, HAT, ...",
            DESCRIPTION_ROLE,
        )
        index = combo.findData(current) if current else -1
        combo.setCurrentIndex(index if index >= 0 else -1)
        combo.blockSignals(False)

    def show_model(self, info: ModelInfo | None, loading: bool = False) -> None:
        if loading:
            self.description.setText("")
            self.description.setVisible(False)
            self.info.setText("Loading...")
            return
        description = info.description if info is not None else ""
        self.description.setText(description)
        self.description.setVisible(bool(description))
        self.info.setText(info.summary() if info is not None else "No model loaded")
