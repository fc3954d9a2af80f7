"""Blocks shared by NEXUS and HyReSR-MoE.

Everything here works on channels-last feature maps ``(B, H, W, C)`` unless the docstring says
``(B, C, H, W)``. Window attention uses a 2-D ALiBi bias (no position tables, no parameters), so
any window size works with the same weights; the only state that leaves no weight shape behind
(heads, window size) is kept in tiny persistent integer buffers so that a detector can read it
back from a state dict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A large finite negative number instead of -inf: exp() of it is exactly 0 in fp32/bf16/fp16,
# and it never produces NaN (-inf - -inf) in kernels that subtract the row maximum.
MASK_VALUE = -1.0e4

# At most this many (shift, device, dtype) entries are cached per attention module.
_CACHE_LIMIT = 8


# --- helpers -----------------------------------------------------------------------------------


def window_partition(x: Tensor, win: int) -> Tensor:
    """Split a feature map into non-overlapping windows.

    x: (B, H, W, C) with H and W multiples of ``win``  ->  (B * nW, win * win, C), windows in
    row-major order (all windows of image 0 first).
    """
    b, h, w, c = x.shape
    x = x.view(b, h // win, win, w // win, win, c)
    # explicit sizes instead of -1: torch.export can then follow symbolic (dynamic) shapes
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b * (h // win) * (w // win), win * win, c)


def window_reverse(windows: Tensor, win: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, win * win, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // win) * (w // win))
    x = windows.view(b, h // win, w // win, win, win, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def alibi_slopes(num_heads: int) -> Tensor:
    """Geometric ALiBi slopes ``2^(-8 i / h)`` for ``i = 1..h``: (num_heads,) float32."""
    i = torch.arange(1, num_heads + 1, dtype=torch.float64)
    return torch.pow(2.0, -8.0 * i / num_heads).to(torch.float32)


def alibi_bias_2d(num_heads: int, win: int) -> Tensor:
    """2-D ALiBi bias of one window: (num_heads, win*win, win*win) float32.

    ``bias[h, q, k] = -slope_h * ||pos(q) - pos(k)||`` with the Euclidean distance between the
    (row, col) positions of query and key inside the window.
    """
    coords = torch.stack(
        torch.meshgrid(torch.arange(win), torch.arange(win), indexing="ij"), dim=-1
    ).reshape(-1, 2)
    # written out rather than torch.cdist, which has no ONNX translation
    diff = (coords[:, None, :] - coords[None, :, :]).double()
    dist = diff.pow(2).sum(-1).sqrt()  # (N, N)
    return (-alibi_slopes(num_heads).double()[:, None, None] * dist).float()


def shift_window_masks(win: int, shift: int) -> Tensor:
    """Masks of the shifted-window scheme (Swin), one per window class: (4, N, N) float32.

    After a cyclic roll by ``-shift``, only windows in the last row and/or last column hold pixels
    that were not neighbours in the image. Class 0 = interior (nothing masked), 1 = last column,
    2 = last row, 3 = bottom-right corner. Entry ``[k, q, j]`` is ``MASK_VALUE`` where query ``q``
    and key ``j`` come from different regions, else 0. The masks depend only on (win, shift),
    not on the image size.
    """
    # Region label of every position along one axis of a boundary window: the first win-shift
    # positions come from the image's end, the last shift positions wrapped around from its start.
    edge = (torch.arange(win) >= win - shift).long()
    zero = torch.zeros(win, dtype=torch.long)
    masks = []
    for row_lab, col_lab in ((zero, zero), (zero, edge), (edge, zero), (edge, edge)):
        label = (row_lab[:, None] * 2 + col_lab[None, :]).reshape(-1)
        differ = label[:, None] != label[None, :]
        masks.append(differ.float() * MASK_VALUE)
    return torch.stack(masks)


# --- blocks ------------------------------------------------------------------------------------


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        x = x.permute(0, 2, 3, 1)
        # the weight's shape, not the input's: TorchScript tracing keeps it a constant
        x = F.layer_norm(x, (self.weight.shape[0],), self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (shifted) square windows with a 2-D ALiBi bias.

    The bias and the shift mask go into ``scaled_dot_product_attention`` as one additive mask, so
    fused kernels can be used. All windows of one class (interior, last column, last row, corner)
    run in one batched call; there is no loop over windows. Masks are built once per
    (shift, device, dtype) and kept in a plain dict on the module (not in the state dict).

    State-dict keys: ``qkv.weight (3C, C)``, ``qkv.bias`` (if qkv_bias), ``proj.weight (C, C)``,
    ``proj.bias``, and the int64 scalar buffers ``num_heads_buf`` and ``window_size_buf``.
    """

    def __init__(
        self, dim: int, num_heads: int, window_size: int, *, qkv_bias: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # ALiBi has no weights, so heads and window size would otherwise be unreadable. On the
        # CPU even under ``torch.device("meta")``, so they stay readable on a meta-built model.
        for name, value in (("num_heads_buf", num_heads), ("window_size_buf", window_size)):
            self.register_buffer(name, torch.tensor(value, dtype=torch.int64, device="cpu"))
        self._mask_cache: dict[tuple[int, str, torch.dtype], Tensor] = {}

    def _masks(self, shift: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Additive masks (ALiBi + shift), (4, 1, heads, N, N) for shift > 0, else (1, 1, heads, N, N)."""
        key = (shift, str(device), dtype)
        mask = self._mask_cache.get(key)
        if mask is None:
            bias = alibi_bias_2d(self.num_heads, self.window_size)  # (h, N, N)
            if shift > 0:
                shift_masks = shift_window_masks(self.window_size, shift)  # (4, N, N)
                mask = bias[None] + shift_masks[:, None]  # (4, h, N, N)
            else:
                mask = bias[None]
            mask = mask[:, None].to(device=device, dtype=dtype)
            if len(self._mask_cache) >= _CACHE_LIMIT:
                self._mask_cache.clear()
            self._mask_cache[key] = mask
        return mask

    def _attend(self, qkv: Tensor, mask: Tensor) -> Tensor:
        """qkv: (B', N, 3C) windows; mask: (1, heads, N, N) -> (B', N, C)."""
        bw, n, _ = qkv.shape
        h = self.num_heads
        q, k, v = qkv.view(bw, n, 3, h, self.dim // h).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B', h, N, d)
        return out.transpose(1, 2).reshape(bw, n, self.dim)

    def forward(self, x: Tensor, shift: int = 0, qk_scale_mod: Tensor | None = None) -> Tensor:
        """x: (B, H, W, C), H and W multiples of window_size -> (B, H, W, C).

        shift: cyclic shift in pixels (0 = plain windows), 0 <= shift < window_size.
        qk_scale_mod: optional (B, H, W, C); queries and keys are multiplied by (1 + mod).
        """
        return self.attend(self.qkv(x), shift, qk_scale_mod)

    def attend(
        self,
        qkv: Tensor,
        shift: int = 0,
        qk_scale_mod: Tensor | None = None,
        *,
        project: bool = True,
    ) -> Tensor:
        """Attention from already projected tokens.

        qkv: (B, H, W, 3C), the output of ``self.qkv``; lets a caller share the projections with
        another attention path. With ``project=False`` the output projection ``self.proj`` is
        left to the caller (who may mix in another path first). Otherwise the same arguments and
        result as :meth:`forward`.
        """
        b, hgt, wid, c3 = qkv.shape
        c = c3 // 3
        win = self.window_size
        if hgt % win or wid % win:
            raise ValueError(f"feature size {hgt}x{wid} is not a multiple of window {win}")
        if not 0 <= shift < win:
            raise ValueError(f"shift {shift} must be in [0, {win})")
        if qk_scale_mod is not None:
            gain = 1.0 + qk_scale_mod.to(qkv.dtype)
            q, k, v = qkv.chunk(3, dim=-1)
            qkv = torch.cat((q * gain, k * gain, v), dim=-1)
        if shift:
            qkv = torch.roll(qkv, shifts=(-shift, -shift), dims=(1, 2))
        masks = self._masks(shift, qkv.device, qkv.dtype)
        nh, nw = hgt // win, wid // win
        windows = window_partition(qkv, win).view(b, nh, nw, win * win, 3 * c)
        if not shift:
            out = self._attend(windows.view(b * nh * nw, win * win, 3 * c), masks[0])
            out = out.view(b, nh, nw, win * win, c)
        else:
            # Four window classes, each with its own mask: one batched call per class. A class
            # may be empty (one window row or column); attention on an empty batch is empty.
            # narrow() with explicit lengths keeps sizes symbolic for torch.export.
            spans = ((0, nh - 1), (nh - 1, 1)), ((0, nw - 1), (nw - 1, 1))
            parts = []
            for ri, (r0, rn) in enumerate(spans[0]):
                row_parts = []
                for ci, (c0, cn) in enumerate(spans[1]):
                    sub = windows.narrow(1, r0, rn).narrow(2, c0, cn)
                    res = self._attend(
                        sub.reshape(b * rn * cn, win * win, 3 * c), masks[ri * 2 + ci]
                    )
                    row_parts.append(res.view(b, rn, cn, win * win, c))
                parts.append(torch.cat(row_parts, dim=2))
            out = torch.cat(parts, dim=1)
        if project:
            out = self.proj(out)
        out = window_reverse(out.reshape(b * nh * nw, win * win, c), win, hgt, wid)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, window_size={self.window_size}"


class GatedFFN(nn.Module):
    """Spatial-gated feed-forward network (DAT's SGFN).

    fc1 to ``hidden_dim`` + GELU, then half of the hidden channels, normalized and passed through
    a 3x3 depthwise conv, gates the other half; fc2 maps ``hidden_dim // 2`` back to ``dim``.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        if hidden_dim % 2:
            raise ValueError(f"hidden_dim {hidden_dim} must be even (it is split in two halves)")
        half = hidden_dim // 2
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.gate_norm = nn.LayerNorm(half)
        self.gate_conv = nn.Conv2d(half, half, 3, padding=1, groups=half)
        self.fc2 = nn.Linear(half, dim)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        x = self.act(self.fc1(x))
        x1, x2 = x.chunk(2, dim=-1)
        x2 = self.gate_norm(x2).permute(0, 3, 1, 2)
        x2 = self.gate_conv(x2).permute(0, 2, 3, 1)
        return self.fc2(x1 * x2)


class ChannelAttention(nn.Module):
    """Squeeze-excitation: global average pool, bottleneck MLP, sigmoid gate per channel."""

    def __init__(self, dim: int, reduction: int = 16) -> None:
        super().__init__()
        squeezed = max(1, dim // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Conv2d(dim, squeezed, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, dim, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, C, H, W), each channel scaled by its gate in (0, 1)."""
        return x * self.fc(self.pool(x))


__all__ = [
    "MASK_VALUE",
    "ChannelAttention",
    "GatedFFN",
    "LayerNorm2d",
    "WindowAttention",
    "alibi_bias_2d",
    "alibi_slopes",
    "shift_window_masks",
    "window_partition",
    "window_reverse",
]


def is_tracing() -> bool:
    """True while a graph is being captured (ONNX export, torch.export, torch.compile).

    Caches keyed by Python ints must be bypassed then: H and W are symbolic.
    """
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
