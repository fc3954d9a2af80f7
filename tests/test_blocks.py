"""Tests of the blocks shared by both architectures (core/archs/blocks.py)."""

from __future__ import annotations

import math

import pytest
import torch
from nexus_upscaler.core.archs.blocks import (
    ChannelAttention,
    GatedFFN,
    LayerNorm2d,
    WindowAttention,
    alibi_slopes,
    window_partition,
    window_reverse,
)


def _reference_window_attention(attn: WindowAttention, x: torch.Tensor, shift: int) -> torch.Tensor:
    """Pixel-by-pixel attention with explicit positions and regions, written independently."""
    b, h, w, c = x.shape
    win, heads = attn.window_size, attn.num_heads
    d = c // heads
    slopes = [2.0 ** (-8.0 * (i + 1) / heads) for i in range(heads)]
    qkv = attn.qkv(x)
    qkv = torch.roll(qkv, (-shift, -shift), (1, 2))
    # region of each rolled pixel: which side of the image it came from
    row_reg = [0 if r < h - shift else 1 for r in range(h)] if shift else [0] * h
    col_reg = [0 if s < w - shift else 1 for s in range(w)] if shift else [0] * w
    out = torch.zeros(b, h, w, c, dtype=x.dtype)
    for r in range(h):
        for s in range(w):
            keys = [
                (r2, s2)
                for r2 in range(r // win * win, r // win * win + win)
                for s2 in range(s // win * win, s // win * win + win)
                if row_reg[r2] == row_reg[r] and col_reg[s2] == col_reg[s]
            ]
            for hd in range(heads):
                sl = slice(hd * d, (hd + 1) * d)
                q = qkv[:, r, s, sl]
                ks = torch.stack(
                    [qkv[:, r2, s2, c + hd * d : c + (hd + 1) * d] for r2, s2 in keys], 1
                )
                vs = torch.stack(
                    [qkv[:, r2, s2, 2 * c + hd * d : 2 * c + (hd + 1) * d] for r2, s2 in keys], 1
                )
                bias = torch.tensor([-slopes[hd] * math.hypot(r - r2, s - s2) for r2, s2 in keys])
                logits = (ks @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(d) + bias
                out[:, r, s, sl] = (logits.softmax(-1).unsqueeze(-1) * vs).sum(1)
    out = attn.proj(out)
    return torch.roll(out, (shift, shift), (1, 2))


def test_window_partition_round_trip_and_layout() -> None:
    x = torch.randn(2, 8, 12, 5)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 5)
    # window 1 of image 0 is rows 0..3, columns 4..7, in row-major order
    assert torch.equal(windows[1], x[0, 0:4, 4:8].reshape(16, 5))
    assert torch.equal(window_reverse(windows, 4, 8, 12), x)


def test_alibi_slopes_are_geometric() -> None:
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** (-i) for i in range(1, 9)]))
    assert torch.allclose(alibi_slopes(4), torch.tensor([2.0 ** (-2 * i) for i in range(1, 5)]))


def test_alibi_adds_no_parameters() -> None:
    attn = WindowAttention(16, 4, 8)
    n_params = sum(p.numel() for p in attn.parameters())
    assert n_params == 16 * 48 + 48 + 16 * 16 + 16  # qkv and proj only
    # heads and window size are readable from the state dict, masks are not stored in it
    sd = attn.state_dict()
    assert int(sd["num_heads_buf"]) == 4 and int(sd["window_size_buf"]) == 8
    assert set(sd) == {
        "qkv.weight",
        "qkv.bias",
        "proj.weight",
        "proj.bias",
        "num_heads_buf",
        "window_size_buf",
    }


@pytest.mark.parametrize(("shift", "size"), [(0, (8, 8)), (2, (8, 8)), (2, (4, 8)), (1, (4, 4))])
def test_window_attention_matches_direct_computation(shift: int, size: tuple[int, int]) -> None:
    # (4, 8) and (4, 4): one window row and/or column, so some window classes are empty
    torch.manual_seed(0)
    attn = WindowAttention(8, 2, 4).eval()
    x = torch.randn(2, *size, 8)
    with torch.no_grad():
        got = attn(x, shift=shift)
        want = _reference_window_attention(attn, x, shift)
    assert torch.allclose(got, want, atol=1e-5)


def test_shift_mask_blocks_attention_across_wrapped_regions() -> None:
    torch.manual_seed(0)
    attn = WindowAttention(8, 2, 4).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, 0, 0] += 10.0  # after the roll, pixel (0, 0) shares a window with (7, 7) and (0, 1)
    with torch.no_grad():
        a, b = attn(x, shift=2), attn(y, shift=2)
    assert torch.equal(a[0, 7, 7], b[0, 7, 7])  # the far corner must not see the wrapped pixel
    assert not torch.allclose(a[0, 0, 1], b[0, 0, 1])  # a true neighbour does


def test_masks_are_cached_between_calls_and_per_dtype() -> None:
    attn = WindowAttention(8, 2, 4)
    x = torch.randn(1, 8, 8, 8)
    attn(x, shift=2)
    first = dict(attn._mask_cache)
    attn(torch.randn(2, 12, 16, 8), shift=2)  # another size reuses the same masks
    assert len(attn._mask_cache) == 1
    assert all(attn._mask_cache[k] is v for k, v in first.items())
    attn(x.double().float(), shift=0)
    assert len(attn._mask_cache) == 2
    assert "num_heads_buf" in attn.state_dict() and not any("mask" in k for k in attn.state_dict())


def test_qk_modulation_zero_is_identity_and_nonzero_changes_output() -> None:
    torch.manual_seed(0)
    attn = WindowAttention(8, 2, 4).eval()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        plain = attn(x, shift=2)
        zero = attn(x, shift=2, qk_scale_mod=torch.zeros_like(x))
        mod = attn(x, shift=2, qk_scale_mod=torch.rand_like(x))
    assert torch.allclose(plain, zero, atol=1e-6)
    assert not torch.allclose(plain, mod, atol=1e-3)


def test_window_attention_rejects_bad_sizes() -> None:
    attn = WindowAttention(8, 2, 4)
    with pytest.raises(ValueError, match="multiple of window"):
        attn(torch.randn(1, 6, 8, 8))
    with pytest.raises(ValueError, match="shift"):
        attn(torch.randn(1, 8, 8, 8), shift=4)


def test_gated_ffn_and_channel_attention_shapes() -> None:
    ffn = GatedFFN(12, 36)
    assert ffn(torch.randn(2, 5, 7, 12)).shape == (2, 5, 7, 12)
    with pytest.raises(ValueError):
        GatedFFN(12, 35)
    ca = ChannelAttention(32, reduction=16)
    x = torch.randn(2, 32, 5, 7)
    y = ca(x)
    assert y.shape == x.shape
    # a per-channel gate in (0, 1): same sign, never larger
    assert torch.all(y.abs() <= x.abs()) and torch.all(torch.sign(y) == torch.sign(x))


def test_layernorm2d_normalizes_channels() -> None:
    ln = LayerNorm2d(6)
    x = torch.randn(2, 6, 4, 5) * 3 + 1
    y = ln(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 4, 5), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 4, 5), atol=1e-3)
