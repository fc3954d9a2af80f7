"""NEXUS: a window-attention super-resolution transformer (seed 000_59696619246afa22).

Layout: shallow 3x3 conv stem -> residual groups -> LayerNorm -> 3x3 conv (+ stem residual) ->
reconstruction (upsampler). Features stay at input resolution; the input's edges are replicated
a few pixels out and it is padded to a multiple of the window, and the output is cropped back,
so any size works, flat borders stay flat, and there is no ``img_size``.

A NEXUS block (channels-last ``x: (B, H, W, C)``)::

    y = norm1(x)
    qkv = attn.qkv(y)                                     # shared by both attention paths
    spatial = window attention (ALiBi, shifted on odd blocks; Q, K * (1 + freq) if use_freq)
    channel = channel self-attention inside the same (unshifted) windows
    x = x + drop_path(ls_attn * attn.proj(g0 * spatial + g1 * channel) + ls_cab * cab(y))
    x = x + drop_path(ls_ffn * ffn(norm2(x)))             # spatial-gated FFN (DAT's SGFN)

with ``(g0, g1) = softmax(fuse_logits)`` per channel, ``cab`` = depthwise-separable convs +
squeeze-excitation (the efficient channel attention of the seed, HAT's CAB made cheaper), and
``freq = alpha * tanh(dwconv(y - avgpool3x3(y)))`` (high-frequency part of the features).
A residual group sums its block outputs with ``softmax(agg_logits)`` weights (a running sum:
constant memory, unlike DRCT's dense concatenation), then applies its conv and adds its input.

Design choices that differ from a literal reading of the seed, and why:

* The channel path shares the spatial path's qkv projection (one ``C -> 3C`` linear per block)
  and its output projection (applied once, after the gated mix; it is linear, so this equals
  projecting each path with the same weights). Separate projections would cost ``4 C^2`` more
  per block and put nexus_medium at ~32M parameters, above the seed's ~25M and the 20-30M
  budget. The CAB bottleneck uses HAT's compress ratio 3 for the same reason.
* Channel self-attention runs inside windows, not over the whole image, so the cost stays linear
  in pixels and tiling changes less; the CAB's squeeze-excitation pooling (as in HAT) is the only
  image-wide operation left.

Reading the hyperparameters back from a state dict (the spandrel detector relies on this table;
``L`` = ``layers.{i}``, ``B`` = ``layers.{i}.blocks.{j}``):

=================  =====================================================================
hyperparameter     where it is in the state dict
=================  =====================================================================
in_chans           ``conv_first.weight.shape[1]``
embed_dim          ``conv_first.weight.shape[0]``
out_chans          ``conv_last.weight.shape[0]``
scale              ``scale_buf`` (int64 scalar); also implied by the upsampler's shapes
upsampler          ``upsampler_buf``: 0 pixelshuffle, 1 pixelshuffledirect, 2 nearest+conv
                   (keys: ``conv_before_upsample.0`` for 0 and 2, ``upsample.{k}`` for 0,
                   ``conv_up{k}`` and ``conv_hr`` for 2, no ``conv_before_upsample`` for 1)
depths             number of ``L`` indices; per group, number of ``L.blocks.{j}`` indices
num_heads          ``B.attn.num_heads_buf`` (int64 scalar, per block; equal inside a group)
window_size        ``B.attn.window_size_buf`` (int64 scalar); also ``window_size_buf``
shift              ``B.shift_buf`` (int64 scalar): 0 on even blocks, window_size // 2 on odd
use_freq           ``use_freq_buf`` (int64 0/1); the ``B.freq.*`` keys exist iff it is 1
mlp_ratio          ``B.ffn.fc1.weight.shape[0] / embed_dim`` (hidden size rounded to even)
qkv_bias           ``B.attn.qkv.bias`` exists
cab_compress       ``embed_dim // B.cab.pw1.weight.shape[0]`` (hidden = embed_dim // compress)
se_reduction       ``embed_dim // B.cab.se.fc.0.weight.shape[0]`` (squeezed = max(1, dim // r))
                   (for these two, any value giving the same hidden width builds the same
                   model, so the detector may return whichever value reproduces the shapes)
resi_connection    ``L.conv.weight`` exists -> '1conv'; ``L.conv.0.weight`` -> '3conv'
num_feat           ``conv_before_upsample.0.weight.shape[0]`` (pixelshuffle, nearest+conv)
version            ``nexus_version_buf`` (int64 scalar, currently 1): marks a NEXUS checkpoint
drop_path_rate     training only, not stored (it has no effect at inference)
layer_scale_init   initial value only, not stored (the learned scales are ``B.ls_*``)
=================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ChannelAttention, GatedFFN, WindowAttention, window_partition, window_reverse

Upsampler = Literal["pixelshuffle", "pixelshuffledirect", "nearest+conv"]
ResiConnection = Literal["1conv", "3conv"]

UPSAMPLER_CODES: dict[str, int] = {"pixelshuffle": 0, "pixelshuffledirect": 1, "nearest+conv": 2}
SUPPORTED_SCALES = (1, 2, 3, 4, 8)
NEXUS_VERSION = 1


# --- helpers -----------------------------------------------------------------------------------


def _int_buffer(value: int) -> Tensor:
    # int64 so that model.half() / .to(dtype) never touches it; always on the CPU (even when the
    # model is built under ``torch.device("meta")``) so a detector can read a meta-built model.
    return torch.tensor(int(value), dtype=torch.int64, device="cpu")


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``rate``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def _upsample_steps(scale: int) -> list[int]:
    """Factors of the stepwise upsamplers: 8 -> [2, 2, 2], 3 -> [3], 1 -> []."""
    if scale not in SUPPORTED_SCALES:
        raise ValueError(f"scale {scale} is not supported; use one of {SUPPORTED_SCALES}")
    if scale == 3:
        return [3]
    return [2] * (scale.bit_length() - 1)


# --- blocks ------------------------------------------------------------------------------------


class EfficientChannelAttention(nn.Module):
    """HAT's CAB made cheaper: depthwise-separable convs, then squeeze-excitation.

    x: (B, C, H, W) -> (B, C, H, W). dw3x3(C) -> pw(C, C/k) -> GELU -> dw3x3(C/k) -> pw(C/k, C)
    -> SE, with k = ``compress``.
    """

    def __init__(self, dim: int, compress: int = 3, se_reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, dim // compress)
        self.dw1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.pw1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.dw2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.pw2 = nn.Conv2d(hidden, dim, 1)
        self.se = ChannelAttention(dim, se_reduction)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.pw1(self.dw1(x)))
        return self.se(self.pw2(self.dw2(x)))


class WindowChannelAttention(nn.Module):
    """Channel self-attention (Restormer/DAT style) inside non-overlapping windows.

    Takes the block's shared qkv (B, H, W, 3C); per window and head, the d x d attention map
    between channels comes from L2-normalized queries and keys times a learned temperature.
    Runs through ``scaled_dot_product_attention`` with channels as the sequence axis. The output
    projection is the spatial path's (the block applies it after mixing), so this has none.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))

    def forward(self, qkv: Tensor) -> Tensor:
        """qkv: (B, H, W, 3C), H and W multiples of the window -> (B, H, W, C), unprojected."""
        b, hgt, wid, _ = qkv.shape
        win, h, c = self.window_size, self.num_heads, self.dim
        windows = window_partition(qkv, win)  # (B*nW, N, 3C)
        bw, n, _ = windows.shape
        # (3, B*nW, h, d, N): channels of a head form the sequence, pixels the embedding
        q, k, v = windows.view(bw, n, 3, h, c // h).permute(2, 0, 3, 4, 1).unbind(0)
        q = F.normalize(q, dim=-1) * self.temperature.to(q.dtype)
        k = F.normalize(k, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (B*nW, h, d, N)
        out = out.permute(0, 3, 1, 2).reshape(bw, n, c)
        return window_reverse(out, win, hgt, wid)


class FrequencyModulation(nn.Module):
    """High-frequency features that scale attention queries and keys (the seed's Q * (1 + a f)).

    x: (B, H, W, C) -> mod (B, H, W, C) = alpha * tanh(dwconv(x - avgpool3x3(x))); tanh keeps
    the modulation within (-alpha, alpha) so fp16 attention logits stay bounded.
    """

    def __init__(self, dim: int, alpha_init: float = 0.1) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.alpha = nn.Parameter(torch.full((dim,), alpha_init))

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 3, 1, 2)
        low = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        high = torch.tanh(self.dwconv(x - low)).permute(0, 2, 3, 1)
        return high * self.alpha.to(high.dtype)


class NexusBlock(nn.Module):
    """One NEXUS block on channels-last features x: (B, H, W, C) -> (B, H, W, C)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        *,
        shift: int,
        mlp_ratio: float,
        drop_path: float,
        use_freq: bool,
        qkv_bias: bool,
        cab_compress: int,
        se_reduction: int,
        layer_scale_init: float,
    ) -> None:
        super().__init__()
        self.shift = shift
        self.drop_path_rate = drop_path
        self.register_buffer("shift_buf", _int_buffer(shift))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias=qkv_bias)
        self.chan_attn = WindowChannelAttention(dim, num_heads, window_size)
        # per-channel logits of the spatial/channel fusion gates; zeros = equal mix at start
        self.fuse_logits = nn.Parameter(torch.zeros(2, dim))
        self.freq = FrequencyModulation(dim) if use_freq else None
        self.cab = EfficientChannelAttention(dim, cab_compress, se_reduction)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(2, 2 * round(dim * mlp_ratio / 2))
        self.ffn = GatedFFN(dim, hidden)
        self.ls_attn = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.ls_cab = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.ls_ffn = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        qkv = self.attn.qkv(y)
        mod = self.freq(y) if self.freq is not None else None
        spatial = self.attn.attend(qkv, self.shift, mod, project=False)
        channel = self.chan_attn(qkv)
        gates = torch.softmax(self.fuse_logits.float(), dim=0).to(spatial.dtype)
        mixed = self.attn.proj(gates[0] * spatial + gates[1] * channel)
        cab = self.cab(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        branch = self.ls_attn * mixed + self.ls_cab * cab
        x = x + drop_path(branch, self.drop_path_rate, self.training)
        ffn = self.ls_ffn * self.ffn(self.norm2(x))
        return x + drop_path(ffn, self.drop_path_rate, self.training)


class ResidualGroup(nn.Module):
    """Blocks whose outputs are summed with softmax(agg_logits) weights, a conv, a residual.

    x: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, dim: int, blocks: list[NexusBlock], resi_connection: ResiConnection) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.agg_logits = nn.Parameter(torch.zeros(len(blocks)))
        if resi_connection == "1conv":
            self.conv: nn.Module = nn.Conv2d(dim, dim, 3, padding=1)
        elif resi_connection == "3conv":
            quarter = max(1, dim // 4)
            self.conv = nn.Sequential(
                nn.Conv2d(dim, quarter, 3, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(quarter, quarter, 1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(quarter, dim, 3, padding=1),
            )
        else:
            raise ValueError(f"resi_connection must be '1conv' or '3conv', not {resi_connection!r}")

    def forward(self, x: Tensor) -> Tensor:
        weights = torch.softmax(self.agg_logits.float(), dim=0)
        y = x
        agg = torch.zeros_like(x)
        for w, block in zip(weights, self.blocks):
            y = block(y)
            agg = agg + w.to(y.dtype) * y  # running sum: no list of outputs, no concatenation
        out = self.conv(agg.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + out


class _PixelShuffleUpsample(nn.Sequential):
    """conv(F, r^2 F) + PixelShuffle(r) per step, as in HAT/SwinIR."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        for r in _upsample_steps(scale):
            layers += [nn.Conv2d(num_feat, r * r * num_feat, 3, padding=1), nn.PixelShuffle(r)]
        super().__init__(*layers)


# --- the model ---------------------------------------------------------------------------------


class NEXUS(nn.Module):
    """The NEXUS super-resolution network.

    forward: x (B, in_chans, H, W) in [0, 1], any H, W >= 1 -> (B, out_chans, H*scale, W*scale).
    ``num_heads`` is one int or one per residual group.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_chans: int = 3,
        out_chans: int | None = None,
        embed_dim: int = 256,
        depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
        num_heads: int | Sequence[int] = 8,
        window_size: int = 16,
        mlp_ratio: float = 3.0,
        upsampler: Upsampler = "pixelshuffle",
        resi_connection: ResiConnection = "1conv",
        drop_path_rate: float = 0.1,
        use_freq: bool = True,
        qkv_bias: bool = True,
        cab_compress: int = 3,
        se_reduction: int = 16,
        layer_scale_init: float = 1e-2,
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        out_chans = in_chans if out_chans is None else out_chans
        for name, chans in (("in_chans", in_chans), ("out_chans", out_chans)):
            if chans not in (1, 3, 4):
                raise ValueError(f"{name} must be 1, 3 or 4, not {chans}")
        if upsampler not in UPSAMPLER_CODES:
            raise ValueError(f"upsampler must be one of {list(UPSAMPLER_CODES)}, not {upsampler!r}")
        steps = _upsample_steps(scale)
        depths = tuple(int(d) for d in depths)
        heads = (num_heads,) * len(depths) if isinstance(num_heads, int) else tuple(num_heads)
        if len(heads) != len(depths):
            raise ValueError(f"num_heads has {len(heads)} entries for {len(depths)} groups")
        self.scale = scale
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.window_size = window_size
        self.upsampler = upsampler
        self.register_buffer("scale_buf", _int_buffer(scale))
        self.register_buffer("upsampler_buf", _int_buffer(UPSAMPLER_CODES[upsampler]))
        self.register_buffer("use_freq_buf", _int_buffer(use_freq))
        self.register_buffer("window_size_buf", _int_buffer(window_size))
        self.register_buffer("nexus_version_buf", _int_buffer(NEXUS_VERSION))

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, padding=1)
        total = sum(depths)
        # stochastic depth grows linearly with depth (plain floats: works on the meta device)
        rates = [drop_path_rate * i / max(1, total - 1) for i in range(total)]
        groups = []
        for gi, (depth, nh) in enumerate(zip(depths, heads)):
            first = sum(depths[:gi])
            blocks = [
                NexusBlock(
                    embed_dim,
                    nh,
                    window_size,
                    shift=0 if j % 2 == 0 else window_size // 2,
                    mlp_ratio=mlp_ratio,
                    drop_path=rates[first + j],
                    use_freq=use_freq,
                    qkv_bias=qkv_bias,
                    cab_compress=cab_compress,
                    se_reduction=se_reduction,
                    layer_scale_init=layer_scale_init,
                )
                for j in range(depth)
            ]
            groups.append(ResidualGroup(embed_dim, blocks, resi_connection))
        self.layers = nn.ModuleList(groups)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)

        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)
            )
            self.upsample = _PixelShuffleUpsample(scale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, out_chans, 3, padding=1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                nn.Conv2d(embed_dim, out_chans * scale * scale, 3, padding=1),
                nn.PixelShuffle(scale),
            )
            # an identity-sized last conv keeps ``conv_last`` (out_chans) present in every form
            self.conv_last = nn.Conv2d(out_chans, out_chans, 1)
        else:  # nearest+conv
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)
            )
            self.up_factors = steps
            for k in range(len(steps)):
                self.add_module(f"conv_up{k + 1}", nn.Conv2d(num_feat, num_feat, 3, padding=1))
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
            self.conv_last = nn.Conv2d(num_feat, out_chans, 3, padding=1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    #: Input pixels replicated on every side before the stem, in eval mode. The 3x3 convs
    #: zero-pad, and on flat image borders that showed as off pixels along the edges (up to
    #: 25/255 in the corners of a flat light-grey image with the shipped nexus-x2); four
    #: replicated pixels bring that under 1/255 and leave Set5 PSNR unchanged. Training skips it:
    #: on 32-pixel crops it would cost 56% more per step, and nobody looks at a crop's edges.
    #: Not a hyperparameter: nothing in the state dict depends on it.
    BORDER = 4

    def _pad(self, x: Tensor, border: int) -> Tensor:
        """Replicate ``border`` pixels on every side of (B, C, H, W), then pad the bottom/right
        (replicating too) to a multiple of the window.

        Always pads and always replicates: no branch on the size, so an exported graph stays
        valid for every input size, 1x1 included (reflect would need the pad to be smaller
        than the side).
        """
        win = self.window_size
        b = border
        h, w = x.shape[-2] + 2 * b, x.shape[-1] + 2 * b
        return F.pad(
            x, (b, b + (win - w % win) % win, b, b + (win - h % win) % win), mode="replicate"
        )

    def forward_features(self, x: Tensor) -> Tensor:
        """x: (B, E, H, W) with H, W multiples of the window -> (B, E, H, W)."""
        y = x.permute(0, 2, 3, 1)
        for group in self.layers:
            y = group(y)
        return self.norm(y).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, in_chans, H, W) -> (B, out_chans, H * scale, W * scale)."""
        h, w = x.shape[-2:]
        border = 0 if self.training else self.BORDER
        feat = self.conv_first(self._pad(x, border))
        feat = self.conv_after_body(self.forward_features(feat)) + feat
        if self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(feat)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.conv_last(self.upsample(feat))
        else:
            out = self.conv_before_upsample(feat)
            for k, r in enumerate(self.up_factors):
                conv = getattr(self, f"conv_up{k + 1}")
                out = F.leaky_relu(conv(F.interpolate(out, scale_factor=r, mode="nearest")), 0.2)
            out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.2))
        top = border * self.scale
        return out[..., top : top + h * self.scale, top : top + w * self.scale]


# --- variants ----------------------------------------------------------------------------------


def _build(defaults: dict[str, Any], scale: int, overrides: dict[str, Any]) -> NEXUS:
    return NEXUS(**{**defaults, "scale": scale, **overrides})


def nexus_tiny(scale: int = 4, **overrides: Any) -> NEXUS:
    """embed_dim 128, depths (6,)*4, 4 heads; the seed estimates ~8M parameters."""
    return _build(dict(embed_dim=128, depths=(6,) * 4, num_heads=4), scale, overrides)


def nexus_small(scale: int = 4, **overrides: Any) -> NEXUS:
    """embed_dim 180, depths (6,)*6, 6 heads; the seed estimates ~15M parameters."""
    return _build(dict(embed_dim=180, depths=(6,) * 6, num_heads=6), scale, overrides)


def nexus_medium(scale: int = 4, **overrides: Any) -> NEXUS:
    """embed_dim 256, depths (6,)*6, 8 heads; the seed estimates ~25M parameters."""
    return _build(dict(embed_dim=256, depths=(6,) * 6, num_heads=8), scale, overrides)


def nexus_large(scale: int = 4, **overrides: Any) -> NEXUS:
    """embed_dim 256, depths (6,)*12, 8 heads; the seed estimates ~45M parameters."""
    return _build(dict(embed_dim=256, depths=(6,) * 12, num_heads=8), scale, overrides)


def nexus_extreme(scale: int = 4, **overrides: Any) -> NEXUS:
    """embed_dim 320, depths (6,)*14, 10 heads; the seed estimates ~70M parameters."""
    return _build(dict(embed_dim=320, depths=(6,) * 14, num_heads=10), scale, overrides)
