"""The FourierUnit (SFHformer / GFISR style): a 1x1 conv in the 2-D frequency domain.

``torch.fft`` in eager mode; while a graph is being exported, an equivalent real-valued DFT made
of matrix products, because the FFT ops have no ONNX translation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .blocks import is_tracing


def _dft_mats(n: int, m: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Real DFT matrices for an (n, m) map: cos/sin along H (n x n) and rfft along W (m x m//2+1).

    Built from ``arange`` so that n, m can stay symbolic in an exported graph.
    """
    dev, dt = like.device, torch.float32
    ih = torch.arange(n, device=dev, dtype=dt)
    iw = torch.arange(m, device=dev, dtype=dt)
    kw = torch.arange(m // 2 + 1, device=dev, dtype=dt)
    ang_h = 2 * math.pi * ih[:, None] * ih[None, :] / n
    ang_w = 2 * math.pi * iw[:, None] * kw[None, :] / m
    return torch.cos(ang_h), torch.sin(ang_h), torch.cos(ang_w), torch.sin(ang_w)


def rfft2_real(x: Tensor) -> tuple[Tensor, Tensor]:
    """Orthonormal ``rfft2`` by real matmuls (export path): (B, C, H, W) -> 2 x (B, C, H, W//2+1).

    Equal to ``torch.fft.rfft2(x, norm="ortho")`` (real, imag) up to rounding.
    """
    n, m = x.shape[-2], x.shape[-1]
    ch, sh, cw, sw = _dft_mats(n, m, x)
    scale = (n * m) ** -0.5
    ar, ai = x @ cw, -(x @ sw)  # along W: (B, C, H, K)
    re = ch @ ar + sh @ ai  # along H: e^{-i t} (ar + i ai)
    im = ch @ ai - sh @ ar
    return re * scale, im * scale


def irfft2_real(re: Tensor, im: Tensor, width: int) -> Tensor:
    """Inverse of :func:`rfft2_real`: 2 x (B, C, H, W//2+1) -> (B, C, H, W), any ``width``."""
    n = re.shape[-2]
    ch, sh, cw, sw = _dft_mats(n, width, re)
    scale = (n * width) ** -0.5
    br = ch @ re - sh @ im  # inverse along H: e^{+i t}
    bi = ch @ im + sh @ re
    # Hermitian weights: the DC bin once, the Nyquist bin once (only an even width has one: bin
    # k with 2k == width), every other bin twice for its mirror image. A comparison rather than
    # a branch on the width, so the width can stay symbolic in an exported graph.
    k = torch.arange(re.shape[-1], device=re.device)
    weight = torch.where((k == 0) | (2 * k == width), 1.0, 2.0).to(re.dtype)
    out = (br * weight) @ cw.transpose(0, 1) - (bi * weight) @ sw.transpose(0, 1)
    return out * scale


class FourierUnit(nn.Module):
    """Global refinement in the frequency domain (FFC / SFHformer style).

    rfft2 -> [real, imag] stacked on channels -> 1x1 conv, GELU, 1x1 conv -> irfft2. Runs in
    fp32. During ONNX export a real-valued DFT (matmuls) replaces torch.fft.
    x: (B, C, H, W) -> (B, C, H, W) (a residual update; the caller adds it).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(2 * dim, 2 * dim, 1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        xf = x.float()
        export = is_tracing()
        if export:
            re, im = rfft2_real(xf)
        else:
            f = torch.fft.rfft2(xf, norm="ortho")
            re, im = f.real, f.imag
        f = torch.cat((re, im), dim=1)
        f = self.conv2(self.act(self.conv1(f.to(self.conv1.weight.dtype)))).float()
        re, im = f.chunk(2, dim=1)
        if export:
            y = irfft2_real(re, im, w)
        else:
            y = torch.fft.irfft2(torch.complex(re, im), s=(h, w), norm="ortho")
        return y.to(x.dtype)
