"""Work off the GUI thread: the batch upscale, model loading, thumbnails and comparison images.

Each task is a ``QRunnable`` with a separate signals ``QObject`` (a runnable cannot emit).
Signals cross to the GUI thread as queued connections; tasks build ``QImage`` only, the GUI
thread turns them into ``QPixmap``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader

from .queue_model import THUMBNAIL_SIZE


@dataclass(frozen=True)
class Job:
    """One file of a batch: the queue row's key, the input and the planned output path."""

    key: int
    input_path: Path
    output_path: Path


def error_reason(exc: BaseException) -> str:
    """A short reason for the queue row (the row already names the file)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    text = str(exc).strip()
    return text or type(exc).__name__


class BatchSignals(QObject):
    item_started = Signal(int)  # key
    item_progress = Signal(int, int, int)  # key, tiles done, tiles total
    item_done = Signal(int, str)  # key, output path
    item_failed = Signal(int, str)  # key, reason
    item_cancelled = Signal(int)  # key
    finished = Signal(bool)  # True when the batch was cancelled


class BatchWorker(QRunnable):
    """Upscales ``jobs`` one after another with ``core.pipeline.upscale_file``.

    A failing file fails its own row and the batch goes on. ``cancel`` is the engine's
    ``CancelToken``: the engine checks it before every tile, so Cancel takes effect at the next
    tile, and the pipeline writes nothing for a cancelled file. Files not yet started are then
    reported cancelled.
    """

    def __init__(
        self,
        descriptor: Any,
        jobs: list[Job],
        options: Any,
        *,
        format: str,
        quality: int,
        overwrite: bool,
        cancel: Any,
    ) -> None:
        super().__init__()
        self.signals = BatchSignals()
        self._descriptor = descriptor
        self._jobs = list(jobs)
        self._options = options
        self._format = format
        self._quality = quality
        self._overwrite = overwrite
        self._cancel = cancel

    def run(self) -> None:
        from ..core.errors import UpscaleCancelled
        from ..core.pipeline import upscale_file

        signals = self.signals
        cancelled = False
        for job in self._jobs:
            if cancelled or self._cancel.cancelled:
                cancelled = True
                signals.item_cancelled.emit(job.key)
                continue
            signals.item_started.emit(job.key)

            def progress(done: int, total: int, key: int = job.key) -> None:
                signals.item_progress.emit(key, done, total)

            try:
                upscale_file(
                    self._descriptor,
                    job.input_path,
                    job.output_path,
                    self._options,
                    format=self._format,
                    quality=self._quality,
                    overwrite=self._overwrite,
                    progress=progress,
                    cancel=self._cancel,
                )
            except UpscaleCancelled:
                cancelled = True
                signals.item_cancelled.emit(job.key)
            except Exception as exc:  # noqa: BLE001 (one bad file must not end the batch)
                signals.item_failed.emit(job.key, error_reason(exc))
            else:
                signals.item_done.emit(job.key, str(job.output_path))
        signals.finished.emit(cancelled)


class ModelSignals(QObject):
    loaded = Signal(int, object, object)  # request number, checkpoint path, ModelDescriptor
    failed = Signal(int, str)  # request number, reason


class ModelTask(QRunnable):
    """Resolves a model name or path and loads the checkpoint (safely, on the CPU).

    A large checkpoint takes seconds to read and build; the window stays responsive meanwhile.
    """

    def __init__(self, request: int, spec: str) -> None:
        super().__init__()
        self.signals = ModelSignals()
        self._request, self._spec = request, spec

    def run(self) -> None:
        from ..core.loading import load_model
        from ..core.zoo import resolve_model

        try:
            path = resolve_model(self._spec)
            descriptor = load_model(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 (any unreadable checkpoint is a user message)
            self.signals.failed.emit(self._request, error_reason(exc))
        else:
            self.signals.loaded.emit(self._request, path, descriptor)


def read_qimage(path: Path, scaled_to: QSize | None = None) -> QImage:
    """Decode ``path`` (optionally scaled down to fit ``scaled_to``); null image on failure."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    if scaled_to is not None:
        size = reader.size()
        if size.isValid():
            reader.setScaledSize(size.scaled(scaled_to, Qt.AspectRatioMode.KeepAspectRatio))
    return reader.read()


class ThumbnailSignals(QObject):
    thumbnail = Signal(int, QImage)  # key, small image


class ThumbnailTask(QRunnable):
    """Decodes small thumbnails for newly queued files."""

    def __init__(self, items: list[tuple[int, Path]]) -> None:
        super().__init__()
        self.signals = ThumbnailSignals()
        self._items = items

    def run(self) -> None:
        for key, path in self._items:
            image = read_qimage(path, THUMBNAIL_SIZE)
            if not image.isNull():
                self.signals.thumbnail.emit(key, image)


class CompareSignals(QObject):
    loaded = Signal(int, QImage, QImage)  # key, before, after


class CompareTask(QRunnable):
    """Decodes an input and its output for the before/after view."""

    def __init__(self, key: int, before: Path, after: Path) -> None:
        super().__init__()
        self.signals = CompareSignals()
        self._key, self._before, self._after = key, before, after

    def run(self) -> None:
        before = read_qimage(self._before)
        after = read_qimage(self._after)
        self.signals.loaded.emit(self._key, before, after)
