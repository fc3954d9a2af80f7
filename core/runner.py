"""The model runner: one batch of tiles through the model, whatever its channels and precision.

``ModelRunner`` prepares the caller's model for one engine call and puts it back exactly as it
came afterwards; in between it feeds it batches of float tiles. It owns everything about a model
call: channels (gray image with an RGB model, RGB image with a gray model, alpha), the model's
size requirements (reflect padding, then cropping), precision (auto/fp32/fp16/bf16, with an fp32
redo of any tile whose half-precision output is not finite), channels_last, torch.compile on
CUDA, the CPU thread count, the x8 self-ensemble, the resize to a target scale, and the cost probe
behind the automatic tile size. Where tiles go is ``core.engine``'s business.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from spandrel import ImageModelDescriptor, SizeRequirements
from torch import Tensor

from .archs.reparam import inference_form
from .color import LUMA_WEIGHTS
from .options import CancelToken, Precision, UpscaleOptions


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


_COSTS: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, float]]
_COSTS = weakref.WeakKeyDictionary()
"""Measured bytes per input pixel, per model and per way of running it (see ``measure_cost``)."""
_COSTS_LOCK = threading.Lock()


# --- leaving the caller's model as it came ---------------------------------------------------


class ModelState:
    """Every parameter and buffer of a module as it is now, to put back exactly.

    ``module.to(dtype)`` makes new tensors and leaves the old ones untouched, so keeping
    references to the originals (no copy, no extra memory) and pointing the module back at them
    afterwards restores it bit for bit, on its own device, in its own layout. Converting back
    with ``.to()`` would not: bf16 keeps 8 bits of a float32 mantissa, so a kept-loaded model
    (the app, ComfyUI) would drift after every half-precision run.

    Plain tensor attributes are kept too: many of spandrel's architectures (SPAN, SwinIR, HAT,
    DAT, ...) hold the RGB mean as one and replace it in ``forward`` with
    ``self.mean = self.mean.type_as(x)``, so a bf16 run would leave the mean rounded (0.4488
    becomes 0.4492) and every later fp32 run off by up to 19/255.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self._params: list[tuple[torch.nn.Module, str, torch.nn.Parameter, Tensor, Tensor | None]]
        self._params = []
        self._buffers: list[tuple[torch.nn.Module, str, Tensor]] = []
        self._attributes: list[tuple[torch.nn.Module, dict[str, Tensor]]] = []
        self._training = [(m, m.training) for m in module.modules()]
        for m in module.modules():
            tensors = {k: v for k, v in vars(m).items() if isinstance(v, Tensor)}
            if tensors:
                self._attributes.append((m, tensors))
            for name, p in m._parameters.items():
                if p is not None:
                    self._params.append((m, name, p, p.data, p.grad))
            for name, b in m._buffers.items():
                if b is not None:
                    self._buffers.append((m, name, b))
        self.state_dict: dict[str, Tensor] = module.state_dict()
        """The original tensors by name (aliases, not copies)."""

    def restore(self) -> None:
        for m, name, p, data, grad in self._params:
            m._parameters[name] = p
            p.data = data
            p.grad = grad
        for m, name, b in self._buffers:
            m._buffers[name] = b
        for m, tensors in self._attributes:
            vars(m).update(tensors)
        for m, training in self._training:
            m.training = training


# --- the model call ----------------------------------------------------------------------------


def pad_to_requirements(x: Tensor, requirements: SizeRequirements) -> Tensor:
    """Pad x: (N, C, h, w) on the bottom and right to a size the model takes: reflect as far as
    the image reaches, then replicate (an input smaller than the padding, e.g. 6x8 padded to
    16x16, cannot be reflected that far). The caller crops the output back."""
    h, w = x.shape[2:]
    pad_w, pad_h = requirements.get_padding(w, h)
    if pad_w or pad_h:
        rw, rh = min(pad_w, w - 1), min(pad_h, h - 1)
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
        x = F.pad(x, (0, pad_w - rw, 0, pad_h - rh), mode="replicate")
    return x


class ModelRunner:
    """Runs the model on batches of tiles: channels, padding, precision, TTA, resizing.

    Tiles go in as float32 CPU tensors (N, C_img, h, w) in [0, 1] and come out as float32 CPU
    tensors (N, C_out_img, oh, ow).
    """

    def __init__(
        self,
        model: ImageModelDescriptor,
        options: UpscaleOptions,
        channels: int,
        cancel: CancelToken | None = None,
    ) -> None:
        self.desc = model
        self.cancel = cancel
        self.on_pass: Callable[[], None] | None = None
        """Called after every forward pass (the tile loop turns it into progress)."""
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
        # HyReSR and any other model with re-parameterizable blocks runs fused (a copy made
        # once per model); the caller's module is then not touched at all
        self.module = inference_form(model.model)
        self._state: ModelState | None = None
        self._fp32_module: torch.nn.Module | None = None
        self.fp32_redos = 0
        # channels_last on every device: oneDNN runs convolutions ~30% faster in it on the CPU
        # too (Compact x4 on a 406x502 tile: 0.55 s against 0.77 s); a model whose forward
        # cannot take it (a .view over permuted strides) falls back on its first tile
        self.channels_last = True

    # setup / teardown: the caller's model comes back exactly as it was (see ModelState), and
    # torch's CPU thread count as it was (it is process-wide)
    def __enter__(self) -> ModelRunner:
        self._threads = torch.get_num_threads()
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        self._state = ModelState(self.module)
        try:
            self.module.eval()
            self.module.to(device=self.device, dtype=self.dtype)
            if self.channels_last:
                self.module.to(memory_format=torch.channels_last)
        except BaseException:
            self._state.restore()
            torch.set_num_threads(self._threads)
            raise
        self.compiled = self.module
        if self.options.compile and self.device.type == "cuda":
            self.compiled = torch.compile(self.module)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._state is not None:
            self._state.restore()
            self._state = None
        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        self._fp32_module = None
        self.compiled = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _fp32(self) -> torch.nn.Module:
        """A float32 copy of the model on the device, from the caller's own weights (exact when
        they are float32), for tiles whose half-precision output was not finite."""
        if self._fp32_module is None:
            assert self._state is not None
            module = copy.deepcopy(self.module)
            module.load_state_dict(self._state.state_dict, assign=True)
            module.to(device=self.device, dtype=torch.float32)
            if self.channels_last:
                module.to(memory_format=torch.channels_last)
            self._fp32_module = module
        return self._fp32_module

    @property
    def passes_per_tile(self) -> int:
        """Forward passes one tile takes: 8 with TTA, times 2 when alpha goes through the model."""
        alpha_pass = self.alpha and self.options.alpha_mode == "model"
        return (8 if self.options.tta else 1) * (2 if alpha_pass else 1)

    def _model(self, x: Tensor) -> Tensor:
        """x: (N, in_ch, h, w) float32 on the CPU -> (N, out_ch, h*s, w*s) float32 on the CPU."""
        y = self._infer(x.to(self.device, non_blocking=True))
        return y.float().clamp_(0, 1).cpu()

    def _infer(self, x: Tensor) -> Tensor:
        """x: (N, in_ch, h, w) float32 on the device -> (N, out_ch, h*s, w*s) on the device."""
        h, w = x.shape[2:]
        x = self._pad(x)
        y = self._forward(self.compiled, x.to(self.dtype))
        if self.dtype != torch.float32 and not bool(torch.isfinite(y).all()):
            # fp16 overflow (or bf16 trouble) in this tile: do it again in full precision, with
            # the same self-ensemble
            self.fp32_redos += 1
            y = self._forward(self._fp32(), x.float())
        return y[..., : h * self.scale, : w * self.scale]

    def _pad(self, x: Tensor) -> Tensor:
        return pad_to_requirements(x, self.desc.size_requirements)

    def _forward(self, module: torch.nn.Module, x: Tensor) -> Tensor:
        if self.channels_last:
            try:
                return self._forward_layout(module, x.contiguous(memory_format=torch.channels_last))
            except torch.OutOfMemoryError:
                raise
            except RuntimeError:
                # this model cannot run channels_last: plain layout from now on (a real error
                # raises again below)
                self.channels_last = False
                self.module.to(memory_format=torch.contiguous_format)
                module.to(memory_format=torch.contiguous_format)
        return self._forward_layout(module, x.contiguous())

    def _forward_layout(self, module: torch.nn.Module, x: Tensor) -> Tensor:
        if not self.options.tta:
            return self._pass(module, x)
        total = None
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(x, k, (2, 3))
                t = t.flip(3) if flip else t
                y = self._pass(module, t).float()
                y = y.flip(3) if flip else y
                y = torch.rot90(y, -k, (2, 3))
                total = y if total is None else total.add_(y)
        assert total is not None
        return total.div_(8)

    def _pass(self, module: torch.nn.Module, x: Tensor) -> Tensor:
        """One forward pass: cancel is checked before it (a tile is up to 16 passes with TTA and
        alpha, minutes on a CPU) and ``on_pass`` is told after it."""
        if self.cancel is not None:
            self.cancel.check()
        y = self.call_fn(module, x)
        if self.on_pass is not None:
            self.on_pass()
        return y

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
        luma = torch.tensor(LUMA_WEIGHTS, dtype=y.dtype).view(1, 3, 1, 1)
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
        output and the resized/blended copy).

        Measured once per model and way of running it (channels, dtype, device, TTA, alpha) and
        remembered for as long as the model lives: a batch of files, or the app and ComfyUI
        keeping a model loaded, probe it once instead of once per image."""
        key = (
            self.channels,
            self.dtype,
            str(self.device),
            probe,
            self.options.tta,
            self.options.alpha_mode,
        )
        with _COSTS_LOCK:
            known = _COSTS.get(self.desc.model, {}).get(key)
        if known is not None:
            return known
        x = torch.rand(1, self.channels, probe, probe)
        on_pass, self.on_pass = self.on_pass, None
        try:
            cost = self._measure_cost(x, probe)
        finally:
            self.on_pass = on_pass
        with _COSTS_LOCK:
            _COSTS.setdefault(self.desc.model, {})[key] = cost
        return cost

    def _measure_cost(self, x: Tensor, probe: int) -> float:
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
