"""Colour rules shared by the engine and the file pipeline."""

from __future__ import annotations

import numpy as np

__all__ = ["LUMA_WEIGHTS", "luma"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of R, G and B, as Pillow's ``convert("L")``: how a gray image's
colour output (an RGB model run on gray) becomes gray again."""


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8/uint16 -> (H, W, 1) of the same dtype, rounded."""
    maximum = np.iinfo(rgb.dtype).max
    weighted = rgb.astype(np.float32) @ np.array(LUMA_WEIGHTS, np.float32)
    return np.clip(np.rint(weighted), 0, maximum).astype(rgb.dtype)[:, :, None]
