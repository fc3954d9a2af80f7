"""HyReSR-MoE: shapes, MoE dispatch and balance, re-parameterization, noise, FLOPs, state dict."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from nexus_upscaler.core.archs import fourier
from nexus_upscaler.core.archs import hyresr as H
from nexus_upscaler.core.archs.hyresr import (
    HyReSR,
    hyresr_base,
    hyresr_restoration_heavy,
    hyresr_sr_heavy,
    hyresr_tiny,
    reparameterize_model,
)
from torch.utils.flop_counter import FlopCounterMode

VARIANTS = [hyresr_tiny, hyresr_base, hyresr_sr_heavy, hyresr_restoration_heavy]
# Tiny widths and depths so that every variant runs in milliseconds; the variant's own
# structural choices (experts, windows, overlap, fourier, low/high depth...) are kept.
SMALL = dict(base=8, depths=(1, 1, 2), num_heads=(1, 2, 2))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread is faster than two on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so zero-initialized branches are really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


# --- shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_output_shape_any_size(scale: int, channels: int) -> None:
    model = hyresr_tiny(scale=scale, in_ch=channels, out_ch=channels, **SMALL).eval()
    with torch.no_grad():
        for h, w in ((17, 23), (1, 1)):
            y = model(torch.rand(2, channels, h, w))
            assert y.shape == (2, channels, h * scale, w * scale)
            assert torch.isfinite(y).all()


def test_in_out_channels_differ_and_dysample() -> None:
    model = hyresr_tiny(scale=3, in_ch=1, out_ch=3, upsampler="dysample", **SMALL).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 9, 14)).shape == (1, 3, 27, 42)
    with pytest.raises(ValueError):
        hyresr_tiny(upsampler="bicubic")


def test_variant_defaults_and_overrides() -> None:
    base = hyresr_base()
    sd = base.state_dict()
    cfg = read_config(sd)
    assert (cfg["base"], cfg["depths"], cfg["win"], cfg["experts"]) == (48, (4, 6, 8), 8, 4)
    assert cfg["global_mix"] and cfg["scale"] == 2
    tiny = read_config(hyresr_tiny().state_dict())
    assert not tiny["global_mix"] and tiny["experts"] == 2 and tiny["win"] < 8
    # keyword overrides win over the variant's defaults, with the seed's names
    over = read_config(hyresr_tiny(in_ch=1, base=16, depths=(1, 2, 1), win=8, experts=3,
                                   scale=4).state_dict())  # fmt: skip
    assert (over["in_ch"], over["base"], over["depths"], over["win"], over["experts"]) == (
        1, 16, (1, 2, 1), 8, 3,
    )  # fmt: skip
    assert over["scale"] == 4


# --- mixture of experts ------------------------------------------------------------------------


def _moe_model(**kw) -> HyReSR:
    cfg = dict(SMALL, experts=4, global_mix=False)
    cfg.update(kw)
    return hyresr_tiny(scale=1, **cfg)


def test_moe_each_expert_runs_only_on_its_tokens() -> None:
    # seeded: with real dispatch an expert that gets no token does not run at all, so an
    # unlucky random draw would leave one of the four hooks silent
    torch.manual_seed(0)
    model = _randomize(_moe_model()).eval()
    moe = model.moe_layers()[0]
    seen: list[int] = []
    hooks = [e.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
             for e in moe.experts]  # fmt: skip
    with torch.no_grad():
        model(torch.rand(3, 3, 16, 16))
    for hk in hooks:
        hk.remove()
    tokens = 3 * 16 * 16  # enc1 runs at full (padded) resolution: 16 is a multiple of 16
    assert len(seen) == 4 and sum(seen) == tokens  # each token to exactly one expert
    assert max(seen) < tokens  # not every expert on every token


def test_moe_any_batch_size_and_deterministic_eval() -> None:
    model = _randomize(_moe_model()).eval()
    x = torch.rand(3, 3, 12, 20)
    with torch.no_grad():
        full = model(x)
        again = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    assert torch.equal(full, again)
    torch.testing.assert_close(full, single, atol=1e-5, rtol=1e-5)


def test_router_softmax_runs_in_fp32_under_bf16() -> None:
    model = _randomize(_moe_model()).to(torch.bfloat16).eval()
    moe = model.moe_layers()[0]
    captured = {}

    def spy(module, args, out):
        captured["out"] = out

    hook = moe.register_forward_hook(spy)
    probs_dtype = {}
    orig = torch.Tensor.softmax

    def softmax(self, *a, **k):
        probs_dtype.setdefault("dtype", self.dtype)
        return orig(self, *a, **k)

    torch.Tensor.softmax = softmax
    try:
        with torch.no_grad():
            y = model(torch.rand(1, 3, 16, 16, dtype=torch.bfloat16))
    finally:
        torch.Tensor.softmax = orig
        hook.remove()
    assert probs_dtype["dtype"] == torch.float32
    assert y.dtype == torch.bfloat16 and captured["out"].dtype == torch.bfloat16


def test_router_gets_gradient_from_reconstruction_loss() -> None:
    model = _randomize(_moe_model()).train()
    x = torch.rand(2, 3, 16, 16)
    loss = F.l1_loss(model(x), torch.rand_like(x))  # no aux loss: gradient only via the gates
    loss.backward()
    for moe in model.moe_layers():
        assert moe.router.weight.grad is not None
        assert moe.router.weight.grad.abs().sum() > 0


def test_aux_loss_recorded_in_training_only() -> None:
    model = _randomize(_moe_model())
    assert float(model.eval().aux_loss()) == 0.0
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 16))
    assert float(model.aux_loss()) == 0.0  # eval forwards record nothing
    model.train()
    model(torch.rand(1, 3, 16, 16))
    aux = model.aux_loss()
    n_layers = len(model.moe_layers())
    # Switch loss E * sum f_e P_e is >= 1 per layer (1 when perfectly balanced) and <= E.
    assert n_layers * 0.999 <= float(aux.detach()) <= n_layers * 4
    aux.backward()
    assert model.moe_layers()[0].router.weight.grad.abs().sum() > 0


def test_moe_warmup_samples_in_training_but_not_in_eval() -> None:
    model = _randomize(_moe_model())
    model.set_moe_warmup(True)
    x = torch.rand(1, 3, 16, 16)
    model.train()
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x)
        torch.manual_seed(2)
        b = model(x)
    assert not torch.equal(a, b)  # Gumbel sampling of experts
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_balance_loss_keeps_all_four_experts_busy() -> None:
    torch.manual_seed(0)
    model = _moe_model(depths=(1, 1, 1)).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.rand(4, 3, 16, 16)
    target = torch.rand(4, 3, 16, 16)
    for _ in range(50):
        loss = F.l1_loss(model(x), target) + 0.05 * model.aux_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        model(x)
    fractions = model.expert_fractions()
    assert len(fractions) == len(model.moe_layers()) == 5
    for frac in fractions:
        assert frac.shape == (4,) and float(frac.min()) > 0.1, frac


# --- re-parameterization -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_deploy_equals_training_form(variant, scale: int) -> None:
    model = _randomize(variant(scale=scale, **SMALL)).eval()
    deploy = reparameterize_model(model)
    x = torch.rand(1, 3, 13, 19)
    with torch.no_grad():
        ref, out = model(x), deploy(x)
    assert (ref - out).abs().max() < 1e-4
    # the original is untouched (inplace=False), and the forms have distinct keys
    assert not any("conv_fused" in k for k in model.state_dict())
    keys = deploy.state_dict().keys()
    assert any(k.endswith("conv_fused.weight") for k in keys)
    assert not any(re.search(r"conv3x3|conv1x1|conv_large|conv_small", k) for k in keys)


def test_reparameterize_and_copy_right_after_a_training_step() -> None:
    """Fusing (or copying) the model a training loop just stepped works: the MoE's routing
    record of the last training forward holds the autograd graph, which cannot be copied, so a
    copy starts with an empty record while the original keeps its own for aux_loss()."""
    model = _randomize(_moe_model()).train()
    loss = model(torch.rand(2, 3, 16, 16)).mean() + 0.01 * model.aux_loss()
    loss.backward()
    deploy = reparameterize_model(model.eval())
    twin = copy.deepcopy(model)
    assert float(model.aux_loss().detach()) > 0  # the original's record is intact
    assert float(deploy.aux_loss()) == 0.0 and float(twin.aux_loss()) == 0.0
    x = torch.rand(1, 3, 13, 19)
    with torch.no_grad():
        assert (model(x) - deploy(x)).abs().max() < 1e-4
        assert torch.equal(model(x), twin(x))


def test_reparameterize_idempotent_fewer_convs_and_distinct_checkpoints() -> None:
    model = _randomize(hyresr_tiny(scale=2, **SMALL)).eval()
    deploy = reparameterize_model(model)
    again = reparameterize_model(deploy, inplace=True)
    assert again is deploy
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), atol=1e-4, rtol=0)

    def convs(m):
        return sum(isinstance(mod, torch.nn.Conv2d) for mod in m.modules())

    assert convs(deploy) < convs(model)
    # A fused checkpoint loads only into a deploy-form model, never into a training-form one.
    fresh = hyresr_tiny(scale=2, deploy=True, **SMALL).eval()
    fresh.load_state_dict(deploy.state_dict(), strict=True)
    with pytest.raises(RuntimeError):
        hyresr_tiny(scale=2, **SMALL).load_state_dict(deploy.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), atol=1e-4, rtol=0)


# --- noise injection ---------------------------------------------------------------------------


def test_noise_off_by_default_and_never_at_inference_unless_asked() -> None:
    assert not any(isinstance(m, H.NoiseInjection) for m in hyresr_tiny(**SMALL).modules())
    model = _randomize(hyresr_tiny(scale=2, noise=True, **SMALL))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, H.NoiseInjection):
                m.strength.fill_(0.5)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))
        model.eval()
        model.set_noise(at_inference=True)
        assert not torch.equal(model(x), model(x))


# --- cost, state dict, building blocks ---------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda f: f.__name__)
def test_flops_scale_linearly_with_pixels(variant) -> None:
    # On "meta" only shapes are computed, and the attention kernels are counted (the CPU SDPA
    # kernel has no FLOP formula); MoE dispatch there costs the same as a real top-1 routing.
    model = variant(scale=2, **SMALL).eval().to("meta")

    def flops(size: int) -> int:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.empty(1, 3, size, size, device="meta"))
        return counter.get_total_flops()

    assert abs(flops(128) / flops(64) - 4.0) < 0.4


def read_config(sd: dict[str, torch.Tensor]) -> dict:
    """Recover every hyperparameter from a state dict, following hyresr.py's table."""
    keys = list(sd)

    def count(prefix: str) -> int:
        return len({m.group(1) for k in keys if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))})

    deploy = "stem.conv_fused.weight" in sd
    stem = sd["stem.conv_fused.weight" if deploy else "stem.conv3x3.weight"]
    scale = int(sd["head.scale_buf"])
    dysample = "head.offset.weight" in sd
    out_ch = sd["head.to_img.weight"].shape[0] if dysample else (
        sd["head.conv_up.weight"].shape[0] // scale**2)  # fmt: skip
    layer = "enc1.blocks.0.high.layers.0."
    moe_blocks = [int(m.group(1)) for k in keys
                  if (m := re.match(r"\w+\.blocks\.(\d+)\.moe\.router\.weight", k))]  # fmt: skip
    router = next(sd[k] for k in keys if k.endswith("moe.router.weight"))
    plk_key = next((k for k in keys if re.search(r"low\.plk\.conv_(large|fused)\.weight", k)), None)
    return {
        "deploy": deploy,
        "in_ch": stem.shape[1],
        "base": stem.shape[0],
        "out_ch": out_ch,
        "scale": scale,
        "upsampler": "dysample" if dysample else "pixelshuffle",
        "depths": tuple(count(f"{s}.blocks.") for s in ("enc1", "enc2", "mid")),
        "win": int(sd[layer + "attn.window_size_buf"]),
        "num_heads": tuple(
            int(sd[f"{s}.blocks.0.high.layers.0.attn.num_heads_buf"])
            for s in ("enc1", "enc2", "mid")
        ),  # fmt: skip
        "high_depth": count("enc1.blocks.0.high.layers."),
        "low_depth": count("enc1.blocks.0.low.blocks."),
        "experts": router.shape[0],
        "moe_every": min(moe_blocks) + 1 if moe_blocks else None,
        "plk": plk_key is not None,
        "plk_kernel": sd[plk_key].shape[2] if plk_key else None,
        "fourier": "enc1.blocks.0.split.fourier_low.conv1.weight" in sd,
        "noise": "enc1.blocks.0.noise.strength" in sd,
        "global_mix": "mid.blocks.0.mix.qkv.weight" in sd,
        "overlap": any(".high.ocab.q.weight" in k for k in keys),
    }


@pytest.mark.parametrize("seed", range(4))
def test_every_hyperparameter_recoverable_from_state_dict(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)

    def pick(*options):
        return options[int(torch.randint(len(options), (1,), generator=g))]

    cfg = dict(
        in_ch=pick(1, 3, 4), out_ch=pick(1, 3, 4), base=pick(8, 16), scale=pick(1, 2, 3, 4),
        depths=(pick(1, 2), pick(1, 2), pick(2, 3)), win=pick(4, 8), experts=pick(2, 3, 4),
        num_heads=(1, 2, pick(2, 4)), high_depth=pick(1, 2), low_depth=pick(1, 2),
        moe_every=pick(1, 2), plk=pick(True, False), plk_kernel=pick(7, 13),
        fourier=pick(True, False), noise=pick(True, False), global_mix=pick(True, False),
        overlap=pick(True, False), upsampler=pick("pixelshuffle", "dysample"),
    )  # fmt: skip
    model = HyReSR(**cfg)
    for form in (model, reparameterize_model(model)):
        got = read_config(form.state_dict())
        for name, value in cfg.items():
            if name == "plk_kernel" and not cfg["plk"]:
                continue
            assert got[name] == value, name
    assert read_config(reparameterize_model(model).state_dict())["deploy"]
    # shifts alternate and are stored; caches and masks are not in the state dict
    sd = model.state_dict()
    assert int(sd["enc1.blocks.0.high.layers.0.shift_buf"]) == 0
    assert not any(re.search(r"mask|grid|cache|bias_table", k) for k in sd)


def test_masks_and_grids_are_cached_between_calls() -> None:
    model = hyresr_sr_heavy(scale=2, upsampler="dysample", **SMALL).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        model(x)
        ocab = next(m for m in model.modules() if isinstance(m, H.OverlapCrossAttention))
        first_bias = next(iter(ocab._bias_cache.values()))
        first_grid = next(iter(model.head._grid_cache.values()))
        model(x)
    assert next(iter(ocab._bias_cache.values())) is first_bias
    assert next(iter(model.head._grid_cache.values())) is first_grid


def test_overlap_windows_match_unfold() -> None:
    x = torch.randn(2, 16, 24, 5)
    for win, pad in ((8, 2), (4, 4), (8, 1)):
        ow = win + 2 * pad
        ref = F.unfold(x.permute(0, 3, 1, 2), ow, stride=win, padding=pad)
        ref = ref.view(2, 5, ow * ow, -1).permute(0, 3, 2, 1).reshape(-1, ow * ow, 5)
        assert torch.equal(H.overlap_windows(x, win, pad), ref)


@pytest.mark.parametrize(("height", "width"), [(8, 12), (5, 7), (3, 1), (4, 2), (6, 9)])
def test_real_dft_export_path_matches_torch_fft(height: int, width: int) -> None:
    """Odd widths have no Nyquist bin: the last bin counts twice in the inverse."""
    x = torch.randn(2, 3, height, width)
    f = torch.fft.rfft2(x, norm="ortho")
    re_, im_ = fourier.rfft2_real(x)
    torch.testing.assert_close(re_, f.real, atol=1e-5, rtol=0)
    torch.testing.assert_close(im_, f.imag, atol=1e-5, rtol=0)
    y = fourier.irfft2_real(f.real, f.imag, width)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_fourier_model_export_path_equals_eager_at_odd_widths(monkeypatch) -> None:
    """win=6 pads to multiples of 24, so the bottleneck's low stream is 3 px wide."""
    torch.manual_seed(0)
    model = H.hyresr_tiny(win=6, fourier=True, base=8, depths=(1, 1, 1), num_heads=(1, 1, 1))
    for m in model.modules():
        if isinstance(m, fourier.FourierUnit):
            torch.nn.init.normal_(m.conv2.weight, std=0.1)  # zero-initialised: would hide it
    model.eval()
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        eager = model(x)
        monkeypatch.setattr(fourier, "is_tracing", lambda: True)
        exported = model(x)
    torch.testing.assert_close(exported, eager, atol=1e-5, rtol=0)
