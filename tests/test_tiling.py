"""The tile grid, blend weights and assembler, without any model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from nexus_upscaler.core.tiling import BlendAssembler, plan_axis, plan_grid

CASES = [
    # length, tile, overlap, scale, align
    (100, 100, 16, 4, 1),
    (101, 64, 16, 4, 1),
    (1152, 512, 32, 4, 1),
    (1440, 512, 32, 4, 1),
    (513, 128, 16, 2, 8),
    (777, 96, 40, 3, 16),
    (300, 64, 32, 1, 1),
    (250, 70, 10, 1.5, 2),
    (32, 16, 8, 2, 16),  # a tile of one grid cell cannot overlap its neighbour
    (48, 32, 1, 1, 16),
    (100, 40, 24, 1, 16),
    (100, 50, 0, 2, 1),  # no overlap: hard seams
]


@pytest.mark.parametrize(("length", "tile", "overlap", "scale", "align"), CASES)
def test_axis_plan_covers_overlaps_and_aligns(length, tile, overlap, scale, align):
    plan = plan_axis(length, tile, overlap, scale, align)
    assert plan.starts[0] == 0 and plan.ends[-1] == length
    assert all(s % align == 0 for s in plan.starts)
    for i in range(plan.count - 1):
        # neighbours overlap by at least the requested overlap, capped at half a tile and at
        # what aligned starts leave (a tile one grid cell long cannot overlap)
        tile_a = max(align, tile // align * align)
        assert plan.ends[i] - plan.starts[i + 1] >= min(overlap, tile_a // 2, tile_a - align)
        # blend bands lie inside the overlap, in the output
        a, b = plan.bands[i]
        assert plan.starts[i + 1] * scale <= a <= b <= plan.ends[i] * scale
    # tiles are no larger than asked (the last may run up to align - 1 further to the end)
    assert all(e - s <= max(tile, align) + align - 1 for s, e in zip(plan.starts, plan.ends))


@pytest.mark.parametrize(("length", "tile", "overlap", "scale", "align"), CASES)
def test_weights_are_a_partition_of_unity(length, tile, overlap, scale, align):
    plan = plan_axis(length, tile, overlap, scale, align)
    total = np.zeros(plan.out_length, dtype=np.float64)
    for i in range(plan.count):
        lo, hi = plan.owned(i)
        w = plan.weights(i)
        assert w.shape == (hi - lo,)
        assert w.min() >= 0 and w.max() == 1.0  # every tile has a full-weight interior
        total[lo:hi] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_tile_count_matches_a_plain_stride_tiler():
    # the same number of tiles as stepping by (tile - overlap), as ComfyUI's tiler does
    for length, tile, overlap in [(1440, 512, 32), (1152, 512, 32), (768, 128, 16), (512, 128, 16)]:
        expected = len(range(0, length - overlap, tile - overlap))
        assert plan_axis(length, tile, overlap, 4).count == expected


def _field(h: int, w: int, c: int) -> np.ndarray:
    """A smooth test image in [0, 1], (h, w, c)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = [0.5 + 0.45 * np.sin(x / 17 + k) * np.cos(y / 23 - k) for k in range(c)]
    return np.stack(chans, -1).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("overlap", [12, 0])
def test_assembler_reproduces_the_image_when_tiles_agree(dtype, overlap):
    h, w, scale = 83, 131, 3
    grid = plan_grid(h, w, 40, overlap, scale)
    assert grid.count > 4
    full = _field(h * scale, w * scale, 3)
    out = np.zeros((h * scale, w * scale, 3), dtype=dtype)
    asm = BlendAssembler(out, grid)
    for r, c in grid:
        y0, y1, x0, x1 = grid.tile(r, c)
        asm.add(r, c, full[y0 * scale : y1 * scale, x0 * scale : x1 * scale].copy())
    assert asm.done
    if dtype == np.float32:
        np.testing.assert_allclose(out, full, atol=1e-6)
    else:
        # blending in float32 can move a value sitting on a rounding boundary by one step
        expected = np.rint(full.astype(np.float64) * np.iinfo(dtype).max)
        diff = np.abs(out.astype(np.float64) - expected)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_assembler_discards_tile_edges():
    # each tile's output is wrong near its own edge (as a CNN's is); the result must not be
    h, w, scale, overlap = 64, 96, 2, 16
    grid = plan_grid(h, w, 40, overlap, scale)
    full = _field(h * scale, w * scale, 1)
    out = np.zeros_like(full)
    asm = BlendAssembler(out, grid)
    bad = overlap * scale // 4  # output pixels spoilt at each tile edge that is not a border
    for r, c in grid:
        y0, y1, x0, x1 = grid.tile(r, c)
        t = full[y0 * scale : y1 * scale, x0 * scale : x1 * scale].copy()
        if r > 0:
            t[:bad] = 5.0
        if r < grid.rows.count - 1:
            t[-bad:] = 5.0
        if c > 0:
            t[:, :bad] = 5.0
        if c < grid.cols.count - 1:
            t[:, -bad:] = 5.0
        asm.add(r, c, t)
    np.testing.assert_allclose(out, full, atol=1e-6)


def test_assembler_insists_on_raster_order_and_shapes():
    grid = plan_grid(50, 50, 32, 8, 2)
    out = np.zeros((100, 100, 3), np.uint8)
    asm = BlendAssembler(out, grid)
    with pytest.raises(ValueError, match="raster order"):
        asm.add(0, 1, np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="expected"):
        asm.add(0, 0, np.zeros((10, 10, 3), np.float32))


def test_single_tile_and_tiny_images():
    for h, w in itertools.product([1, 7, 64], [1, 5, 64]):
        grid = plan_grid(h, w, 64, 16, 4)
        assert grid.count == 1
        out = np.zeros((4 * h, 4 * w, 1), np.uint8)
        asm = BlendAssembler(out, grid)
        asm.add(0, 0, np.full((4 * h, 4 * w, 1), 1.0, np.float32))
        assert (out == 255).all()
