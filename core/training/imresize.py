"""MATLAB-compatible bicubic ``imresize`` (antialiased when shrinking).

SR papers make their low-resolution inputs with MATLAB's ``imresize(img, 1/s, 'bicubic')`` and
report bicubic upscaling as the baseline. PIL's and torch's bicubic differ from it (other kernel
coefficient, no antialiasing in torch, other edge handling), which moves PSNR by tenths of a dB,
so our figures would not compare with the literature. This module reproduces MATLAB's algorithm:
the Keys cubic kernel with a = -0.5, widened by ``1/scale`` when shrinking (antialiasing), weights
normalised to sum to one, symmetric (mirror) padding at the borders, one dimension at a time in
the order MATLAB uses (smaller scale first), and for uint8 input a round-and-clip after every
pass as MATLAB does.

Each pass is a matrix product with a cached ``(out_len, in_len)`` weight matrix, which is both
exact and fast for the crop sizes training uses.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["imresize", "resize_matrix"]


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=256)
def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The ``(out_len, in_len)`` float64 matrix that resizes one dimension like MATLAB.

    ``scale`` is the factor MATLAB is given (``out_len == ceil(in_len * scale)`` for a factor).
    """
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width /= scale
    out_idx = np.arange(1, out_len + 1, dtype=np.float64)
    # Centre of each output pixel in input coordinates (1-based, as in MATLAB).
    u = out_idx / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    dist = u[:, None] - indices
    weights = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    # Mirror out-of-range indices (MATLAB's symmetric padding), then go 0-based.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    cols = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(matrix, (rows, cols.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def imresize(
    image: np.ndarray,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """Resize ``image`` ``(H, W)`` or ``(H, W, C)`` as MATLAB's ``imresize(..., 'bicubic')``.

    Give either ``scale`` (output ``ceil(H * scale) x ceil(W * scale)``) or ``size`` ``(H, W)``.
    uint8 input gives uint8 output, rounded and clipped after each pass like MATLAB; float input
    is resized in float64 without clipping and returned as float32 (or float64 if it was).
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    in_h, in_w = image.shape[:2]
    if size is not None:
        out_h, out_w = size
        scale_h, scale_w = out_h / in_h, out_w / in_w
    else:
        assert scale is not None
        scale_h = scale_w = float(scale)
        out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    is_uint8 = image.dtype == np.uint8
    out = image.astype(np.float64)
    # MATLAB resizes the dimension with the smaller scale first (rows on a tie).
    order = (0, 1) if scale_h <= scale_w else (1, 0)
    for dim in order:
        if dim == 0:
            m = resize_matrix(in_h, out_h, scale_h, antialias)
            h, *rest = out.shape
            out = (m @ out.reshape(h, -1)).reshape(out_h, *rest)
        else:
            m = resize_matrix(in_w, out_w, scale_w, antialias)
            # (ow, w) @ (H, w, C) broadcasts over rows: one small product per row.
            out = m @ out if out.ndim == 3 else out @ m.T
        if is_uint8:
            # MATLAB's conversion to uint8 rounds halves away from zero (np.round would not).
            out = np.floor(np.clip(out, 0, 255) + 0.5)
    if is_uint8:
        return out.astype(np.uint8)
    return out if image.dtype == np.float64 else out.astype(np.float32)
