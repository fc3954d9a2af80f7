"""Tests of the NEXUS architecture (core/archs/nexus.py) on tiny CPU configurations."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from nexus_upscaler.core.archs import NEXUS, VARIANTS
from nexus_upscaler.core.archs.nexus import UPSAMPLER_CODES
from torch.utils.flop_counter import (
    FlopCounterMode,
    flop_registry,
    register_flop_formula,
    sdpa_flop,
)

TINY: dict[str, Any] = dict(
    embed_dim=8, depths=(2,), num_heads=2, window_size=8, num_feat=8, drop_path_rate=0.0
)

# The CPU kernel of scaled_dot_product_attention has no FLOP formula in torch; count it like the
# GPU kernels so attention cost is not silently left out.
_CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
if _CPU_SDPA not in flop_registry:
    register_flop_formula(_CPU_SDPA, get_raw=True)(sdpa_flop)  # sdpa_flop is already shape-wrapped


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _read_hparams(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Hyperparameters from a state dict alone, following the table in nexus.py's docstring."""
    groups = sorted({int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k))})
    depths = tuple(
        len({int(m.group(1)) for k in sd if (m := re.match(rf"layers\.{g}\.blocks\.(\d+)\.", k))})
        for g in groups
    )
    embed = sd["conv_first.weight"].shape[0]
    upsampler = {v: k for k, v in UPSAMPLER_CODES.items()}[int(sd["upsampler_buf"])]
    return dict(
        in_chans=sd["conv_first.weight"].shape[1],
        out_chans=sd["conv_last.weight"].shape[0],
        embed_dim=embed,
        depths=depths,
        num_heads=tuple(int(sd[f"layers.{g}.blocks.0.attn.num_heads_buf"]) for g in groups),
        window_size=int(sd["layers.0.blocks.0.attn.window_size_buf"]),
        shifts=tuple(int(sd[f"layers.0.blocks.{j}.shift_buf"]) for j in range(depths[0])),
        mlp_ratio=sd["layers.0.blocks.0.ffn.fc1.weight"].shape[0] / embed,
        scale=int(sd["scale_buf"]),
        upsampler=upsampler,
        use_freq=bool(int(sd["use_freq_buf"])),
        has_freq_keys=any(".freq." in k for k in sd),
        resi_connection="1conv" if "layers.0.conv.weight" in sd else "3conv",
    )


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("chans", [1, 3, 4])
def test_output_shape_for_every_scale_and_channel_count(scale: int, chans: int) -> None:
    model = NEXUS(scale=scale, in_chans=chans, **TINY).eval()
    with torch.no_grad():
        for h, w in ((17, 23), (1, 1), (64, 64)):
            out = model(torch.rand(1, chans, h, w))
            assert out.shape == (1, chans, h * scale, w * scale)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("upsampler", list(UPSAMPLER_CODES))
def test_every_upsampler_at_every_scale(upsampler: str) -> None:
    for scale in (1, 2, 3, 4, 8):
        model = NEXUS(scale=scale, in_chans=4, out_chans=3, upsampler=upsampler, **TINY).eval()
        with torch.no_grad():
            out = model(torch.rand(2, 4, 9, 13))
        assert out.shape == (2, 3, 9 * scale, 13 * scale)


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="scale"):
        NEXUS(scale=5, **TINY)
    with pytest.raises(ValueError, match="in_chans"):
        NEXUS(in_chans=2, **TINY)
    with pytest.raises(ValueError, match="upsampler"):
        NEXUS(upsampler="bicubic", **TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_heads"):
        NEXUS(**{**TINY, "num_heads": (2, 2)})


@pytest.mark.parametrize(
    ("name", "embed_dim", "groups", "heads"),
    [
        ("nexus_tiny", 128, 4, 4),
        ("nexus_small", 180, 6, 6),
        ("nexus_medium", 256, 6, 8),
        ("nexus_large", 256, 12, 8),
        ("nexus_extreme", 320, 14, 10),
    ],
)
def test_every_variant_builds_with_the_seed_configuration(
    name: str, embed_dim: int, groups: int, heads: int
) -> None:
    with torch.device("meta"):
        model = VARIANTS[name]()
    hp = _read_hparams(model.state_dict())
    assert hp["embed_dim"] == embed_dim and hp["depths"] == (6,) * groups
    assert hp["num_heads"] == (heads,) * groups and hp["window_size"] == 16
    assert hp["mlp_ratio"] == 3.0 and hp["scale"] == 4 and hp["upsampler"] == "pixelshuffle"
    assert hp["shifts"] == (0, 8, 0, 8, 0, 8)
    n = _n_params(model)
    print(f"{name}: {n / 1e6:.2f}M parameters")
    if name == "nexus_medium":
        assert 20e6 <= n <= 30e6


def test_variant_sizes_grow_and_overrides_win() -> None:
    with torch.device("meta"):
        sizes = [_n_params(VARIANTS[n]()) for n in VARIANTS if n.startswith("nexus_")]
        model = VARIANTS["nexus_medium"](
            scale=2, embed_dim=64, window_size=8, mlp_ratio=2.0, upsampler="nearest+conv"
        )
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    hp = _read_hparams(model.state_dict())
    assert (hp["scale"], hp["embed_dim"], hp["window_size"], hp["mlp_ratio"]) == (2, 64, 8, 2.0)
    assert hp["upsampler"] == "nearest+conv" and hp["depths"] == (6,) * 6


@pytest.mark.parametrize("seed", range(4))
def test_hyperparameters_round_trip_through_the_state_dict(seed: int) -> None:
    rng = torch.Generator().manual_seed(seed)

    def pick(options: list[Any]) -> Any:
        return options[int(torch.randint(len(options), (1,), generator=rng))]

    cfg: dict[str, Any] = dict(
        scale=pick([1, 2, 3, 4, 8]),
        in_chans=pick([1, 3, 4]),
        out_chans=pick([1, 3, 4]),
        embed_dim=pick([8, 12, 16]),
        depths=pick([(1,), (2, 3), (3, 1, 2)]),
        window_size=pick([4, 8, 16]),
        mlp_ratio=pick([1.0, 2.0, 3.0]),
        upsampler=pick(list(UPSAMPLER_CODES)),
        resi_connection=pick(["1conv", "3conv"]),
        use_freq=pick([True, False]),
    )
    cfg["num_heads"] = tuple(pick([1, 2, 4]) for _ in cfg["depths"])
    with torch.device("meta"):
        hp = _read_hparams(NEXUS(**cfg).state_dict())
    for key in ("scale", "in_chans", "out_chans", "embed_dim", "depths", "window_size"):
        assert hp[key] == cfg[key], key
    for key in ("mlp_ratio", "upsampler", "resi_connection", "use_freq", "num_heads"):
        assert hp[key] == cfg[key], key
    assert hp["has_freq_keys"] == cfg["use_freq"]
    assert hp["shifts"][:2] == (0, cfg["window_size"] // 2)[: cfg["depths"][0]]


def test_alibi_adds_no_parameters() -> None:
    small = NEXUS(**{**TINY, "window_size": 4})
    large = NEXUS(**{**TINY, "window_size": 16})
    # no position tables: the window size changes no parameter, and weights load across sizes
    assert _n_params(small) == _n_params(large)
    assert not any("position" in name or "rpb" in name for name, _ in large.named_parameters())
    params = {k for k, _ in small.named_parameters()}
    missing, unexpected = large.load_state_dict(
        {k: v for k, v in small.state_dict().items() if k in params}, strict=False
    )
    assert not unexpected and all(k.endswith("_buf") for k in missing)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    # se_reduction 1: at 8 channels the default 16 leaves SE one ReLU unit, which can start dead
    # (zero gradient by design of ReLU, not a broken path); real widths have 8-20 units.
    cfg = {**TINY, "depths": (2, 2), "se_reduction": 1}
    model = NEXUS(scale=2, **cfg, resi_connection="3conv", use_freq=True)
    model(torch.rand(2, 3, 12, 20)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_eval_is_deterministic_and_independent_of_batch() -> None:
    torch.manual_seed(0)
    model = NEXUS(scale=2, **{**TINY, "drop_path_rate": 0.5}).eval()
    x = torch.rand(3, 3, 19, 21)
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:2])
    assert torch.equal(a, b)
    assert torch.allclose(a[1:2], single, atol=1e-5)
    model.train()  # stochastic depth only acts in training
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_flops_grow_linearly_with_pixels() -> None:
    model = NEXUS(scale=2, **{**TINY, "depths": (2,)}).eval()

    def flops(side: int) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.rand(1, 3, side, side))
        return counter.get_total_flops()

    # The network runs on the input plus NEXUS.BORDER replicated pixels a side (64 -> 72 here,
    # 128 -> 136: both multiples of the window), so the cost is linear in that padded area.
    small, large = flops(64), flops(128)
    assert small > 0
    assert abs(large / small - (136 / 72) ** 2) < 0.2


def test_bf16_autocast_on_cpu_is_finite_and_close() -> None:
    torch.manual_seed(0)
    model = NEXUS(scale=2, **{**TINY, "depths": (2,)}, use_freq=True).eval()
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1
