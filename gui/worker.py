"""Work off the GUI thread: the batch upscale, model loading, probing new files, previews.

Each task is a ``QRunnable`` with a separate signals ``QObject`` (a runnable cannot emit).
Signals cross to the GUI thread as queued connections; tasks build ``QImage`` only, the GUI
thread turns them into ``QPixmap``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader

from ..core.errors import error_reason
from ..core.imageio import DEFAULT_MAX_PIXELS
from .queue_model import THUMBNAIL_SIZE


@dataclass(frozen=True)
class Job:
    """One file of a batch: the queue row's key, the input and the planned output path."""

    key: int
    input_path: Path
    output_path: Path
    problem: str = ""  # known before the run (an output folder that is a file): fails the row


class BatchSignals(QObject):
    item_started = Signal(int)  # key
    item_progress = Signal(int, int, int)  # key, tiles done, tiles total
    item_done = Signal(int, str, int, int)  # key, output path, output width, output height
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
        format: str | None,
        quality: int,
        overwrite: bool,
        cancel: Any,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__()
        self.signals = BatchSignals()
        self._max_pixels = max_pixels
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
            if job.problem:
                signals.item_failed.emit(job.key, job.problem)
                continue
            signals.item_started.emit(job.key)

            def progress(done: int, total: int, key: int = job.key) -> None:
                signals.item_progress.emit(key, done, total)

            try:
                result = upscale_file(
                    self._descriptor,
                    job.input_path,
                    job.output_path,
                    self._options,
                    format=self._format,
                    quality=self._quality,
                    overwrite=self._overwrite,
                    progress=progress,
                    cancel=self._cancel,
                    max_pixels=self._max_pixels,
                )
            except UpscaleCancelled:
                cancelled = True
                signals.item_cancelled.emit(job.key)
            except Exception as exc:  # noqa: BLE001 (one bad file must not end the batch)
                signals.item_failed.emit(job.key, error_reason(exc))
            else:
                width, height = result.output_size
                signals.item_done.emit(job.key, str(job.output_path), width, height)
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
    """Decode ``path`` (optionally scaled down to fit ``scaled_to``); null image on failure.

    Qt refuses images over 256 MB by default; the app's own limit is Max pixels, checked
    before this, so Qt is allowed whatever the image needs."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid():
        needed_mb = size.width() * size.height() * 8 // 2**20 + 1
        reader.setAllocationLimit(max(reader.allocationLimit(), needed_mb))
        if scaled_to is not None:
            reader.setScaledSize(size.scaled(scaled_to, Qt.AspectRatioMode.KeepAspectRatio))
    return reader.read()


def qimage_from_array(array: np.ndarray) -> QImage:
    """An (H, W, C) uint8/uint16 array as a QImage (8 bits per channel), owning its pixels."""
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels == 2:  # gray + alpha: Qt has no such format
        gray, alpha = array[:, :, :1], array[:, :, 1:]
        array = np.concatenate([gray, gray, gray, alpha], axis=2)
    elif channels == 1:
        array = np.repeat(array, 3, axis=2)
    array = np.ascontiguousarray(array)
    height, width, channels = array.shape
    fmt = QImage.Format.Format_RGBA8888 if channels == 4 else QImage.Format.Format_RGB888
    return QImage(array.data, width, height, width * channels, fmt).copy()


@dataclass(frozen=True)
class Decoded:
    image: QImage  # null when the file cannot be shown
    size: QSize  # the image's own size (invalid when unknown)
    reason: str = ""  # why it cannot be read


def decode(
    path: Path, scaled_to: QSize | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Decoded:
    """The image (scaled down to fit ``scaled_to``), or the reason it cannot be read.

    Qt decodes first (fast, and it can scale while decoding); what Qt cannot read goes
    through the core's reader, which reads more (16-bit, CMYK ...) and says why it failed. An
    image over ``max_pixels`` is refused as the batch would refuse it, before decoding.
    """
    from ..core.errors import ImageTooLargeError
    from ..core.imageio import read_image

    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max_pixels and size.width() * size.height() > max_pixels:
        too_large = ImageTooLargeError(path, size.width() * size.height(), max_pixels)
        return Decoded(QImage(), size, too_large.reason)
    image = read_qimage(path, scaled_to)
    if not image.isNull():
        return Decoded(image, size)
    try:
        loaded = read_image(path, max_pixels=max_pixels)
    except Exception as exc:  # noqa: BLE001 (any reason is the row's message)
        return Decoded(QImage(), size, error_reason(exc))
    image = qimage_from_array(loaded.array)
    full = image.size()
    if scaled_to is not None:
        image = image.scaled(
            scaled_to,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return Decoded(image, full)


class ProbeSignals(QObject):
    thumbnail = Signal(int, QImage, QSize)  # key, small image, the image's full size
    unreadable = Signal(int, str)  # key, reason
    finished = Signal(list)  # [(key, reason)] of the files that cannot be read


class ProbeTask(QRunnable):
    """Decodes each newly queued file once: a thumbnail, or the reason it cannot be read.

    A corrupt file is flagged when it is added, not only when the batch reaches it. ``stop``
    (the window closing) ends the checks between files: a large folder must not hold it open.
    """

    def __init__(
        self,
        items: list[tuple[int, Path]],
        max_pixels: int | None,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.signals = ProbeSignals()
        self._items = items
        self._max_pixels = max_pixels
        self._stop = stop

    def run(self) -> None:
        bad: list[tuple[int, str]] = []
        for key, path in self._items:
            if self._stop is not None and self._stop.is_set():
                return
            decoded = decode(path, THUMBNAIL_SIZE, self._max_pixels)
            if decoded.image.isNull():
                bad.append((key, decoded.reason))
                self.signals.unreadable.emit(key, decoded.reason)
            else:
                self.signals.thumbnail.emit(key, decoded.image, decoded.size)
        self.signals.finished.emit(bad)


class PreviewSignals(QObject):
    loaded = Signal(int, QImage, QImage)  # key, input, output (null when there is none)


class PreviewTask(QRunnable):
    """Decodes a row's input, and its output when it has one, for the before/after view."""

    def __init__(self, key: int, before: Path, after: Path | None) -> None:
        super().__init__()
        self.signals = PreviewSignals()
        self._key, self._before, self._after = key, before, after

    def run(self) -> None:
        # No pixel limit here: the row's image was accepted (or refused) already.
        before = decode(self._before, max_pixels=None).image
        after = decode(self._after, max_pixels=None).image if self._after else QImage()
        self.signals.loaded.emit(self._key, before, after)
