"""A batch of files through one model, with reading and writing overlapped with the model.

While the model upscales file k, one background thread decodes file k+1 and another encodes and
writes file k-1 (Pillow and zlib release the GIL while they work), so a batch costs about the
model's time alone instead of model + decode + encode per file: a 1440x1152 photo at x4 spends
~4 s in the PNG encoder on a CPU. Every rule of ``core.pipeline.upscale_file`` holds for each
file: never over an input, atomic writes, nothing written for a failed or cancelled file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UpscaleCancelled
from .imageio import DEFAULT_MAX_PIXELS, LoadedImage, read_image
from .pipeline import UpscaleResult, check_output, upscale_loaded, write_result

if TYPE_CHECKING:
    import spandrel

    from .options import CancelToken, ProgressFn, UpscaleOptions

__all__ = ["BatchItem", "BatchOutcome", "upscale_files"]


@dataclass(frozen=True)
class BatchItem:
    """One file to upscale into ``output_path``; ``key`` is the caller's own handle (a row)."""

    input_path: Path
    output_path: Path
    key: Any = None


@dataclass
class BatchOutcome:
    """What became of one item: ``result`` when written, else the ``error`` (``UpscaleCancelled``
    when cancelled)."""

    item: BatchItem
    result: UpscaleResult | None = None
    error: Exception | None = None


def upscale_files(
    descriptor: spandrel.ImageModelDescriptor,
    items: Iterable[BatchItem],
    options: UpscaleOptions,
    *,
    format: str | None = None,
    quality: int = 95,
    compress_level: int | None = None,
    overwrite: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    cancel: CancelToken | None = None,
    on_start: Callable[[BatchItem], ProgressFn | None] | None = None,
) -> Iterator[BatchOutcome]:
    """Upscale ``items`` in order; yield one ``BatchOutcome`` per item, in the same order.

    ``on_start(item)`` is called when the model starts on an item and may return its progress
    callback. A bad file fails alone and the batch goes on; after a cancel the outcome of the
    cancelled item is the last one (the items after it are not started). An item's outcome is
    yielded once its file is written, which overlaps the model's work on the next item (the last
    item is written in the calling thread). When the batch ends early (an exception such as
    KeyboardInterrupt, or the caller stops iterating), a write in progress in the background
    finishes, and nothing half-written is left.
    """
    items = list(items)
    reader = ThreadPoolExecutor(1, thread_name_prefix="nexus-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="nexus-write")

    def load(item: BatchItem) -> tuple[str, LoadedImage]:
        fmt = check_output(item.input_path, item.output_path, format, overwrite)
        return fmt, read_image(item.input_path, max_pixels=max_pixels)

    def written(item: BatchItem, future: Future[UpscaleResult]) -> BatchOutcome:
        try:
            return BatchOutcome(item, result=future.result())
        except Exception as exc:  # noqa: BLE001 - the item's own failure, reported as its outcome
            return BatchOutcome(item, error=exc)

    pending: tuple[BatchItem, Future[UpscaleResult]] | None = None
    upcoming = reader.submit(load, items[0]) if items else None
    try:
        for i, item in enumerate(items):
            current, upcoming = upcoming, None
            assert current is not None
            if i + 1 < len(items):
                upcoming = reader.submit(load, items[i + 1])
            try:
                if cancel is not None:
                    cancel.check()
                fmt, image = current.result()
                progress = on_start(item) if on_start is not None else None
                out, notes = upscale_loaded(
                    descriptor, image, options, progress=progress, cancel=cancel
                )
            except Exception as exc:  # noqa: BLE001 - a bad file fails alone
                if pending is not None:
                    yield written(*pending)
                    pending = None
                yield BatchOutcome(item, error=exc)
                if isinstance(exc, UpscaleCancelled):
                    return
                continue
            args = (item.input_path, item.output_path, image, out, notes, fmt, quality)
            del image, out  # the writer holds them until the file is written
            if upcoming is None:
                # the last file: nothing left to overlap its writing with, so it is written
                # here, where an interrupt or SIGTERM abandons it cleanly (no temporary file)
                if pending is not None:
                    yield written(*pending)
                    pending = None
                try:
                    yield BatchOutcome(item, result=write_result(*args, compress_level))
                except Exception as exc:  # noqa: BLE001 - the item's own failure
                    yield BatchOutcome(item, error=exc)
                continue
            job = writer.submit(write_result, *args, compress_level)
            if pending is not None:
                yield written(*pending)
            pending = (item, job)
        if pending is not None:
            yield written(*pending)
            pending = None
    finally:
        if upcoming is not None:
            upcoming.cancel()
        reader.shutdown(wait=True)
        writer.shutdown(wait=True)  # a file being written is completed (atomically)
