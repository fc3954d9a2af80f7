"""Batch-level training regularisers from the seed: CutBlur and frequency dropout."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["cutblur", "frequency_band_dropout", "attach_frequency_dropout"]


def cutblur(
    lr: Tensor, hr: Tensor, prob: float, alpha: float, generator: torch.Generator | None = None
) -> Tensor:
    """CutBlur (Yoo et al., CVPR 2020) on same-size ``lr``, ``hr`` ``(B, C, H, W)``.

    With probability ``prob``, a random box (side up to ``alpha`` of the crop) of the input is
    replaced by the target (HR into LR), or the input becomes the target with a box of LR pasted
    in (LR into HR), half the time each. The target stays ``hr``: the network learns where to
    restore and where to leave pixels alone. Returns the new input.
    """
    if lr.shape != hr.shape:
        raise ValueError(
            f"CutBlur needs input and target of one size, got {lr.shape} and {hr.shape}"
        )
    if torch.rand((), generator=generator) >= prob:
        return lr
    h, w = lr.shape[-2:]
    ratio = float(torch.empty(()).uniform_(0.1, alpha, generator=generator))
    ch, cw = max(1, int(h * ratio)), max(1, int(w * ratio))
    y = int(torch.randint(0, h - ch + 1, (), generator=generator))
    x = int(torch.randint(0, w - cw + 1, (), generator=generator))
    if torch.rand((), generator=generator) < 0.5:
        out = lr.clone()
        out[..., y : y + ch, x : x + cw] = hr[..., y : y + ch, x : x + cw]
    else:
        out = hr.clone()
        out[..., y : y + ch, x : x + cw] = lr[..., y : y + ch, x : x + cw]
    return out


def frequency_band_dropout(
    x: Tensor, max_band: float, generator: torch.Generator | None = None
) -> Tensor:
    """Zero one random radial band of the 2-D spectrum of ``x`` ``(B, C, H, W)``.

    The band ``[r0, r0 + width)`` of the normalised radius (0 = DC, 1 = highest frequency) has a
    width drawn up to ``max_band``; the DC term is always kept so the mean survives. Runs in fp32.
    """
    h, w = x.shape[-2:]
    spec = torch.fft.rfft2(x.float(), norm="ortho")
    fy = torch.fft.fftfreq(h, device=x.device)[:, None]
    fx = torch.fft.rfftfreq(w, device=x.device)[None, :]
    radius = torch.sqrt(fy**2 + fx**2)
    radius = radius / radius.max().clamp_min(1e-12)
    width = float(torch.rand((), generator=generator)) * max_band
    start = float(torch.rand((), generator=generator)) * (1.0 - width)
    keep = ~((radius >= start) & (radius < start + width))
    keep[0, 0] = True
    out = torch.fft.irfft2(spec * keep, s=(h, w), norm="ortho")
    return out.to(x.dtype)


def attach_frequency_dropout(
    model: nn.Module, module_name: str, prob: float, max_band: float
) -> RemovableHandle:
    """Apply ``frequency_band_dropout`` to the output of ``model``'s submodule ``module_name``
    (``""``: the first ``Conv2d``) with probability ``prob``, in training mode only."""
    if module_name:
        modules = dict(model.named_modules())
        if module_name not in modules:
            raise KeyError(module_name)
        target = modules[module_name]
    else:
        target = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if target is None:
            raise KeyError("<first Conv2d>")

    def hook(mod: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        if not mod.training or not isinstance(output, Tensor) or output.ndim != 4:
            return None
        if float(torch.rand(())) >= prob:
            return None
        return frequency_band_dropout(output, max_band)

    return target.register_forward_hook(hook)
