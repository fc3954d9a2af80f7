"""The queue of images: one row per input file, its sizes, thumbnail and status."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QColor, QImage, QImageReader, QPixmap

from ..core.inputs import IMAGE_EXTENSIONS

IMAGE_SUFFIXES = IMAGE_EXTENSIONS  # what a folder yields; the open dialog offers the same
THUMBNAIL_SIZE = QSize(48, 48)
# Translucent, so a failed row reads as red on the light and the dark palette alike.
FAILED_BACKGROUND = QColor(220, 40, 40, 56)
FAILED_TEXT = QColor(200, 30, 30)

_Index = QModelIndex | QPersistentModelIndex


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class QueueItem:
    """One input file. ``key`` is stable while rows are added and removed."""

    key: int
    path: Path
    input_size: QSize  # invalid (-1 x -1) when the header cannot be read
    status: Status = Status.WAITING
    percent: int = 0
    error: str = ""
    output_path: Path | None = None
    output_size: QSize | None = None  # what was written (a finished row keeps its own sizes)
    model: str = ""  # the model that made the output
    thumbnail: QImage | None = None
    _pixmap: QPixmap | None = None  # made from ``thumbnail`` on first paint, GUI thread only

    def status_text(self) -> str:
        if self.status is Status.RUNNING:
            return f"running {self.percent}%"
        if self.status is Status.FAILED:
            return f"failed: {self.error}"
        return self.status.value

    def reset(self) -> None:
        """Back to waiting, forgetting the last run's result (the file on disk stays)."""
        self.status, self.percent, self.error = Status.WAITING, 0, ""
        self.output_path = self.output_size = None
        self.model = ""


def read_input_size(path: Path) -> QSize:
    """The image's size from its header only (cheap even for a folder of large images)."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    return size if size.isValid() else QSize()


class QueueModel(QAbstractTableModel):
    """Rows of ``QueueItem``; columns: image (thumbnail and name), size, status."""

    COLUMNS = ("Image", "Size", "Status")
    IMAGE, SIZE, STATUS = range(3)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._items: list[QueueItem] = []
        self._keys = itertools.count(1)
        self._scale: float | None = None

    # --- Qt model interface --------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self._items[index.row()]
        column = index.column()
        failed = item.status is Status.FAILED
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.IMAGE:
                return item.path.name
            if column == self.SIZE:
                return self.size_text(item)
            return item.status_text()
        if role == Qt.ItemDataRole.DecorationRole and column == self.IMAGE:
            if item.thumbnail is not None and item._pixmap is None:
                item._pixmap = QPixmap.fromImage(item.thumbnail)
            return item._pixmap
        if role == Qt.ItemDataRole.BackgroundRole and failed:
            return FAILED_BACKGROUND
        if role == Qt.ItemDataRole.ForegroundRole and failed and column == self.STATUS:
            return FAILED_TEXT
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(item)
        if role == Qt.ItemDataRole.UserRole:
            return item.key
        return None

    def tooltip(self, item: QueueItem) -> str:
        if item.status is Status.FAILED:
            return f"{item.path}\nFailed: {item.error}"
        if item.status is Status.DONE and item.output_path is not None:
            made = f" with {item.model}" if item.model else ""
            return f"{item.path}\nUpscaled{made} to {item.output_path}\nDouble-click to open it."
        return str(item.path)

    # --- queue operations ----------------------------------------------------------------------

    def add_files(self, paths: list[Path]) -> list[QueueItem]:
        """Append the files not yet queued; returns the new items. (Which files a folder
        holds is the core's rule, ``core.inputs.find_inputs``: the controller asks it.)"""
        known = {item.path for item in self._items}
        new: list[QueueItem] = []
        for path in paths:
            resolved = path.resolve()
            if resolved in known:
                continue
            known.add(resolved)
            new.append(QueueItem(next(self._keys), resolved, read_input_size(resolved)))
        if new:
            first = len(self._items)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._items.extend(new)
            self.endInsertRows()
        return new

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            if 0 <= row < len(self._items):
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._items[row]
                self.endRemoveRows()

    def items(self) -> list[QueueItem]:
        return list(self._items)

    def item(self, row: int) -> QueueItem:
        return self._items[row]

    def row_of(self, key: int) -> int:
        for row, item in enumerate(self._items):
            if item.key == key:
                return row
        return -1

    def find(self, key: int) -> QueueItem | None:
        row = self.row_of(key)
        return None if row < 0 else self._items[row]

    def update(self, key: int, **changes) -> None:
        """Change fields of the item ``key`` (if still queued) and repaint its row."""
        row = self.row_of(key)
        if row < 0:
            return
        item = self._items[row]
        for name, value in changes.items():
            setattr(item, name, value)
        if "thumbnail" in changes:
            item._pixmap = None
        self._row_changed(row)

    def reset_item(self, key: int) -> None:
        """Make a finished row wait again (see ``QueueItem.reset``)."""
        row = self.row_of(key)
        if row >= 0:
            self._items[row].reset()
            self._row_changed(row)

    def _row_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def set_scale(self, scale: float | None) -> None:
        """The factor used for the planned "input -> output" sizes (model or target scale).

        Finished rows keep the sizes of what was written."""
        self._scale = scale
        if self._items:
            self.dataChanged.emit(
                self.index(0, self.SIZE), self.index(len(self._items) - 1, self.SIZE)
            )

    def size_text(self, item: QueueItem) -> str:
        size = item.input_size
        if not size.isValid():
            return "?"
        text = f"{size.width()}×{size.height()}"
        if item.output_size is not None and item.output_size.isValid():
            text += f" → {item.output_size.width()}×{item.output_size.height()}"
        elif self._scale:
            out_w, out_h = (round(size.width() * self._scale), round(size.height() * self._scale))
            text += f" → {out_w}×{out_h}"
        return text
