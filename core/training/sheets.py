"""Side-by-side comparison sheets: the same crops of a few images from every method, labelled.

A sheet is for looking, not measuring: numbers say which model scores higher, a sheet shows
whether it removed the JPEG blocks or sharpened them, and whether skin turned into a crosshatch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["detail_box", "comparison_sheet"]

Upscaler = Callable[[np.ndarray], np.ndarray]
Degrader = Callable[[np.ndarray, str], np.ndarray]

LABEL_HEIGHT = 22
GAP = 4


def detail_box(hr: np.ndarray, size: int, scale: int) -> tuple[int, int]:
    """Top-left ``(y, x)`` on the LR grid of the ``size``-pixel LR window whose HR pixels have
    the most gradient energy (where the differences between methods show), on a coarse grid."""
    y = hr.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1]
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    best, where = -1.0, (0, 0)
    step = max(1, size // 4)
    for top in range(0, max(1, h - size + 1), step):
        for left in range(0, max(1, w - size + 1), step):
            e = float(
                energy[
                    top * scale : (top + size) * scale, left * scale : (left + size) * scale
                ].mean()
            )
            if e > best:
                best, where = e, (top, left)
    return where


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def comparison_sheet(
    images: Sequence[tuple[str, np.ndarray]],
    methods: Sequence[tuple[str, Upscaler]],
    degrade: Degrader,
    scale: int,
    crop: int = 64,
    reference_label: str = "original",
) -> Image.Image:
    """One row per image: its input (nearest-neighbour enlarged), each method's output and the
    original, all cropped to the same ``crop``-pixel LR window (``crop * scale`` shown), with the
    labels above. ``images`` are ``(name, HR uint8 (H, W, 3))``; each method upscales the whole
    input, so crops show no border effects. ``reference_label`` names the last column (the HR
    image as given)."""
    cell = crop * scale
    labels = ["input", *(name for name, _ in methods), reference_label]
    cols = len(labels)
    width = cols * cell + (cols - 1) * GAP
    height = LABEL_HEIGHT + len(images) * (cell + GAP + LABEL_HEIGHT)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(14)
    for c, label in enumerate(labels):
        draw.text((c * (cell + GAP) + 4, 3), label, fill=(0, 0, 0), font=font)
    for r, (name, hr) in enumerate(images):
        lr = degrade(hr, name)
        c = min(crop, lr.shape[0], lr.shape[1])
        top, left = detail_box(hr, c, scale)
        hy, hx, hs = top * scale, left * scale, c * scale
        tiles = [np.repeat(np.repeat(lr[top : top + c, left : left + c], scale, 0), scale, 1)]
        for _, upscale in methods:
            tiles.append(upscale(lr)[hy : hy + hs, hx : hx + hs])
        tiles.append(hr[hy : hy + hs, hx : hx + hs])
        y0 = LABEL_HEIGHT + r * (cell + GAP + LABEL_HEIGHT)
        draw.text(
            (4, y0 + 2),
            f"{name} ({lr.shape[1]}x{lr.shape[0]} input, crop at {left},{top})",
            fill=(0, 0, 0),
            font=font,
        )
        for col, tile in enumerate(tiles):
            sheet.paste(
                Image.fromarray(np.ascontiguousarray(tile)), (col * (cell + GAP), y0 + LABEL_HEIGHT)
            )
    return sheet


def save_sheet(sheet: Image.Image, path: str | Path) -> None:
    """Write ``sheet`` as PNG through the package's atomic image writer."""
    from ..imageio import write_image

    write_image(path, np.asarray(sheet))
