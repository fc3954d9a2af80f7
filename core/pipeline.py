"""One file in, one file out: read, upscale with the engine, write atomically with metadata.

The command line and the desktop app both call ``upscale_file``. It never writes over an input,
never over an existing output unless asked, and writes nothing at all when cancelled or when
anything fails (the output goes through a temporary file that is renamed only when complete).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .color import luma
from .errors import ImageWriteError, OutputExistsError, UpscaleCancelled
from .imageio import DEFAULT_MAX_PIXELS, LoadedImage, output_format, read_image, write_image
from .outputs import plan_output_path

if TYPE_CHECKING:
    import spandrel

    from .engine import CancelToken, UpscaleOptions

__all__ = ["UpscaleResult", "is_same_file", "plan_output_path", "upscale_file"]


@dataclass
class UpscaleResult:
    input_path: Path
    output_path: Path
    input_size: tuple[int, int]  # (width, height)
    output_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)  # lossy conversions, the engine's notes


def is_same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when both paths name one file (also through links and case-insensitive folders)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(a.resolve()) == os.path.normcase(b.resolve())


def upscale_file(
    descriptor: spandrel.ImageModelDescriptor,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    options: UpscaleOptions,
    *,
    format: str | None = None,
    quality: int = 95,
    compress_level: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> UpscaleResult:
    """Upscale one image file into ``output_path`` (a file path; see ``plan_output_path``).

    Raises OutputExistsError if ``output_path`` is the input or already exists (unless
    ``overwrite``), ImageReadError / ImageWriteError naming the file, UpscaleCancelled when
    ``cancel`` fires (nothing is written), and whatever the engine raises.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    fmt = check_output(input_path, output_path, format, overwrite)
    image = read_image(input_path, max_pixels=max_pixels)
    out, notes = upscale_loaded(descriptor, image, options, progress=progress, cancel=cancel)
    return write_result(input_path, output_path, image, out, notes, fmt, quality, compress_level)


# The stages of ``upscale_file``, for ``core.batch`` to overlap reading and writing with the model.


def check_output(input_path: Path, output_path: Path, format: str | None, overwrite: bool) -> str:
    """The output format, after refusing an output that is the input, exists (unless
    ``overwrite``) or is a folder."""
    if is_same_file(input_path, output_path):
        raise OutputExistsError(output_path, "is the input file; refusing to overwrite an input")
    if output_path.exists() and not overwrite:
        raise OutputExistsError(output_path, "already exists (pass --overwrite to replace it)")
    if output_path.is_dir():
        raise ImageWriteError(output_path, "is a folder; give a file name or use it as -o folder")
    return output_format(output_path, format)


def upscale_loaded(
    descriptor: spandrel.ImageModelDescriptor,
    image: LoadedImage,
    options: UpscaleOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The upscaled array of a read image, in the input's channel layout, and the notes so far."""
    from .engine import upscale_array

    notes = list(image.notes)
    out = upscale_array(
        descriptor, image.array, options, progress=progress, cancel=cancel, notes=notes
    )
    if cancel is not None and cancel.cancelled:  # cancelled after the last tile
        raise UpscaleCancelled("upscaling was cancelled; nothing was written")
    return _restore_channels(out, image.channels), notes


def write_result(
    input_path: Path,
    output_path: Path,
    image: LoadedImage,
    out: np.ndarray,
    notes: list[str],
    fmt: str,
    quality: int = 95,
    compress_level: int | None = None,
) -> UpscaleResult:
    """Write ``out`` atomically with the input's metadata and describe the result."""
    notes = notes + write_image(output_path, out, image.metadata, fmt, quality, compress_level)
    return UpscaleResult(
        input_path=input_path,
        output_path=output_path,
        input_size=(image.width, image.height),
        output_size=(int(out.shape[1]), int(out.shape[0])),
        notes=notes,
    )


def _restore_channels(out: np.ndarray, channels: int) -> np.ndarray:
    """Give the output the input's channel layout: gray stays gray, gray + alpha stays so.

    The engine already does this for RGB models; this covers a model that takes the image's
    channels as they are but returns colour (a gray-in, RGB-out model)."""
    if out.ndim == 2:
        out = out[:, :, None]
    if channels in (1, 2) and out.shape[2] in (3, 4):
        gray = luma(out[:, :, :3])
        out = np.concatenate([gray, out[:, :, 3:]], axis=2) if channels == 2 else gray
    return out
