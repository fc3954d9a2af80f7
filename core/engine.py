"""The upscaling engine: any spandrel image model, any image size, bounded memory.

``upscale_array`` (HWC uint8/uint16/float arrays) and ``upscale_tensor`` (BCHW float tensors)
cut the image into overlapping tiles (``core.tiling``), hand them to the model runner
(``core.runner``: channels, precision, TTA, exact restore of the model) under
``torch.inference_mode()``, and assemble the result straight into the output's final dtype.

This module is the tile loop: the tile size (automatic or given), alignment from the model's
declared size requirements, batching tiles, out-of-memory recovery (halve the tile and carry on
from the tile that failed), progress and cancel, and the passes of a target scale other than the
model's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
from spandrel import ImageModelDescriptor, ModelTiling
from torch import Tensor

from .errors import TileTooSmallError
from .options import CancelToken, Precision, ProgressFn, UpscaleOptions
from .runner import ModelRunner, pick_dtype
from .tiling import BlendAssembler, TileGrid, plan_grid

__all__ = [
    "CancelToken",
    "Precision",
    "ProgressFn",
    "UpscaleOptions",
    "choose_tile",
    "pick_dtype",
    "upscale_array",
    "upscale_tensor",
]

MIN_TILE = 64
"""Smallest tile the out-of-memory fallback goes down to (or the model's minimum, if larger)."""
MAX_AUTO_TILE_CPU = 256
"""Largest automatic tile on the CPU. A model costs more per pixel in a large tile than in a
small one on a CPU (cache), more than the extra overlap of small tiles costs: one thread, idle
machine, time per useful pixel at overlap 32: nexus-x4 48-54 us at 256 px against 73-82 us at
512 px (per pixel 37-41 against 64-72 us); a Compact x4 4.3 against 5.9 us per pixel. Raising
the cap to ComfyUI's 512 made nexus-x4 use 1.20x ComfyUI's CPU time on a 1440x1152 photo
(``bench/vs_comfyui.py``)."""
MAX_AUTO_TILE_CUDA = 2048
MEMORY_BUDGET_FRACTION = 0.5
"""Share of free memory an automatic tile may use; the rest is headroom for other processes."""

# --- choices made once per call ----------------------------------------------------------------


def tile_alignment(model: ImageModelDescriptor) -> int:
    """Tile starts are multiples of this: the ``multiple_of`` the model's descriptor declares
    (a window transformer declares its window grid), so tiles see the same windows as a
    whole-image pass. The engine knows no architecture; the detectors declare it."""
    return model.size_requirements.multiple_of


def _tile_floor(model: ImageModelDescriptor, align: int) -> int:
    floor = max(MIN_TILE, model.size_requirements.minimum)
    return -(-floor // align) * align


def _available_memory(device: torch.device) -> int:
    """Free bytes: CUDA free memory, or MemAvailable from /proc/meminfo on the CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # no /proc (macOS, Windows): assume 4 GiB and let the OOM fallback cope


# --- tiles -------------------------------------------------------------------------------------


class _Job:
    """One call: the runner, the current tile size and batch, progress and cancel."""

    def __init__(
        self,
        runner: ModelRunner,
        tile: int,
        options: UpscaleOptions,
        align: int,
        floor: int,
        total: int,
        progress: ProgressFn | None,
        cancel: CancelToken | None,
    ) -> None:
        self.runner = runner
        self.tile = tile
        self.batch = options.batch
        self.overlap = options.overlap
        self.align = align
        self.floor = floor
        self.per_tile = runner.passes_per_tile
        self.total = total * self.per_tile
        self.done = 0  # progress units of finished tiles
        self.shown = 0  # the last figure reported, which passes move within a tile
        self.cap = 0
        self.step = 1
        self.progress = progress
        self.cancel = cancel
        runner.on_pass = self._on_pass

    def _on_pass(self) -> None:
        """A forward pass of the current tiles is done: move progress, short of their end."""
        moved = min(self.shown + self.step, self.cap)
        if moved > self.shown:
            self.shown = moved
            if self.progress is not None:
                self.progress(self.shown, self.total)

    def _tile_done(self) -> None:
        self.done += self.per_tile
        if self.done > self.shown:
            self.shown = self.done
            if self.progress is not None:
                self.progress(self.shown, self.total)

    def _shrink(self) -> None:
        """After an out-of-memory error: one tile per pass first, then half the tile."""
        if self.runner.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch > 1:
            self.batch = 1
            return
        smaller = self.tile // 2 // self.align * self.align
        if smaller < self.floor:
            raise TileTooSmallError(
                f"out of memory even with {self.tile}px tiles (the floor is {self.floor}px); "
                "free memory, use a smaller model, or use the CPU"
            )
        self.tile = smaller

    def upscale(self, image: np.ndarray, out: np.ndarray, scale: float, top: bool) -> None:
        """Fill ``out`` (H*scale, W*scale, C) from ``image`` (H, W, C), tile by tile."""
        h, w = image.shape[:2]
        grid = plan_grid(h, w, self.tile, self.overlap, scale, self.align)
        assembler = BlendAssembler(out, grid)
        order = list(grid)
        i = 0
        while i < len(order):
            group = self._group(grid, order, i)
            windows = [image[y0:y1, x0:x1] for y0, y1, x0, x1 in (grid.tile(*rc) for rc in group)]
            sizes = [self._out_size(grid, rc) for rc in group]
            if top:
                # each pass runs the whole group; the group ends at done + its units
                self.step = len(group)
                self.cap = self.done + len(group) * self.per_tile - 1
            for (r, c), y in zip(group, self._outputs(windows, sizes, scale)):
                assembler.add(r, c, y)
                if top:
                    self._tile_done()
            i += len(group)

    @staticmethod
    def _out_size(grid: TileGrid, rc: tuple[int, int]) -> tuple[int, int]:
        y0, y1 = grid.rows.out_span(rc[0])
        x0, x1 = grid.cols.out_span(rc[1])
        return y1 - y0, x1 - x0

    def _group(self, grid: TileGrid, order: list[tuple[int, int]], i: int) -> list[tuple[int, int]]:
        """Up to ``batch`` consecutive tiles of the same input and output size."""
        first = order[i]
        y0, y1, x0, x1 = grid.tile(*first)
        key = (y1 - y0, x1 - x0, self._out_size(grid, first))
        group = [first]
        for rc in order[i + 1 : i + self.batch]:
            y0, y1, x0, x1 = grid.tile(*rc)
            if (y1 - y0, x1 - x0, self._out_size(grid, rc)) != key:
                break
            group.append(rc)
        return group

    def _outputs(
        self, windows: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], scale: float
    ) -> list[np.ndarray]:
        """Float outputs (oh, ow, C) of the windows; retried smaller after out-of-memory."""
        while True:
            if self.cancel is not None:
                self.cancel.check()
            limit = self.tile + self.align - 1
            if any(max(win.shape[:2]) > limit for win in windows) or len(windows) > self.batch:
                return [self._split(win, size, scale) for win, size in zip(windows, sizes)]
            try:
                x = torch.stack([_to_tensor(win) for win in windows])
                y = self.runner.run(x, sizes[0])
                return [t.permute(1, 2, 0).numpy() for t in y]
            except torch.OutOfMemoryError:
                self._shrink()

    def _split(self, window: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
        """A window too large for the current tile size (or batch), upscaled in sub-tiles."""
        out = np.empty((*size, self.runner.channels_out), dtype=np.float32)
        if max(window.shape[:2]) <= self.tile + self.align - 1:
            out[...] = self._outputs([window], [size], scale)[0]
        else:
            self.upscale(window, out, scale, top=False)
        return out


def _to_tensor(window: np.ndarray) -> Tensor:
    """(h, w, C) uint8/uint16/float -> (C, h, w) float32 in [0, 1]."""
    t = torch.from_numpy(np.array(window))  # a copy: the caller's array may be read-only
    if window.dtype == np.uint8:
        t = t.float().div_(255)
    elif window.dtype == np.uint16:
        t = t.float().div_(65535)
    else:
        t = t.float()
    return t.permute(2, 0, 1)


# --- passes and target scale -------------------------------------------------------------------


def _passes(model_scale: int, target: float | None) -> list[float]:
    """Scales of the successive passes: [s] normally, [s, s, t / s^2] style for larger targets."""
    if target is None or math.isclose(target, model_scale):
        return [float(model_scale)]
    if model_scale == 1 or target <= model_scale:
        return [float(target)]
    n = math.ceil(math.log(target) / math.log(model_scale) - 1e-9)
    return [float(model_scale)] * (n - 1) + [target / model_scale ** (n - 1)]


def _scale_alignment(scale: float) -> int:
    """Smallest k such that k * scale is a whole number, so tile origins map to whole pixels."""
    frac = Fraction(scale).limit_denominator(64)
    if not math.isclose(float(frac), scale, rel_tol=0, abs_tol=1e-9):
        raise ValueError(f"target scale {scale} is not a fraction with a denominator up to 64")
    return frac.denominator


def choose_tile(
    model: ImageModelDescriptor, options: UpscaleOptions, height: int, width: int, channels: int = 3
) -> int:
    """The tile size ``upscale_array`` uses for this image: ``options.tile``, or automatic.

    Automatic: ``MEMORY_BUDGET_FRACTION`` of the free memory (CUDA free memory, or MemAvailable
    on the CPU, less the output buffer) divided by the measured cost per input pixel (see
    ``ModelRunner.measure_cost``) and the batch, square-rooted, aligned, and clamped between the
    floor and 256 (CPU) or 2048 (CUDA) and the image size. A model whose descriptor discourages
    tiling (or tiles internally) gets the whole image when it fits in that memory.
    """
    with torch.inference_mode(), ModelRunner(model, options, channels) as runner:
        return _choose_tile(runner, model, options, height, width, out_bytes=0)


def _choose_tile(
    runner: ModelRunner,
    model: ImageModelDescriptor,
    options: UpscaleOptions,
    height: int,
    width: int,
    out_bytes: int,
    notes: list[str] | None = None,
) -> int:
    align = tile_alignment(model)
    floor = _tile_floor(model, align)
    if options.tile is not None:
        # an explicit tile is honoured down to what the model accepts (the 64 px floor is only
        # for the automatic size and the out-of-memory fallback)
        least = -(-max(model.size_requirements.minimum, 1) // align) * align
        return max(options.tile // align * align, least)
    probe = max(floor, -(-64 // align) * align)
    cost = runner.measure_cost(probe)
    budget = _available_memory(runner.device) * MEMORY_BUDGET_FRACTION
    if runner.device.type == "cpu":
        budget -= out_bytes
    whole = -(-max(height, width) // align) * align
    if model.tiling is not ModelTiling.SUPPORTED:
        # the model wants the whole image (global attention, an FFT, its own tiling): give it
        # that when the memory allows, and say so when it does not
        need = cost * options.batch * height * width
        if need <= budget:
            return max(floor, whole)
        if notes is not None:
            notes.append(
                f"{model.architecture.name} works best on the whole image (its tiling is "
                f"{model.tiling.name.lower()}), which needs about {_gib(need)} of memory where "
                f"{_gib(max(budget, 0))} can be used: tiled instead, and seams may show"
            )
    tile = int(math.sqrt(max(budget, 0) / (cost * options.batch)))
    cap = MAX_AUTO_TILE_CUDA if runner.device.type == "cuda" else MAX_AUTO_TILE_CPU
    tile = min(tile, cap, whole)
    return max(floor, tile // align * align)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


# --- public entry points -----------------------------------------------------------------------


def upscale_array(
    model: ImageModelDescriptor,
    image: np.ndarray,
    options: UpscaleOptions,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    notes: list[str] | None = None,
) -> np.ndarray:
    """Upscale one image array.

    image: (H, W, C) or (H, W), uint8, uint16 or float in [0, 1]; C in 1..4.
    Returns (H', W', C') or (H', W') of the same dtype, H' = round(H * scale), where scale is
    ``options.target_scale`` or the model's. C' = C unless the model takes the image's channels
    as they are (then C' is the model's output channels). The output is written directly in its
    final dtype; float memory is limited to a few tiles and one band row.

    ``notes`` (a list) receives one line for each thing a user should know about this run: a
    model that wants the whole image tiled for lack of memory, tiles redone in fp32.
    """
    squeeze = image.ndim == 2
    if squeeze:
        image = image[:, :, None]
    if image.ndim != 3 or not 1 <= image.shape[2] <= 4:
        raise ValueError(f"image must be (H, W) or (H, W, C) with C in 1..4, got {image.shape}")
    if not (image.dtype in (np.uint8, np.uint16) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"image dtype must be uint8, uint16 or float, got {image.dtype}")
    out = _upscale(model, image, options, progress, cancel, notes, out_dtype=image.dtype)
    return out[:, :, 0] if squeeze else out


def _upscale(
    model: ImageModelDescriptor,
    image: np.ndarray,
    options: UpscaleOptions,
    progress: ProgressFn | None,
    cancel: CancelToken | None,
    notes: list[str] | None,
    out_dtype: np.dtype,
    out_buffers: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Shared by both entry points; ``image`` may hold several images stacked as (B, H, W, C)
    when ``out_buffers`` (one per image) are given."""
    images = [image] if image.ndim == 3 else list(image)
    h, w, channels = images[0].shape
    scales = _passes(model.scale, options.target_scale)
    with torch.inference_mode(), ModelRunner(model, options, channels, cancel) as runner:
        align = tile_alignment(model)
        floor = _tile_floor(model, align)
        sizes = [(h, w)]
        for s in scales:
            sizes.append((round(sizes[-1][0] * s), round(sizes[-1][1] * s)))
        out_bytes = sizes[-1][0] * sizes[-1][1] * runner.channels_out * np.dtype(out_dtype).itemsize
        tile = _choose_tile(runner, model, options, h, w, out_bytes, notes)
        aligns = [math.lcm(align, _scale_alignment(s)) for s in scales]
        per_image = sum(
            plan_grid(*size, tile, options.overlap, s, a).count
            for size, s, a in zip(sizes, scales, aligns)
        )
        floor = min(floor, tile)
        job = _Job(runner, tile, options, align, floor, per_image * len(images), progress, cancel)
        results = []
        for k, img in enumerate(images):
            current = img
            for p, (s, a) in enumerate(zip(scales, aligns)):
                job.align = a
                last = p == len(scales) - 1
                oh, ow = sizes[p + 1]
                if last and out_buffers is not None:
                    out = out_buffers[k]
                else:
                    out = np.empty((oh, ow, runner.channels_out if last else channels), out_dtype)
                if not last and runner.channels_out != channels:
                    raise ValueError("multi-pass target scales need a model that keeps channels")
                job.upscale(current, out, s, top=True)
                current = out
            results.append(current)
        if runner.fp32_redos and notes is not None:
            notes.append(
                f"{runner.fp32_redos} tile(s) overflowed in {str(runner.dtype)[6:]} and were "
                "redone in fp32"
            )
        return results[0]


def upscale_tensor(
    model: ImageModelDescriptor,
    image: Tensor,
    options: UpscaleOptions,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    notes: list[str] | None = None,
) -> Tensor:
    """Upscale a batch of images.

    image: (B, C, H, W) float in [0, 1] on the CPU. Returns (B, C', H', W') float32 on the CPU,
    with H', W', C' as in ``upscale_array``. The tiles are assembled straight into the returned
    tensor (no second full-size buffer).
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W), got shape {tuple(image.shape)}")
    b, c, h, w = image.shape
    if image.dtype != torch.float32:
        image = image.float()
    hwc = image.detach().cpu().permute(0, 2, 3, 1).numpy()  # a view, no copy
    scales = _passes(model.scale, options.target_scale)
    oh, ow = h, w
    for s in scales:
        oh, ow = round(oh * s), round(ow * s)
    c_out = model.output_channels if c == model.input_channels else c
    result = torch.empty(b, c_out, oh, ow, dtype=torch.float32)
    views = [result[k].permute(1, 2, 0).numpy() for k in range(b)]
    _upscale(model, hwc, options, progress, cancel, notes, np.dtype(np.float32), out_buffers=views)
    return result
