"""The upscaling engine: any spandrel image model, any image size, bounded memory.

``upscale_array`` (HWC uint8/uint16/float arrays) and ``upscale_tensor`` (BCHW float tensors)
cut the image into overlapping tiles (``core.tiling``), run the model on each under
``torch.inference_mode()``, and assemble the result straight into the output's final dtype.

Around the model call the engine handles: channels (gray image with an RGB model, RGB image with
a gray model, alpha), the model's size requirements (reflect padding, then cropping), precision
(auto/fp32/fp16/bf16, with an fp32 redo of any tile whose half-precision output is not finite),
batching, channels_last tiles, torch.compile on CUDA, the x8 self-ensemble, target scales other
than the model's, an automatic tile size, and out-of-memory recovery (halve the tile and carry
on from the tile that failed).
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from spandrel import ImageModelDescriptor
from torch import Tensor

from .errors import TileTooSmallError, UpscaleCancelled
from .tiling import BlendAssembler, TileGrid, plan_grid

Precision = Literal["auto", "fp32", "fp16", "bf16"]
ProgressFn = Callable[[int, int], None]

MIN_TILE = 64
"""Smallest tile the out-of-memory fallback goes down to (or the model's minimum, if larger)."""
MAX_AUTO_TILE_CPU = 256
"""Largest automatic tile on the CPU. A convolution costs more per pixel in a large tile than in
a small one on a CPU (cache): for a Compact x4, 4.3 us/px at 256 against 5.9 at 512, so with a
32 px overlap 192-256 px tiles are ~17% faster per useful pixel than 512 px ones."""
MAX_AUTO_TILE_CUDA = 2048
MEMORY_BUDGET_FRACTION = 0.5
"""Share of free memory an automatic tile may use; the rest is headroom for other processes."""

# ITU-R BT.601 luma, used to turn an RGB model's output for a gray image back into gray.
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class UpscaleOptions:
    """How to upscale. Every field can come from a preset and be overridden per call."""

    tile: int | None = None
    """Tile size in input pixels; None = automatic from free memory and measured cost."""
    overlap: int = 32
    """Input pixels shared by neighbouring tiles (at most half a tile)."""
    precision: Precision = "auto"
    tta: bool = False
    """x8 self-ensemble: average the model over the 8 flips/rotations (8x slower)."""
    batch: int = 1
    """Tiles per forward pass."""
    device: str = "cpu"
    target_scale: float | None = None
    """Final scale; None = the model's. Below it: high-quality downscale; above: more passes."""
    alpha_mode: Literal["model", "resize"] = "model"
    """Alpha of RGBA/LA images: through the model as a gray image, or resized (bicubic)."""
    compile: bool = False
    """torch.compile the model (CUDA only; ignored on the CPU)."""

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < 1:
            raise ValueError(f"tile must be a positive number of pixels or None, got {self.tile}")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {self.precision!r}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.target_scale is not None and not self.target_scale > 0:
            raise ValueError(f"target_scale must be > 0, got {self.target_scale}")
        if self.alpha_mode not in ("model", "resize"):
            raise ValueError(f"alpha_mode must be 'model' or 'resize', got {self.alpha_mode!r}")


class CancelToken:
    """Thread-safe cancel flag; the engine calls ``check()`` before every tile."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``UpscaleCancelled`` if ``cancel()`` was called."""
        if self._event.is_set():
            raise UpscaleCancelled("upscaling was cancelled")


# --- choices made once per call ----------------------------------------------------------------


def pick_dtype(
    model: ImageModelDescriptor, precision: Precision, device: torch.device
) -> torch.dtype:
    """The compute dtype. Explicit choices are honoured; ``auto`` is bf16 on CUDA where GPU and
    model support it, else fp16 on CUDA where the model supports half, else fp32. On the CPU
    ``auto`` is fp32: without native bf16 units the CPU kernels are emulated and slower."""
    if precision == "fp32":
        return torch.float32
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        if model.supports_bfloat16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if model.supports_half:
            return torch.float16
    return torch.float32


def tile_alignment(model: ImageModelDescriptor) -> int:
    """Tile starts are multiples of this: the model's ``multiple_of`` and, for window
    transformers, its window size, so tiles see the same windows as a whole-image pass."""
    align = model.size_requirements.multiple_of
    window = getattr(model.model, "window_size", None)
    if isinstance(window, int) and window > 0:
        align = math.lcm(align, window)
    return align


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


# --- the model call ----------------------------------------------------------------------------


class _Runner:
    """Runs the model on batches of tiles: channels, padding, precision, TTA, resizing.

    Tiles go in as float32 CPU tensors (N, C_img, h, w) in [0, 1] and come out as float32 CPU
    tensors (N, C_out_img, oh, ow).
    """

    def __init__(self, model: ImageModelDescriptor, options: UpscaleOptions, channels: int) -> None:
        self.desc = model
        self.options = options
        self.device = torch.device(options.device)
        self.dtype = pick_dtype(model, options.precision, self.device)
        self.in_ch = model.input_channels
        self.out_ch = model.output_channels
        self.scale = model.scale
        self.channels = channels
        # channels: direct if the model takes them as they are; otherwise color (+ alpha)
        self.direct = channels == self.in_ch
        if self.direct:
            self.color, self.alpha = channels, False
        elif channels in (2, 4):
            self.color, self.alpha = channels - 1, True
        else:
            self.color, self.alpha = channels, False
        if not self.direct and (self.color not in (1, 3) or self.in_ch not in (1, 3, 4)):
            raise ValueError(
                f"cannot feed a {channels}-channel image to a model with {self.in_ch} input channels"
            )
        self.channels_out = self.out_ch if self.direct else channels
        self.call_fn = getattr(model, "_call_fn", None) or (lambda m, x: m(x))
        self.module = model.model
        self._fp32_module: torch.nn.Module | None = None
        self._fp32_state: dict[str, Tensor] | None = None
        self._restore: tuple[torch.device, torch.dtype] | None = None
        self.fp32_redos = 0
        # channels_last on every device: oneDNN runs convolutions ~30% faster in it on the CPU
        # too (Compact x4 on a 406x502 tile: 0.55 s against 0.77 s); a model whose forward
        # cannot take it (a .view over permuted strides) falls back on its first tile
        self.channels_last = True

    # setup / teardown: the caller's descriptor gets its device and dtype back afterwards
    def __enter__(self) -> _Runner:
        p = next(iter(self.module.parameters()), None)
        if p is not None:
            self._restore = (p.device, p.dtype)
            if self.dtype != torch.float32 and p.dtype == torch.float32:
                self._fp32_state = {
                    k: v.detach().clone() for k, v in self.module.state_dict().items()
                }
        self.module.eval()
        self.module.to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        self.compiled = self.module
        if self.options.compile and self.device.type == "cuda":
            self.compiled = torch.compile(self.module)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._restore is not None:
            device, dtype = self._restore
            self.module.to(device=device, dtype=dtype)
            if self.channels_last:
                self.module.to(memory_format=torch.contiguous_format)
        self._fp32_module = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _fp32(self) -> torch.nn.Module:
        if self._fp32_module is None:
            module = copy.deepcopy(self.module).to(dtype=torch.float32)
            if self._fp32_state is not None:
                module.load_state_dict(self._fp32_state)
            self._fp32_module = module.to(self.device)
        return self._fp32_module

    def _model(self, x: Tensor) -> Tensor:
        """x: (N, in_ch, h, w) float32 on the CPU -> (N, out_ch, h*s, w*s) float32 on the CPU."""
        n, _, h, w = x.shape
        pad_w, pad_h = self.desc.size_requirements.get_padding(w, h)
        x = x.to(self.device, non_blocking=True)
        if pad_w or pad_h:
            # reflect where the tile is large enough, then replicate (as spandrel does)
            rw, rh = min(pad_w, w - 1), min(pad_h, h - 1)
            x = F.pad(x, (0, rw, 0, rh), mode="reflect")
            x = F.pad(x, (0, pad_w - rw, 0, pad_h - rh), mode="replicate")
        y = self._forward(x.to(self.dtype))
        if self.dtype != torch.float32 and not bool(torch.isfinite(y).all()):
            # fp16 overflow (or bf16 trouble) in this tile: do it again in full precision
            self.fp32_redos += 1
            y = self.call_fn(self._fp32(), x.float())
        y = y[..., : h * self.scale, : w * self.scale]
        return y.float().clamp_(0, 1).cpu()

    def _forward(self, x: Tensor) -> Tensor:
        if self.channels_last:
            try:
                return self._forward_layout(x.contiguous(memory_format=torch.channels_last))
            except torch.OutOfMemoryError:
                raise
            except RuntimeError:
                # this model cannot run channels_last: plain layout from now on (a real error
                # raises again below)
                self.channels_last = False
                self.module.to(memory_format=torch.contiguous_format)
        return self._forward_layout(x.contiguous())

    def _forward_layout(self, x: Tensor) -> Tensor:
        if not self.options.tta:
            return self.call_fn(self.compiled, x)
        total = None
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(x, k, (2, 3))
                t = t.flip(3) if flip else t
                y = self.call_fn(self.compiled, t).float()
                y = y.flip(3) if flip else y
                y = torch.rot90(y, -k, (2, 3))
                total = y if total is None else total.add_(y)
        assert total is not None
        return total.div_(8)

    def _gray(self, x: Tensor) -> Tensor:
        """A gray batch (N, 1, h, w) through the model -> (N, 1, H, W)."""
        if self.in_ch == 1:
            return self._model(x)
        parts = [x.expand(-1, 3, -1, -1)]
        if self.in_ch == 4:
            parts.append(torch.ones_like(x))
        y = self._model(torch.cat(parts, 1))
        if y.shape[1] == 1:
            return y
        luma = torch.tensor(_LUMA, dtype=y.dtype).view(1, 3, 1, 1)
        return (y[:, :3] * luma).sum(1, keepdim=True)

    def _rgb(self, x: Tensor) -> Tensor:
        """An RGB batch (N, 3, h, w) through the model -> (N, 3, H, W)."""
        n, _, h, w = x.shape
        if self.in_ch == 3:
            return self._model(x)[:, :3]
        if self.in_ch == 4:
            return self._model(torch.cat([x, torch.ones_like(x[:, :1])], 1))[:, :3]
        # gray model: each colour plane on its own (keeps colour exactly; no chroma resampling)
        y = self._gray(x.reshape(n * 3, 1, h, w))
        return y.reshape(n, 3, *y.shape[2:])

    def run(self, x: Tensor, out_size: tuple[int, int]) -> Tensor:
        """x: (N, C_img, h, w) float32 CPU -> (N, C_out_img, *out_size) float32 CPU."""
        if self.direct:
            y = self._model(x)
        else:
            color = x[:, : self.color]
            y = self._gray(color) if self.color == 1 else self._rgb(color)
            if self.alpha:
                a = x[:, self.color :]
                if self.options.alpha_mode == "model":
                    ya = self._gray(a)
                else:
                    size = (a.shape[2] * self.scale, a.shape[3] * self.scale)
                    ya = F.interpolate(a, size=size, mode="bicubic", align_corners=False)
                y = torch.cat([y, ya.clamp_(0, 1)], 1)
        if tuple(y.shape[2:]) != out_size:
            # target scale other than the model's: high-quality (antialiased) resize per tile
            y = F.interpolate(y, size=out_size, mode="bicubic", antialias=True, align_corners=False)
            y = y.clamp_(0, 1)
        return y

    # cost per pixel, for the automatic tile size
    def measure_cost(self, probe: int) -> float:
        """Bytes per input pixel one forward needs, from a probe of ``probe`` x ``probe`` pixels.

        CUDA: the allocator's measured peak. CPU (no allocator statistics): the largest single
        activation that any submodule returns, times 4 (its input, its output, and temporaries
        such as attention scores alive at the same time), plus the float output twice (model
        output and the resized/blended copy)."""
        x = torch.rand(1, self.channels, probe, probe)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            self.run(x, (probe * self.scale, probe * self.scale))
            peak = torch.cuda.max_memory_allocated(self.device) - base
            return peak / probe**2
        largest = 0

        def hook(_m: torch.nn.Module, _i: object, out: object) -> None:
            nonlocal largest
            if isinstance(out, Tensor):
                largest = max(largest, out.numel() * out.element_size())

        handles = [m.register_forward_hook(hook) for m in self.module.modules()]
        try:
            self.run(x, (probe * self.scale, probe * self.scale))
        finally:
            for h in handles:
                h.remove()
        out_bytes = self.channels_out * self.scale**2 * 4 * probe**2
        return (4 * largest + 2 * out_bytes) / probe**2


# --- tiles -------------------------------------------------------------------------------------


class _Job:
    """One call: the runner, the current tile size and batch, progress and cancel."""

    def __init__(
        self,
        runner: _Runner,
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
        self.total = total
        self.done = 0
        self.progress = progress
        self.cancel = cancel

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
            for (r, c), y in zip(group, self._outputs(windows, sizes, scale)):
                assembler.add(r, c, y)
                if top:
                    self.done += 1
                    if self.progress is not None:
                        self.progress(self.done, self.total)
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
    ``_Runner.measure_cost``) and the batch, square-rooted, aligned, and clamped between the
    floor and 256 (CPU) or 2048 (CUDA) and the image size.
    """
    with torch.inference_mode(), _Runner(model, options, channels) as runner:
        return _choose_tile(runner, model, options, height, width, out_bytes=0)


def _choose_tile(
    runner: _Runner,
    model: ImageModelDescriptor,
    options: UpscaleOptions,
    height: int,
    width: int,
    out_bytes: int,
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
    tile = int(math.sqrt(max(budget, 0) / (cost * options.batch)))
    cap = MAX_AUTO_TILE_CUDA if runner.device.type == "cuda" else MAX_AUTO_TILE_CPU
    tile = min(tile, cap, -(-max(height, width) // align) * align)
    return max(floor, tile // align * align)


# --- public entry points -----------------------------------------------------------------------


def upscale_array(
    model: ImageModelDescriptor,
    image: np.ndarray,
    options: UpscaleOptions,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Upscale one image array.

    image: (H, W, C) or (H, W), uint8, uint16 or float in [0, 1]; C in 1..4.
    Returns (H', W', C') or (H', W') of the same dtype, H' = round(H * scale), where scale is
    ``options.target_scale`` or the model's. C' = C unless the model takes the image's channels
    as they are (then C' is the model's output channels). The output is written directly in its
    final dtype; float memory is limited to a few tiles and one band row.
    """
    squeeze = image.ndim == 2
    if squeeze:
        image = image[:, :, None]
    if image.ndim != 3 or not 1 <= image.shape[2] <= 4:
        raise ValueError(f"image must be (H, W) or (H, W, C) with C in 1..4, got {image.shape}")
    if not (image.dtype in (np.uint8, np.uint16) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"image dtype must be uint8, uint16 or float, got {image.dtype}")
    out = _upscale(model, image, options, progress, cancel, out_dtype=image.dtype)
    return out[:, :, 0] if squeeze else out


def _upscale(
    model: ImageModelDescriptor,
    image: np.ndarray,
    options: UpscaleOptions,
    progress: ProgressFn | None,
    cancel: CancelToken | None,
    out_dtype: np.dtype,
    out_buffers: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Shared by both entry points; ``image`` may hold several images stacked as (B, H, W, C)
    when ``out_buffers`` (one per image) are given."""
    images = [image] if image.ndim == 3 else list(image)
    h, w, channels = images[0].shape
    scales = _passes(model.scale, options.target_scale)
    with torch.inference_mode(), _Runner(model, options, channels) as runner:
        align = tile_alignment(model)
        floor = _tile_floor(model, align)
        sizes = [(h, w)]
        for s in scales:
            sizes.append((round(sizes[-1][0] * s), round(sizes[-1][1] * s)))
        out_bytes = sizes[-1][0] * sizes[-1][1] * runner.channels_out * np.dtype(out_dtype).itemsize
        tile = _choose_tile(runner, model, options, h, w, out_bytes)
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
        return results[0]


def upscale_tensor(
    model: ImageModelDescriptor,
    image: Tensor,
    options: UpscaleOptions,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
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
    _upscale(model, hwc, options, progress, cancel, np.dtype(np.float32), out_buffers=views)
    return result
