"""HyReSR-MoE: hybrid restoration + super-resolution with frequency split, windows and experts.

A U-Net over three scales (full, 1/2, 1/4). Every stage is a stack of :class:`HyReSRBlock`:

* a frequency splitter: ``low = dwconv(avgpool2(x))`` (half resolution),
  ``high = x - mix * up2(low)`` with a learnable per-channel fusion weight ``mix``, optionally
  refined by a :class:`FourierUnit` on each stream;
* the low stream runs NAF blocks (SimpleGate, simplified channel attention) at half resolution,
  optionally followed by a PLK-style partial large-kernel re-parameterizable conv;
* the high stream runs (shifted) window attention + gated FFN, optionally an overlapping
  cross-window attention (OCAB-like), then a top-1 token mixture of experts with real
  gather/scatter dispatch, then optional StyleGAN2-style noise injection;
* cross-fusion (concat + 1x1 conv + channel attention), GlobalMix (focused linear attention) in
  the bottleneck, a re-parameterizable 3x3 conv, and the residual.

Encoder and decoder are joined by MSG skips; the head is PixelShuffle or DySample, with a long
skip around the U-Net and an image-level bilinear residual when in and out channels agree.

State-dict layout, for detection (``P`` = ``enc1.blocks.0`` etc., stages ``enc1 enc2 mid dec2
dec1``; ``L`` = ``P.high.layers.0``):

=====================  =======================================================================
hyperparameter         where it is read from
=====================  =======================================================================
in_ch                  ``stem.conv3x3.weight`` (train) / ``stem.conv_fused.weight`` (deploy): dim 1
base                   same tensor, dim 0
out_ch                 ``head.conv_up.weight`` dim 0 // scale**2 (pixelshuffle);
                       ``head.to_img.weight`` dim 0 (dysample)
scale                  ``head.scale_buf`` (int64 scalar)
upsampler              ``head.offset.weight`` present -> "dysample", else "pixelshuffle"
depths                 number of distinct ``enc1.blocks.{i}``, ``enc2.blocks.{i}``,
                       ``mid.blocks.{i}`` (decoder mirrors the encoder)
win                    ``L.attn.window_size_buf`` (int64 scalar)
num_heads              ``enc1/enc2/mid.blocks.0.high.layers.0.attn.num_heads_buf``
shift                  ``L.shift_buf`` (int64 scalar, per high layer)
high_depth             number of distinct ``P.high.layers.{j}``
ffn_ratio              ``L.ffn.fc1.weight`` dim 0 / dim
experts                ``P.moe.router.weight`` dim 0 (in any block that has ``P.moe``)
expert_ratio           ``P.moe.experts.0.fc1.weight`` dim 0 / dim
moe_every              which blocks have ``P.moe.router.weight`` (block i of every stage has
                       it when ``(i + 1) % moe_every == 0``): 1 + the smallest such i
low_depth              number of distinct ``P.low.blocks.{j}``
plk / plk_kernel       ``P.low.plk.conv_large.weight`` (train) or ``P.low.plk.conv_fused.weight``
                       (deploy) present; kernel = its dim 2; partial channels = its dim 0
fourier                ``P.split.fourier_low.conv1.weight`` present
noise                  ``P.noise.strength`` present
global_mix             ``mid.blocks.0.mix.qkv.weight`` present; heads in ``...mix.num_heads_buf``
overlap (OCAB)         ``<stage>.blocks.<last>.high.ocab.q.weight`` present; enlarged window in
                       ``...ocab.overlap_size_buf``, heads in ``...ocab.num_heads_buf``
deploy vs train        ``conv_fused`` keys (deploy) vs ``conv3x3``/``conv1x1``/``conv_large``
                       keys (train); the two never coexist
=====================  =======================================================================

Masks, ALiBi biases and sampling grids are non-persistent and cached per module.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (
    ChannelAttention,
    GatedFFN,
    LayerNorm2d,
    WindowAttention,
    alibi_slopes,
    is_tracing,
    window_partition,
    window_reverse,
)
from .fourier import FourierUnit
from .moe import TokenMoE
from .reparam import PLKConv, RepConv, reparameterize_model

Upsampler = Literal["pixelshuffle", "dysample"]

_CACHE_LIMIT = 8


# --- small helpers -----------------------------------------------------------------------------


def _int_buffer(value: int) -> Tensor:
    return torch.tensor(int(value), dtype=torch.int64)


def _up2(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W), bilinear."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class SimpleGate(nn.Module):
    """NAFNet's gate: split the channels in two halves and multiply them."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 2C, H, W) -> (B, C, H, W)."""
        a, b = x.chunk(2, dim=1)
        return a * b


# --- frequency split ---------------------------------------------------------------------------


class FreqSplit(nn.Module):
    """Soft low/high split. x: (B, C, H, W), H and W even.

    Returns ``low`` (B, C, H/2, W/2) = dwconv(avgpool2(x)) and ``high`` (B, C, H, W) =
    x - mix * up2(low), with ``mix`` a learnable per-channel fusion weight.
    """

    def __init__(self, dim: int, *, fourier: bool = False) -> None:
        super().__init__()
        self.low_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.mix = nn.Parameter(torch.ones(1, dim, 1, 1))
        if fourier:
            self.fourier_low = FourierUnit(dim)
            self.fourier_high = FourierUnit(dim)
        self.fourier = fourier

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        low = self.low_conv(F.avg_pool2d(x, 2))
        high = x - self.mix * _up2(low)
        if self.fourier:
            low = low + self.fourier_low(low)
            high = high + self.fourier_high(high)
        return low, high


# --- low-frequency path ------------------------------------------------------------------------


class NAFBlock(nn.Module):
    """NAFNet block: gated depthwise conv with simplified channel attention, then a gated FFN.

    x: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int, expand: int = 2) -> None:
        super().__init__()
        hidden = dim * expand
        self.norm1 = LayerNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.gate = SimpleGate()
        # Simplified channel attention: pool + 1x1 conv, no nonlinearity (NAFNet).
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden // 2, hidden // 2, 1))
        self.pw2 = nn.Conv2d(hidden // 2, dim, 1)
        self.norm2 = LayerNorm2d(dim)
        self.ffn1 = nn.Conv2d(dim, hidden, 1)
        self.ffn2 = nn.Conv2d(hidden // 2, dim, 1)
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = self.gate(self.dw(self.pw1(self.norm1(x))))
        y = self.pw2(y * self.sca(y))
        x = x + self.beta * y
        y = self.ffn2(self.gate(self.ffn1(self.norm2(x))))
        return x + self.gamma * y


class LowPath(nn.Module):
    """NAF blocks, then the optional PLK branch. x: (B, C, h, w) -> (B, C, h, w)."""

    def __init__(
        self, dim: int, depth: int, *, plk: bool, plk_kernel: int, deploy: bool = False
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(NAFBlock(dim) for _ in range(depth))
        self.plk = PLKConv(dim, max(1, dim // 4), plk_kernel, deploy=deploy) if plk else None

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x if self.plk is None else self.plk(x)


# --- high-frequency path -----------------------------------------------------------------------


class HighLayer(nn.Module):
    """Pre-norm (shifted) window attention + gated FFN. x: (B, H, W, C) -> (B, H, W, C)."""

    def __init__(self, dim: int, heads: int, win: int, shift: int, ffn_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, win)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = GatedFFN(dim, 2 * max(1, round(dim * ffn_ratio / 2)))
        self.shift = shift
        self.register_buffer("shift_buf", _int_buffer(shift))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), shift=self.shift)
        return x + self.ffn(self.norm2(x))


def _halo_split(x: Tensor, win: int, pad: int, n: Tensor | int) -> Tensor:
    """Axis 1 of x, of length n + pad + win (zero-padded), into overlapping windows.

    x: (B, n + pad + win, *rest) -> (B, n // win, win + 2 * pad, *rest); window i covers the
    original positions [i * win - pad, (i + 1) * win + pad).
    """
    b, rest = x.shape[0], x.shape[2:]
    nb = n // win
    top = x[:, :n].reshape(b, nb, win, *rest)[:, :, :pad]
    core = x[:, pad : pad + n].reshape(b, nb, win, *rest)
    bottom = x[:, pad + win : pad + win + n].reshape(b, nb, win, *rest)[:, :, :pad]
    return torch.cat((top, core, bottom), dim=2)


def overlap_windows(x: Tensor, win: int, pad: int) -> Tensor:
    """Enlarged windows around each win x win window, zero outside the map (like F.unfold).

    x: (B, H, W, C), H and W multiples of win, 0 < pad <= win -> (B * nW, (win + 2 pad)^2, C),
    windows in the order of :func:`window_partition`. Built from slices and reshapes, which
    export to ONNX with symbolic H and W (im2col does not).
    """
    b, h, w, c = x.shape
    # Tells torch.export what the padding guarantees, so symbolic H and W stay symbolic.
    torch._check(h % win == 0)
    torch._check(w % win == 0)
    ow = win + 2 * pad
    x = F.pad(x, (0, 0, pad, win, pad, win))  # W then H: pad before, win after
    x = _halo_split(x, win, pad, h)  # (B, nH, ow, W + pad + win, C)
    x = _halo_split(x.transpose(1, 3), win, pad, w)  # (B, nW, ow, ow, nH, C)
    # axes now: B, nW, ow_col, ow_row, nH, C -> B, nH, nW, ow_row, ow_col, C
    x = x.permute(0, 4, 1, 3, 2, 5)
    return x.reshape(-1, ow * ow, c)


class OverlapCrossAttention(nn.Module):
    """Overlapping-window cross attention (HAT's OCAB idea), with a 2-D ALiBi bias.

    Queries come from each win x win window, keys and values from the enlarged
    ``overlap_size`` x ``overlap_size`` window centred on it (zero-padded at the border), so
    information crosses window edges without a shift. x: (B, H, W, C), H and W multiples of
    ``win`` -> (B, H, W, C) (a residual update).
    """

    def __init__(self, dim: int, heads: int, win: int, overlap_size: int) -> None:
        super().__init__()
        if (overlap_size - win) % 2 or not win < overlap_size <= 3 * win:
            raise ValueError(
                f"overlap window {overlap_size} must exceed {win} by an even number, at most 2*{win}"
            )
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.win, self.overlap_size = dim, heads, win, overlap_size
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("num_heads_buf", _int_buffer(heads))
        self.register_buffer("overlap_size_buf", _int_buffer(overlap_size))
        self._bias_cache: dict[tuple[str, torch.dtype], Tensor] = {}

    def _bias(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """ALiBi bias between query and key positions: (1, heads, win^2, overlap^2)."""
        key = (str(device), dtype)
        bias = self._bias_cache.get(key)
        if bias is None:
            off = (self.overlap_size - self.win) // 2
            qy, qx = torch.meshgrid(torch.arange(self.win), torch.arange(self.win), indexing="ij")
            o = torch.arange(self.overlap_size)
            ky, kx = torch.meshgrid(o, o, indexing="ij")
            qpos = torch.stack((qy + off, qx + off), -1).reshape(-1, 2).double()
            kpos = torch.stack((ky, kx), -1).reshape(-1, 2).double()
            # Explicit distance rather than cdist, which the ONNX exporter cannot translate.
            dist = (qpos[:, None, :] - kpos[None, :, :]).pow(2).sum(-1).sqrt()
            bias = -alibi_slopes(self.heads).double()[:, None, None] * dist
            bias = bias[None].to(device=device, dtype=dtype)
            if len(self._bias_cache) >= _CACHE_LIMIT:
                self._bias_cache.clear()
            self._bias_cache[key] = bias
        return bias

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        win, ow, nh = self.win, self.overlap_size, self.heads
        q = window_partition(self.q(x), win)  # (B*nW, win^2, C)
        kv = overlap_windows(self.kv(x), win, (ow - win) // 2)  # (B*nW, ow^2, 2C)
        k, v = kv.chunk(2, dim=-1)
        d = c // nh
        q = q.view(-1, win * win, nh, d).transpose(1, 2)
        k = k.reshape(-1, ow * ow, nh, d).transpose(1, 2)
        v = v.reshape(-1, ow * ow, nh, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self._bias(x.device, q.dtype))
        out = self.proj(out.transpose(1, 2).reshape(-1, win * win, c))
        return window_reverse(out, win, h, w)


class NoiseInjection(nn.Module):
    """StyleGAN2-style noise: ``x + strength * std(x) * n`` with one noise map per pixel.

    ``strength`` is a learnable per-layer scalar (starts at 0); the amplitude follows the
    per-sample, per-channel standard deviation of the high-frequency stream. Active in training;
    in eval only when ``at_inference`` is set (see :meth:`HyReSR.set_noise`).
    x: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1))
        self.at_inference = False

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training or self.at_inference):
            return x
        b, _, h, w = x.shape
        std = x.detach().flatten(2).std(dim=-1, unbiased=False)[..., None, None]
        noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)
        return x + self.strength * std * noise


# --- global mixer ------------------------------------------------------------------------------


class GlobalMix(nn.Module):
    """Focused linear attention (FLatten / RHA) over all tokens of the bottleneck.

    Cost is linear in H*W. Kernel ``phi(t) = ||t|| * t^p / ||t^p||`` on ReLU features with a
    learnable per-channel temperature, plus a depthwise conv on V that restores rank.
    x: (B, C, H, W) -> (B, C, H, W) (a residual update).
    """

    def __init__(self, dim: int, heads: int, focusing: int = 3) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.focusing = heads, focusing
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.temperature = nn.Parameter(torch.zeros(1, 1, dim))
        self.dwc = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("num_heads_buf", _int_buffer(heads))

    def _focus(self, t: Tensor, scale: Tensor) -> Tensor:
        t = (F.relu(t) + 1e-6) / scale
        norm = t.norm(dim=-1, keepdim=True)
        tp = t**self.focusing
        return tp / tp.norm(dim=-1, keepdim=True) * norm

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = self.norm(x.flatten(2).transpose(1, 2))  # (B, N, C)
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        scale = F.softplus(self.temperature.float())
        # Powers and sums over all tokens overflow in fp16: this part runs in fp32.
        q = self._focus(q.float(), scale)
        k = self._focus(k.float(), scale)
        nh, d = self.heads, c // self.heads
        q = q.view(b, -1, nh, d).transpose(1, 2)  # (B, h, N, d)
        k = k.view(b, -1, nh, d).transpose(1, 2)
        vh = v.float().view(b, -1, nh, d).transpose(1, 2)
        z = 1.0 / (q @ k.mean(dim=2, keepdim=True).transpose(-1, -2) + 1e-6)  # (B, h, N, 1)
        kv = (k.transpose(-1, -2) @ vh) / k.shape[2]  # (B, h, d, d), mean over tokens
        out = (q @ kv) * z
        out = out.transpose(1, 2).reshape(b, -1, c).to(x.dtype)
        v_map = v.transpose(1, 2).reshape(b, c, h, w)
        out = out + self.dwc(v_map).flatten(2).transpose(1, 2)
        return self.proj(out).transpose(1, 2).reshape(b, c, h, w)


# --- the block ---------------------------------------------------------------------------------


class HyReSRBlock(nn.Module):
    """Frequency split, low (NAF + PLK) and high (windows + MoE) paths, fusion, RepConv.

    x: (B, C, H, W), H and W multiples of ``win`` and even -> (B, C, H, W).
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int,
        win: int,
        shifts: tuple[int, ...],
        ffn_ratio: float,
        experts: int,
        expert_ratio: float,
        use_moe: bool,
        low_depth: int,
        plk: bool,
        plk_kernel: int,
        fourier: bool,
        noise: bool,
        global_mix: bool,
        overlap_size: int,
        deploy: bool,
    ) -> None:
        super().__init__()
        self.split = FreqSplit(dim, fourier=fourier)
        self.low = LowPath(dim, low_depth, plk=plk, plk_kernel=plk_kernel, deploy=deploy)
        self.high = nn.Module()
        self.high.layers = nn.ModuleList(HighLayer(dim, heads, win, s, ffn_ratio) for s in shifts)
        self.high.ocab = None
        if overlap_size:
            self.high.ocab_norm = nn.LayerNorm(dim)
            self.high.ocab = OverlapCrossAttention(dim, heads, win, overlap_size)
        self.moe = TokenMoE(dim, experts, max(1, round(dim * expert_ratio))) if use_moe else None
        self.noise = NoiseInjection() if noise else None
        self.fuse = nn.Conv2d(2 * dim, dim, 1)
        self.fuse_ca = ChannelAttention(dim, reduction=max(1, min(16, dim // 4)))
        self.mix = GlobalMix(dim, heads) if global_mix else None
        self.rep = RepConv(dim, dim, deploy=deploy)

    def forward(self, x: Tensor) -> Tensor:
        low, high = self.split(x)
        low = _up2(self.low(low))
        h = high.permute(0, 2, 3, 1)  # (B, H, W, C)
        for layer in self.high.layers:
            h = layer(h)
        if self.high.ocab is not None:
            h = h + self.high.ocab(self.high.ocab_norm(h))
        if self.moe is not None:
            h = h + self.moe(h)
        high = h.permute(0, 3, 1, 2)
        if self.noise is not None:
            high = self.noise(high)
        z = self.fuse_ca(self.fuse(torch.cat((low, high), dim=1)))
        if self.mix is not None:
            z = z + self.mix(z)
        return self.rep(z) + x


class Stage(nn.Module):
    """A stack of HyReSR blocks at one resolution. x: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, dim: int, depth: int, *, high_depth: int, moe_every: int, overlap: bool,
                 win: int, overlap_size: int, **block_kw) -> None:  # fmt: skip
        super().__init__()
        blocks = []
        for i in range(depth):
            shifts = tuple((win // 2) if (i * high_depth + j) % 2 else 0 for j in range(high_depth))
            blocks.append(
                HyReSRBlock(
                    dim,
                    win=win,
                    shifts=shifts,
                    use_moe=moe_every > 0 and (i + 1) % moe_every == 0,
                    overlap_size=overlap_size if overlap and i == depth - 1 else 0,
                    **block_kw,
                )
            )
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x


# --- heads -------------------------------------------------------------------------------------


class PixelShuffleHead(nn.Module):
    """conv + LeakyReLU, conv to out_ch * scale^2, PixelShuffle. (B, C, H, W) -> (B, out, sH, sW)."""

    def __init__(self, dim: int, out_ch: int, scale: int) -> None:
        super().__init__()
        self.conv_before = nn.Conv2d(dim, dim, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.conv_up = nn.Conv2d(dim, out_ch * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.register_buffer("scale_buf", _int_buffer(scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(self.conv_up(self.act(self.conv_before(x))))


class DySampleHead(nn.Module):
    """DySample (Liu et al. 2023): learn where to sample instead of how to interpolate.

    Features go to ``out_ch`` channels at low resolution; per-pixel offsets (2 * scale^2
    channels, pixel-shuffled to the output grid, scaled by 0.25 like the paper's static scope)
    move a bilinear sampling grid; ``grid_sample`` produces the output, then a 3x3 conv.
    (B, C, H, W) -> (B, out, sH, sW).
    """

    def __init__(self, dim: int, out_ch: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.conv_before = nn.Conv2d(dim, dim, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.to_img = nn.Conv2d(dim, out_ch, 3, padding=1)
        self.offset = nn.Conv2d(dim, 2 * scale * scale, 1)
        nn.init.normal_(self.offset.weight, std=1e-3)
        nn.init.zeros_(self.offset.bias)
        self.end = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.register_buffer("scale_buf", _int_buffer(scale))
        self._grid_cache: dict[tuple[int, int, str, torch.dtype], Tensor] = {}

    def _grid(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Normalized (x, y) of every output pixel's centre in the input: (1, sH, sW, 2)."""
        key = (h, w, str(device), dtype)
        cached = None if is_tracing() else self._grid_cache.get(key)
        if cached is not None:
            return cached
        s = self.scale
        ys = ((torch.arange(h * s, device=device, dtype=dtype) + 0.5) / (s * h)) * 2 - 1
        xs = ((torch.arange(w * s, device=device, dtype=dtype) + 0.5) / (s * w)) * 2 - 1
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((gx, gy), dim=-1)[None]
        if not is_tracing():
            if len(self._grid_cache) >= _CACHE_LIMIT:
                self._grid_cache.clear()
            self._grid_cache[key] = grid
        return grid

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        feat = self.act(self.conv_before(x))
        img = self.to_img(feat)
        off = F.pixel_shuffle(self.offset(feat) * 0.25, self.scale)  # (B, 2, sH, sW), pixels
        # (x, y) pixels -> normalised units; both on the input's device (torch.stack does not
        # move a CPU tensor), built from ones so that w and h stay symbolic in an export
        one = torch.ones((), device=x.device)
        norm = torch.stack((2.0 / w * one, 2.0 / h * one))
        off = off.permute(0, 2, 3, 1) * norm.to(off.dtype)
        grid = self._grid(h, w, x.device, off.dtype) + off
        out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return self.end(out)


# --- the model ---------------------------------------------------------------------------------


class HyReSR(nn.Module):
    """HyReSR-MoE. x: (B, in_ch, H, W), any H, W >= 1 -> (B, out_ch, scale*H, scale*W).

    The input is padded (replicate, which also works for 1-pixel images) to a multiple of
    ``4 * lcm(win, 2)`` so both downsamplings, the windows and the frequency split fit, and the
    output is cropped back.
    """

    def __init__(
        self,
        *,
        in_ch: int = 3,
        out_ch: int | None = None,
        base: int = 48,
        depths: tuple[int, int, int] = (4, 6, 8),
        win: int = 8,
        experts: int = 4,
        scale: int = 2,
        num_heads: tuple[int, int, int] = (2, 4, 8),
        ffn_ratio: float = 2.0,
        expert_ratio: float = 1.0,
        moe_every: int = 1,
        high_depth: int = 1,
        low_depth: int = 1,
        overlap: bool = False,
        overlap_ratio: float = 0.5,
        plk: bool = True,
        plk_kernel: int = 13,
        fourier: bool = False,
        noise: bool = False,
        global_mix: bool = True,
        upsampler: Upsampler = "pixelshuffle",
        deploy: bool = False,
    ) -> None:
        super().__init__()
        out_ch = in_ch if out_ch is None else out_ch
        if scale not in (1, 2, 3, 4):
            raise ValueError(f"scale must be 1, 2, 3 or 4, got {scale}")
        if len(depths) != 3 or len(num_heads) != 3:
            raise ValueError("depths and num_heads need three entries (full, 1/2, 1/4)")
        if upsampler not in ("pixelshuffle", "dysample"):
            raise ValueError(f"upsampler must be 'pixelshuffle' or 'dysample', got {upsampler!r}")
        self.in_ch, self.out_ch, self.scale, self.win = in_ch, out_ch, scale, win
        self.pad_multiple = 4 * math.lcm(win, 2)
        ow = win + 2 * max(1, round(win * overlap_ratio / 2))
        common = dict(
            win=win, ffn_ratio=ffn_ratio, experts=experts, expert_ratio=expert_ratio,
            low_depth=low_depth, plk=plk, plk_kernel=plk_kernel, fourier=fourier, noise=noise,
            deploy=deploy, high_depth=high_depth, moe_every=moe_every, overlap=overlap,
            overlap_size=ow,
        )  # fmt: skip
        dims = (base, base * 2, base * 4)
        self.stem = RepConv(in_ch, base, deploy=deploy)
        self.enc1 = Stage(dims[0], depths[0], heads=num_heads[0], global_mix=False, **common)
        self.down1 = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * dims[0], dims[1], 1))
        self.enc2 = Stage(dims[1], depths[1], heads=num_heads[1], global_mix=False, **common)
        self.down2 = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * dims[1], dims[2], 1))
        self.mid = Stage(dims[2], depths[2], heads=num_heads[2], global_mix=global_mix, **common)
        self.up2 = nn.Sequential(nn.Conv2d(dims[2], 4 * dims[1], 1), nn.PixelShuffle(2))
        self.msg2 = nn.Conv2d(dims[1], dims[1], 1)
        self.dec2 = Stage(dims[1], depths[1], heads=num_heads[1], global_mix=False, **common)
        self.up1 = nn.Sequential(nn.Conv2d(dims[1], 4 * dims[0], 1), nn.PixelShuffle(2))
        self.msg1 = nn.Conv2d(dims[0], dims[0], 1)
        self.dec1 = Stage(dims[0], depths[0], heads=num_heads[0], global_mix=False, **common)
        head_cls = DySampleHead if upsampler == "dysample" else PixelShuffleHead
        self.head = head_cls(base, out_ch, scale)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        m = self.pad_multiple
        x = F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m), mode="replicate")
        x0 = self.stem(x)
        e1 = self.enc1(x0)
        e2 = self.enc2(self.down1(e1))
        mid = self.mid(self.down2(e2))
        d2 = self.dec2(self.up2(mid) + self.msg2(e2))
        d1 = self.dec1(self.up1(d2) + self.msg1(e1))
        out = self.head(d1 + x0)
        if self.in_ch == self.out_ch:
            if self.scale == 1:
                out = out + x
            else:
                out = out + F.interpolate(
                    x, scale_factor=float(self.scale), mode="bilinear", align_corners=False
                )
        return out[..., : h * self.scale, : w * self.scale]

    # --- training helpers ---

    def moe_layers(self) -> list[TokenMoE]:
        return [m for m in self.modules() if isinstance(m, TokenMoE)]

    def aux_loss(self) -> Tensor:
        """Sum of the Switch balance losses of every MoE layer from the last training forward.

        A 0-d tensor (0 when no MoE layer has routed in training mode yet). Add it to the
        reconstruction loss with a small weight (e.g. 0.01).
        """
        losses = [m.last_routing["aux_loss"] for m in self.moe_layers() if m.last_routing]
        if not losses:
            return torch.zeros((), device=self.stem_weight_device())
        return torch.stack(losses).sum()

    def expert_fractions(self) -> list[Tensor]:
        """Per MoE layer, the fraction of tokens each expert got in the last training forward."""
        return [m.last_routing["fractions"] for m in self.moe_layers() if m.last_routing]

    def set_moe_warmup(self, active: bool) -> None:
        """While active (training mode only), experts are sampled (Gumbel-max), not argmax."""
        for m in self.moe_layers():
            m.explore = bool(active)

    def set_noise(self, at_inference: bool) -> None:
        """Let the noise injection layers (if any) also act in eval mode."""
        for m in self.modules():
            if isinstance(m, NoiseInjection):
                m.at_inference = bool(at_inference)

    def stem_weight_device(self) -> torch.device:
        return next(self.stem.parameters()).device


# --- variants ----------------------------------------------------------------------------------


def hyresr_tiny(scale: int = 2, **overrides) -> HyReSR:
    """No GlobalMix, 2 experts, window 4, base 32, depths (2, 2, 2)."""
    cfg = dict(base=32, depths=(2, 2, 2), win=4, experts=2, global_mix=False, plk_kernel=9)
    cfg.update(overrides)
    return HyReSR(scale=scale, **cfg)


def hyresr_base(scale: int = 2, **overrides) -> HyReSR:
    """The seed's defaults: base 48, depths (4, 6, 8), window 8, 4 experts, GlobalMix."""
    cfg = dict(base=48, depths=(4, 6, 8), win=8, experts=4)
    cfg.update(overrides)
    return HyReSR(scale=scale, **cfg)


def hyresr_sr_heavy(scale: int = 4, **overrides) -> HyReSR:
    """Overlapping window attention in each stage's last block, two high layers per block."""
    cfg = dict(base=48, depths=(4, 6, 8), win=8, experts=4, high_depth=2, overlap=True)
    cfg.update(overrides)
    return HyReSR(scale=scale, **cfg)


def hyresr_restoration_heavy(scale: int = 1, **overrides) -> HyReSR:
    """Two NAF blocks per low path, larger PLK kernel, FourierUnit, MoE in every second block."""
    cfg = dict(
        base=48, depths=(4, 6, 8), win=8, experts=2, moe_every=2, low_depth=2, plk_kernel=17,
        fourier=True,
    )  # fmt: skip
    cfg.update(overrides)
    return HyReSR(scale=scale, **cfg)


__all__ = [
    "HyReSR",
    "hyresr_base",
    "hyresr_restoration_heavy",
    "hyresr_sr_heavy",
    "hyresr_tiny",
    "reparameterize_model",
]
