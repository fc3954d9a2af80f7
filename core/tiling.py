"""Framework-free tiling: where tiles go, how they are weighted, and how they are assembled.

The engine cuts an image into overlapping tiles, runs the model on each, and hands the float
results here in raster order. Nothing in this module knows about torch.

Why the blend looks the way it does. A convolutional model sees zero (or reflect) padding at a
tile's edge where the whole image would have had real pixels, so a tile's output is wrong near
its edges and exact further in (beyond the receptive field). A plain linear feather across the
whole overlap, ComfyUI's ``tiled_scale``, still gives those wrong edge pixels weight, and
normalises by an accumulated weight sum kept in two full-size float buffers. Here:

* each seam between two neighbouring tiles gets a narrow blend band in the *middle* of their
  overlap; each tile has zero weight outside its bands (its edge pixels are discarded) and full
  weight in its interior, so almost every output pixel comes from the interior of exactly one
  tile;
* the two weights in a band sum to exactly one (a partition of unity), so no normalising
  buffer is needed;
* tiles arrive in raster order, so a pixel is finished as soon as the tiles that reach it are
  done: finished pixels are quantised straight into the output array (uint8, uint16 or float32),
  and only the pending bands are held in float (one band row the width of the image, and one band
  the height of a tile). Peak memory is the output array plus a few tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Share of the overlap that the blend band takes (centred). The rest of the overlap is split
# evenly between the two tiles' discarded edges. Measured in bench/tiling.py: the narrower the
# band, the further its pixels lie from either tile's edge; half keeps the ramp wide enough to
# hide differences that models with global behaviour (GANs, attention) leave between tiles.
BLEND_FRACTION = 0.5


@dataclass(frozen=True)
class AxisPlan:
    """Tiles along one axis of the input, and their blend bands in the output.

    ``starts[i]:ends[i]`` is tile ``i`` in input pixels. ``bands[j] = (a, b)`` is the blend band
    between tiles ``j`` and ``j + 1`` in output pixels. ``out_length`` is the output's length.
    """

    length: int
    scale: float
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    bands: tuple[tuple[int, int], ...]
    out_length: int

    @property
    def count(self) -> int:
        return len(self.starts)

    def out_span(self, i: int) -> tuple[int, int]:
        """Output pixels of tile ``i`` (before any cropping): ``[start * s, end * s)``."""
        lo = round(self.starts[i] * self.scale)
        hi = self.out_length if i == self.count - 1 else round(self.ends[i] * self.scale)
        return lo, hi

    def owned(self, i: int) -> tuple[int, int]:
        """Output pixels tile ``i`` gives weight to: from its left band's start to its right
        band's end (image borders for the first and last tile)."""
        lo = 0 if i == 0 else self.bands[i - 1][0]
        hi = self.out_length if i == self.count - 1 else self.bands[i][1]
        return lo, hi

    def final_end(self, i: int) -> int:
        """Output pixels before this index are finished once tiles ``0..i`` are in."""
        return self.out_length if i == self.count - 1 else self.bands[i][0]

    def weights(self, i: int) -> np.ndarray:
        """Blend weights of tile ``i`` over ``owned(i)``: float32, ramps in bands, 1 between."""
        lo, hi = self.owned(i)
        w = np.ones(hi - lo, dtype=np.float32)
        if i > 0:
            a, b = self.bands[i - 1]
            w[: b - a] = _ramp(b - a)
        if i < self.count - 1:
            a, b = self.bands[i]
            w[a - lo :] = _ramp(b - a)[::-1]
        return w


def _ramp(n: int) -> np.ndarray:
    """Rising weights for a band of ``n`` pixels; ``ramp + ramp[::-1] == 1`` exactly.

    A raised cosine rather than a straight line: its slope is zero where the band meets the
    full-weight interior, so the blend leaves no visible kink in gradients.
    """
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def plan_axis(length: int, tile: int, overlap: int, scale: float, align: int = 1) -> AxisPlan:
    """Place tiles of ``tile`` input pixels along an axis of ``length`` pixels.

    Tile starts are multiples of ``align`` (a transformer's window size or the model's
    ``multiple_of``), so that windows inside a tile line up with the windows a whole-image pass
    would use. The last tile runs to the end of the axis (it may be up to ``align - 1`` pixels
    longer than ``tile``), which makes its padding the same as the whole image's. Neighbours
    overlap by at least ``overlap`` pixels; starts are spread evenly.
    """
    if length < 1 or tile < 1:
        raise ValueError(f"length and tile must be positive, got {length} and {tile}")
    align = max(1, align)
    tile = max(align, tile // align * align)
    # aligned starts are at least one grid cell apart, so a tile overlaps its neighbour by at
    # most tile - align
    overlap = max(0, min(overlap, tile // 2, tile - align))
    out_length = round(length * scale)
    if length <= tile:
        return AxisPlan(length, scale, (0,), (length,), (), out_length)
    step = max(1, tile - overlap - (align - 1))
    n = 1 + math.ceil((length - tile) / step)
    # n tiles are needed; make them no longer than n tiles must be, so the model does not run
    # on more pixels than the overlap asks for (1152 px at tile 512 / overlap 32: 3 x 406, not
    # 3 x 512)
    margin = overlap + align - 1
    snug = math.ceil((length + (n - 1) * margin) / n / align) * align
    tile = max(min(tile, snug), -(-(overlap + align) // align) * align)  # never over ``tile``
    last = (length - tile) // align * align
    starts = sorted({round(i * last / (n - 1)) // align * align for i in range(n)})
    starts[-1] = last
    ends = [s + tile for s in starts[:-1]] + [length]
    centres, halves = [], []
    for i in range(len(starts) - 1):
        ov_lo, ov_hi = starts[i + 1] * scale, ends[i] * scale
        centres.append((ov_lo + ov_hi) / 2)
        # no overlap (asked for, or a tile one grid cell long): a hard seam, an empty band
        halves.append(max(0.5, (ov_hi - ov_lo) * BLEND_FRACTION / 2) if ov_hi > ov_lo else 0.0)
    # aligned starts can bunch up (large overlap, coarse alignment): narrow the bands so that
    # they never meet and every tile keeps a full-weight interior
    for i in range(len(centres)):
        if i > 0:
            halves[i] = min(halves[i], (centres[i] - centres[i - 1]) / 3)
        if i < len(centres) - 1:
            halves[i] = min(halves[i], (centres[i + 1] - centres[i]) / 3)
    bands = [
        (round(c - h), max(round(c + h), round(c - h) + 1)) if h else (round(c), round(c))
        for c, h in zip(centres, halves)
    ]
    _check_bands(bands, out_length)
    return AxisPlan(length, scale, tuple(starts), tuple(ends), tuple(bands), out_length)


def _check_bands(bands: list[tuple[int, int]], out_length: int) -> None:
    previous = 0
    for a, b in bands:
        if not previous <= a <= b <= out_length:
            raise ValueError(f"blend bands overlap or leave the image: {bands}")
        previous = b


@dataclass(frozen=True)
class TileGrid:
    """Tiles of a 2-D image, rows then columns; ``tile(r, c)`` is ``(y0, y1, x0, x1)``."""

    rows: AxisPlan
    cols: AxisPlan

    @property
    def count(self) -> int:
        return self.rows.count * self.cols.count

    def tile(self, r: int, c: int) -> tuple[int, int, int, int]:
        return self.rows.starts[r], self.rows.ends[r], self.cols.starts[c], self.cols.ends[c]

    def __iter__(self):
        for r in range(self.rows.count):
            for c in range(self.cols.count):
                yield r, c


def plan_grid(
    height: int, width: int, tile: int, overlap: int, scale: float, align: int = 1
) -> TileGrid:
    """The tile grid for an image of ``height`` x ``width`` input pixels."""
    return TileGrid(
        plan_axis(height, tile, overlap, scale, align),
        plan_axis(width, tile, overlap, scale, align),
    )


def quantize_into(dst: np.ndarray, src: np.ndarray) -> None:
    """Write float ``src`` in [0, 1] into ``dst`` of dtype uint8, uint16 or floating (rounded)."""
    if dst.dtype == np.uint8 or dst.dtype == np.uint16:
        peak = float(np.iinfo(dst.dtype).max)
        tmp = src * peak
        np.clip(tmp, 0.0, peak, out=tmp)
        np.rint(tmp, out=tmp)
        dst[...] = tmp
    else:
        np.clip(src, 0.0, 1.0, out=dst)


class BlendAssembler:
    """Assembles float tiles, given in raster order, into ``out`` (H_out, W_out, C).

    ``out`` may be uint8, uint16 or float; it is written once per pixel. Float memory held
    between tiles: one band row (band height x W_out x C) and one band column of a tile.
    """

    def __init__(self, out: np.ndarray, grid: TileGrid) -> None:
        if out.ndim != 3:
            raise ValueError(f"out must be (H, W, C), got shape {out.shape}")
        if out.shape[:2] != (grid.rows.out_length, grid.cols.out_length):
            raise ValueError(
                f"out is {out.shape[:2]}, the grid makes {grid.rows.out_length}x"
                f"{grid.cols.out_length}"
            )
        self.out = out
        self.grid = grid
        self._next = (0, 0)
        self._row_carry: np.ndarray | None = None  # rows of band (r-1, r), full width
        self._next_row_carry: np.ndarray | None = None
        self._col_carry: np.ndarray | None = None  # columns of band (c-1, c), this tile row

    def add(self, r: int, c: int, tile: np.ndarray) -> None:
        """Add tile ``(r, c)``'s float output (h*s, w*s, C) over its whole input window."""
        if (r, c) != self._next:
            raise ValueError(
                f"tiles must come in raster order: expected {self._next}, got {(r, c)}"
            )
        rows, cols = self.grid.rows, self.grid.cols
        channels = self.out.shape[2]
        ty0, ty1 = rows.out_span(r)
        tx0, tx1 = cols.out_span(c)
        if tile.shape != (ty1 - ty0, tx1 - tx0, channels):
            raise ValueError(
                f"tile {(r, c)} is {tile.shape}, expected {(ty1 - ty0, tx1 - tx0, channels)}"
            )
        oy0, oy1 = rows.owned(r)
        ox0, ox1 = cols.owned(c)
        t = tile[oy0 - ty0 : oy1 - ty0, ox0 - tx0 : ox1 - tx0]
        t = t * rows.weights(r)[:, None, None]
        t *= cols.weights(c)[None, :, None]

        # columns: add the previous tile's share of the left band, keep the right band
        if c > 0:
            assert self._col_carry is not None
            t[:, : self._col_carry.shape[1]] += self._col_carry
        fx = cols.final_end(c)
        self._col_carry = t[:, fx - ox0 :].copy() if c < cols.count - 1 else None
        t = t[:, : fx - ox0]

        # rows: add the previous tile row's share of the top band, keep the bottom band
        if r > 0:
            assert self._row_carry is not None
            t[: self._row_carry.shape[0]] += self._row_carry[:, ox0:fx]
        fy = rows.final_end(r)
        if r < rows.count - 1:
            if self._next_row_carry is None:
                shape = (oy1 - fy, cols.out_length, channels)
                self._next_row_carry = np.empty(shape, dtype=np.float32)
            self._next_row_carry[:, ox0:fx] = t[fy - oy0 :]
        quantize_into(self.out[oy0:fy, ox0:fx], t[: fy - oy0])

        if c == cols.count - 1:
            self._row_carry, self._next_row_carry = self._next_row_carry, None
            self._next = (r + 1, 0)
        else:
            self._next = (r, c + 1)

    @property
    def done(self) -> bool:
        return self._next == (self.grid.rows.count, 0)
