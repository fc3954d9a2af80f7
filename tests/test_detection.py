"""Our spandrel detectors: every variant and random configurations round-trip through files,
ComfyUI's way of loading works, and spandrel's own architectures are not disturbed."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import random
import warnings
from collections.abc import Iterator
from unittest import mock

import pytest
import spandrel
import torch
from nexus_upscaler.core import InconsistentCheckpointError, load_model, save_model
from nexus_upscaler.core.archs import hyresr, nexus
from nexus_upscaler.core.detection import (
    ARCHITECTURES,
    HyReSRArch,
    NEXUSArch,
    register_with_spandrel,
    variant_of,
)
from nexus_upscaler.core.loading import read_metadata
from safetensors.torch import load_file
from torch import nn

OUR_IDS = {"NEXUS", "HyReSR"}
NEXUS_VARIANTS = ["nexus_tiny", "nexus_small", "nexus_medium", "nexus_large", "nexus_extreme"]
HYRESR_VARIANTS = ["hyresr_tiny", "hyresr_base", "hyresr_sr_heavy", "hyresr_restoration_heavy"]


@contextlib.contextmanager
def no_weight_init() -> Iterator[None]:
    """Build big models fast: weights stay uninitialized (shapes and int buffers are real)."""
    names = ["trunc_normal_", "normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_",
             "zeros_", "ones_", "constant_", "xavier_uniform_", "xavier_normal_", "orthogonal_"]  # fmt: skip
    with contextlib.ExitStack() as stack:
        for n in names:
            stack.enter_context(mock.patch.object(nn.init, n, lambda t, *a, **k: t))
        for cls in (
            nn.Linear,
            nn.Conv1d,
            nn.Conv2d,
            nn.ConvTranspose2d,
            nn.LayerNorm,
            nn.Embedding,
        ):
            stack.enter_context(mock.patch.object(cls, "reset_parameters", lambda self: None))
        yield


def _build(name: str, **kwargs) -> nn.Module:
    return (getattr(nexus, name, None) or getattr(hyresr, name))(**kwargs)


def _arch_for(name: str) -> spandrel.Architecture:
    return NEXUSArch() if name.startswith("nexus") else HyReSRArch()


def _shapes(sd) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items()}


def _int_buffers(sd) -> dict[str, int]:
    return {k: int(v) for k, v in sd.items() if v.numel() == 1 and not v.is_floating_point()}


def _load_fresh(path) -> spandrel.ImageModelDescriptor:
    register_with_spandrel()
    return spandrel.ModelLoader().load_from_file(path)


def _assert_same_outputs(a: nn.Module, b: nn.Module, channels: int, size=(13, 11)) -> None:
    x = torch.rand(1, channels, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


# --- every variant -------------------------------------------------------------------------------


# The seed's published sizes (docs of nexus.py and hyresr.py): what each variant must read back as.
SPEC = {
    "nexus_tiny": dict(embed_dim=128, depths=(6,) * 4, num_heads=4, window_size=16),
    "nexus_small": dict(embed_dim=180, depths=(6,) * 6, num_heads=6, window_size=16),
    "nexus_medium": dict(embed_dim=256, depths=(6,) * 6, num_heads=8, window_size=16),
    "nexus_large": dict(embed_dim=256, depths=(6,) * 12, num_heads=8, window_size=16),
    "nexus_extreme": dict(embed_dim=320, depths=(6,) * 14, num_heads=10, window_size=16),
    "hyresr_tiny": dict(base=32, depths=(2, 2, 2), win=4, experts=2, global_mix=False),
    "hyresr_base": dict(base=48, depths=(4, 6, 8), win=8, experts=4, global_mix=True),
    "hyresr_sr_heavy": dict(base=48, high_depth=2, overlap=True, scale=4),
    "hyresr_restoration_heavy": dict(
        low_depth=2, plk_kernel=17, fourier=True, moe_every=2, scale=1
    ),
}


@pytest.mark.parametrize("name", NEXUS_VARIANTS + HYRESR_VARIANTS)
def test_default_variant_is_read_back_from_its_state_dict(name):
    with no_weight_init():
        model = _build(name)
    sd = model.state_dict()
    arch = _arch_for(name)
    assert arch.detect(sd)
    cfg = arch.config(sd)
    for key, value in SPEC[name].items():
        assert cfg[key] == value, (name, key)
    # the recovered configuration rebuilds exactly the same tensors and buffers
    cls = type(model)
    with no_weight_init():
        rebuilt = cls(**cfg).state_dict()
    assert _shapes(rebuilt) == _shapes(sd)
    assert _int_buffers(rebuilt) == _int_buffers(sd)
    from nexus_upscaler.core.detection import (  # the variant naming is part of the contract
        _HYRESR_VARIANTS,
        _NEXUS_VARIANTS,
        _variant_name,
    )

    names = _NEXUS_VARIANTS if name.startswith("nexus") else _HYRESR_VARIANTS
    assert _variant_name(names, sd) == name


TINY = {
    "nexus_tiny": dict(embed_dim=16, depths=(2,), num_heads=2, window_size=4),
    "nexus_small": dict(embed_dim=18, depths=(1, 1), num_heads=3, window_size=4),
    "nexus_medium": dict(embed_dim=16, depths=(2,), window_size=4, upsampler="nearest+conv"),
    "nexus_large": dict(embed_dim=16, depths=(1, 1), window_size=4, resi_connection="3conv"),
    "nexus_extreme": dict(embed_dim=20, depths=(2,), window_size=4, use_freq=False),
    "hyresr_tiny": dict(base=8),
    "hyresr_base": dict(base=8, depths=(1, 1, 2), win=4),
    "hyresr_sr_heavy": dict(base=8, depths=(1, 1, 1), win=4),
    "hyresr_restoration_heavy": dict(base=8, depths=(1, 1, 2), win=4),
}


@pytest.mark.parametrize("name", NEXUS_VARIANTS + HYRESR_VARIANTS)
def test_variant_round_trips_through_safetensors_and_spandrel(tmp_path, name):
    torch.manual_seed(0)
    model = _build(name, **TINY[name]).eval()
    path = tmp_path / f"{name}.safetensors"
    meta = save_model(model, path, name=name)
    descriptor = _load_fresh(path)
    assert descriptor.architecture.id in OUR_IDS
    assert descriptor.scale == model.scale
    assert descriptor.purpose == ("Restoration" if model.scale == 1 else "SR")
    assert meta["architecture"] == descriptor.architecture.id
    assert meta["scale"] == str(model.scale)
    arch = _arch_for(name)
    assert arch.config(load_file(path)) == arch.config(model.state_dict())
    _assert_same_outputs(model, descriptor.model, descriptor.input_channels)


def test_variant_name_is_recorded_for_unmodified_variant(tmp_path):
    torch.manual_seed(0)
    model = hyresr.hyresr_tiny(scale=4)
    path = tmp_path / "t.safetensors"
    save_model(model, path)
    assert read_metadata(path)["variant"] == "hyresr_tiny"
    descriptor = load_model(path)
    assert variant_of(descriptor) == "hyresr_tiny"
    assert descriptor.tags[:4] == ["hyresr_tiny", "32base", "2x2x2", "w4"]
    # a changed body is not passed off as a named variant
    save_model(hyresr.hyresr_tiny(base=8), path)
    assert read_metadata(path)["variant"] == "custom"


def test_hyresr_deploy_form_round_trips_and_is_told_apart(tmp_path):
    torch.manual_seed(0)
    model = hyresr.hyresr_tiny(scale=2, base=8, depths=(1, 1, 1)).eval()
    fused = hyresr.reparameterize_model(model)
    path = tmp_path / "deploy.safetensors"
    save_model(fused, path)
    descriptor = _load_fresh(path)
    assert "deploy" in descriptor.tags
    assert HyReSRArch().config(load_file(path))["deploy"] is True
    assert HyReSRArch().config(model.state_dict())["deploy"] is False
    _assert_same_outputs(fused, descriptor.model, 3)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(descriptor.model(x), model(x), atol=1e-4)


# --- random configurations -----------------------------------------------------------------------


def _random_nexus(rng: random.Random) -> dict:
    groups = rng.randint(1, 3)
    heads = [rng.choice([1, 2, 3]) for _ in range(groups)]
    head_dim = rng.choice([2, 4, 6])
    embed = 6 * head_dim if 3 in heads else 4 * head_dim
    return dict(
        scale=rng.choice([1, 2, 3, 4, 8]),
        in_chans=(c := rng.choice([1, 3, 4])),
        out_chans=rng.choice([c, c, 1, 3]),
        embed_dim=embed,
        depths=tuple(rng.randint(1, 3) for _ in range(groups)),
        num_heads=heads[0] if rng.random() < 0.5 else tuple(heads),
        window_size=rng.choice([2, 3, 4, 5, 8]),
        mlp_ratio=rng.choice([1.0, 1.5, 2.0, 2.66, 3.0]),
        upsampler=rng.choice(["pixelshuffle", "pixelshuffledirect", "nearest+conv"]),
        resi_connection=rng.choice(["1conv", "3conv"]),
        use_freq=rng.random() < 0.5,
        qkv_bias=rng.random() < 0.7,
        cab_compress=rng.choice([1, 2, 3, 4]),
        se_reduction=rng.choice([2, 4, 16]),
        num_feat=rng.choice([4, 8]),
    )


def _random_hyresr(rng: random.Random) -> dict:
    base = rng.choice([4, 6, 8])
    return dict(
        in_ch=(c := rng.choice([1, 3, 4])),
        out_ch=rng.choice([c, c, 1, 3]),
        base=base,
        depths=tuple(rng.choice([1, 1, 2]) for _ in range(3)),
        win=rng.choice([2, 4]),
        experts=rng.randint(1, 3),
        scale=rng.choice([1, 2, 3, 4]),
        num_heads=(rng.choice([1, 2]), rng.choice([1, 2, 4]), rng.choice([1, 2, 4])),
        ffn_ratio=rng.choice([1.0, 1.5, 2.0, 2.5]),
        expert_ratio=rng.choice([0.5, 1.0, 1.3]),
        moe_every=rng.choice([0, 1, 1, 2, 3]),
        high_depth=rng.choice([1, 1, 2]),
        low_depth=rng.choice([1, 1, 2]),
        overlap=rng.random() < 0.4,
        overlap_ratio=rng.choice([0.5, 1.0]),
        plk=rng.random() < 0.7,
        plk_kernel=rng.choice([3, 5, 7]),
        fourier=rng.random() < 0.3,
        noise=rng.random() < 0.3,
        global_mix=rng.random() < 0.5,
        upsampler=rng.choice(["pixelshuffle", "dysample"]),
    )


def _expected_nexus(kw: dict) -> dict:
    """What must be read back: the arguments, normalized where two spellings build one model."""
    out = dict(kw)
    heads = kw["num_heads"]
    if not isinstance(heads, int) and len(set(heads)) == 1:
        out["num_heads"] = heads[0]
    # these are only observable through the widths they produce
    dim = kw["embed_dim"]
    out["mlp_ratio"] = max(2, 2 * round(dim * kw["mlp_ratio"] / 2))
    out["cab_compress"] = max(1, dim // kw["cab_compress"])
    out["se_reduction"] = max(1, dim // kw["se_reduction"])
    if kw["upsampler"] == "pixelshuffledirect":
        del out["num_feat"]  # no layer uses it
    return out


def _read_nexus(cfg: dict) -> dict:
    out = dict(cfg)
    dim = cfg["embed_dim"]
    out["mlp_ratio"] = max(2, 2 * round(dim * cfg["mlp_ratio"] / 2))
    out["cab_compress"] = max(1, dim // cfg["cab_compress"])
    out["se_reduction"] = max(1, dim // cfg["se_reduction"])
    if cfg["upsampler"] == "pixelshuffledirect":
        del out["num_feat"]
    del out["drop_path_rate"]
    return out


def _expected_hyresr(kw: dict, deploy: bool) -> dict:
    out = dict(kw, deploy=deploy)
    has_moe = kw["moe_every"] > 0 and any(d >= kw["moe_every"] for d in kw["depths"])
    if not has_moe:
        out["moe_every"] = 0
        for k in ("experts", "expert_ratio"):
            del out[k]
    if kw["overlap"]:  # a ratio is only observable as the enlarged window it builds
        out["overlap_ratio"] = _overlap_size(kw["win"], kw["overlap_ratio"])
    else:
        del out["overlap_ratio"]
    if not kw["plk"]:
        del out["plk_kernel"]
    return out


def _overlap_size(win: int, ratio: float) -> int:
    return win + 2 * max(1, round(win * ratio / 2))


def _read_hyresr(cfg: dict, kw: dict) -> dict:
    out = dict(cfg)
    if out["moe_every"] == 0:
        for k in ("experts", "expert_ratio"):
            del out[k]
    else:
        # Widths are rounded, so a ratio is read back as one that builds the same widths (the
        # strict load into the rebuilt model proves that); only unobserved stages may differ.
        out["expert_ratio"] = kw["expert_ratio"]
    out["ffn_ratio"] = kw["ffn_ratio"]
    if out["overlap"]:
        out["overlap_ratio"] = _overlap_size(out["win"], out["overlap_ratio"])
    else:
        del out["overlap_ratio"]
    if not out["plk"]:
        del out["plk_kernel"]
    return out


@pytest.mark.parametrize("seed", range(30))
def test_random_nexus_configuration_round_trips(tmp_path, seed):
    rng = random.Random(seed)
    kw = _random_nexus(rng)
    torch.manual_seed(seed)
    model = nexus.NEXUS(**kw).eval()
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    descriptor = _load_fresh(path)
    assert descriptor.architecture.id == "NEXUS"
    assert (descriptor.scale, descriptor.input_channels, descriptor.output_channels) == (
        kw["scale"],
        kw["in_chans"],
        kw["out_chans"],
    )
    assert _read_nexus(NEXUSArch().config(load_file(path))) == _expected_nexus(kw)
    # the window grid is declared, so tilers (and spandrel's padding) follow it
    assert descriptor.size_requirements.multiple_of == kw["window_size"]
    _assert_same_outputs(model, descriptor.model, kw["in_chans"], size=(7, 9))


@pytest.mark.parametrize("seed", range(30))
def test_random_hyresr_configuration_round_trips(tmp_path, seed):
    rng = random.Random(1000 + seed)
    kw = _random_hyresr(rng)
    deploy = rng.random() < 0.4
    torch.manual_seed(seed)
    model = hyresr.HyReSR(**kw).eval()
    if deploy:
        model = hyresr.reparameterize_model(model)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    descriptor = _load_fresh(path)
    assert descriptor.architecture.id == "HyReSR"
    assert (descriptor.scale, descriptor.input_channels, descriptor.output_channels) == (
        kw["scale"],
        kw["in_ch"],
        kw["out_ch"],
    )
    assert _read_hyresr(HyReSRArch().config(load_file(path)), kw) == _expected_hyresr(kw, deploy)
    whole_image = kw["global_mix"] or kw["fourier"]
    assert (descriptor.tiling == spandrel.ModelTiling.DISCOURAGED) == whole_image
    # two downsamplings, then windows at 1/4 resolution (and an even frequency split)
    assert descriptor.size_requirements.multiple_of == 4 * math.lcm(kw["win"], 2)
    _assert_same_outputs(model, descriptor.model, kw["in_ch"], size=(5, 6))


# --- precision -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: nexus.nexus_tiny(scale=2, embed_dim=16, depths=(2,), num_heads=2, window_size=4),
        lambda: hyresr.hyresr_tiny(
            scale=3,
            base=4,
            depths=(1, 1, 1),
            upsampler="dysample",
            global_mix=True,
            fourier=True,
            overlap=True,
        ),  # fmt: skip
    ],
)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 2e-2), (torch.bfloat16, 6e-2)])
def test_half_and_bfloat16_claims_hold(tmp_path, build, dtype, tol):
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_model(build(), path)
    x = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    reference = load_model(path)(x)
    descriptor = load_model(path, dtype=dtype)  # spandrel refuses dtypes a model does not claim
    assert descriptor.supports_half and descriptor.supports_bfloat16
    out = descriptor(x.to(dtype)).float()
    assert torch.isfinite(out).all()
    assert (out - reference).abs().max().item() < tol


# --- ComfyUI's and chaiNNer's way of loading -----------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_loads_the_way_comfyui_does(tmp_path, suffix):
    torch.manual_seed(0)
    model = nexus.nexus_tiny(scale=2, embed_dim=16, depths=(1,), num_heads=2, window_size=4)
    path = tmp_path / f"4x_ours{suffix}"
    if suffix == ".safetensors":
        save_model(model, path)
        sd = load_file(path)  # comfy.utils.load_torch_file for .safetensors
    else:
        torch.save({"params_ema": model.state_dict()}, path)
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if "params_ema" in sd:  # what ComfyUI's UpscaleModelLoader does
            sd = sd["params_ema"]
    register_with_spandrel()
    descriptor = spandrel.ModelLoader().load_from_state_dict(sd).eval()
    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    assert descriptor.architecture.id == "NEXUS"
    x = torch.rand(1, 3, 8, 12)  # on the declared window grid: spandrel adds no padding
    with torch.no_grad():
        assert torch.equal(descriptor(x), model.eval()(x).clamp(0, 1))
        # off the grid spandrel reflect-pads to it, as the engine does, and crops
        assert descriptor(x[..., :7, :9]).shape == (1, 3, 14, 18)


def test_registering_is_idempotent_and_defers_to_another_copy():
    register_with_spandrel()
    before = len(spandrel.MAIN_REGISTRY)
    register_with_spandrel()
    assert len(spandrel.MAIN_REGISTRY) == before
    assert all(a.id in spandrel.MAIN_REGISTRY for a in ARCHITECTURES)

    # another copy of the package (e.g. a second custom-node folder) registered first
    registry = spandrel.ArchRegistry()
    other = NEXUSArch()
    registry.add(spandrel.ArchSupport.from_architecture(other))
    register_with_spandrel(registry)
    register_with_spandrel(registry)
    assert registry["NEXUS"].architecture is other
    assert "HyReSR" in registry and len(registry) == 2


# --- no interference with spandrel's own architectures -------------------------------------------

# Built with default arguments unless listed here (small arguments where the defaults are
# required or slow); architectures whose default build takes seconds are left out.
_SPANDREL_KWARGS = {
    "SPAN": dict(num_in_ch=3, num_out_ch=3),
    "SAFMN": dict(dim=36),
    "SAFMNBCIE": dict(dim=36),
    "SwinIR": dict(img_size=32, window_size=8, embed_dim=24, depths=(2, 2), num_heads=(2, 2)),
    "Swin2SR": dict(img_size=32, window_size=8, embed_dim=24, depths=(2, 2), num_heads=(2, 2)),
    "HAT": dict(img_size=32, embed_dim=24, depths=(2, 2), num_heads=(2, 2)),
    "DAT": dict(embed_dim=24, depth=(2, 2), num_heads=(2, 2), split_size=(2, 4)),
    "PLKSR": dict(dim=16, n_blocks=2),
}
_SLOW = {"ATD", "AuraSR", "DRCT", "GRL", "MoESR", "GFPGAN", "IPT", "FDAT", "MMRealSR"}


def _spandrel_state_dicts() -> Iterator[tuple[str, dict]]:
    import spandrel.architectures as pkg

    for arch in sorted(os.listdir(os.path.dirname(pkg.__file__))):
        if arch.startswith("_") or arch in _SLOW or arch.endswith(".py"):
            continue
        module = importlib.import_module(f"spandrel.architectures.{arch}")
        for name in module.__all__:
            cls = getattr(module, name)
            if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                continue
            try:
                with no_weight_init(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sd = cls(**_SPANDREL_KWARGS.get(name, {})).state_dict()
            except TypeError:  # needs arguments we did not list
                continue
            yield f"{arch}.{name}", sd


def _detected(registry: spandrel.ArchRegistry, sd) -> str | None:
    sd = spandrel.canonicalize_state_dict(sd)
    return next(
        (a.architecture.id for a in registry.architectures("detection") if a.detect(sd)), None
    )


def test_registering_changes_no_detection_of_spandrel_architectures():
    clean = spandrel.ArchRegistry()
    clean.add(
        *(a for a in spandrel.MAIN_REGISTRY.architectures() if a.architecture.id not in OUR_IDS)
    )
    ours = clean.copy()
    register_with_spandrel(ours)
    checked = []
    for name, sd in _spandrel_state_dicts():
        assert _detected(ours, sd) == _detected(clean, sd), name
        assert not any(a.detect(sd) for a in ARCHITECTURES), name
        checked.append(name)
    assert len(checked) >= 30, checked  # the comparison covered most of spandrel's zoo


def test_no_spandrel_detector_claims_our_checkpoints():
    theirs = [a for a in spandrel.MAIN_REGISTRY.architectures() if a.architecture.id not in OUR_IDS]
    rng = random.Random(7)
    state_dicts = []
    for name in NEXUS_VARIANTS + HYRESR_VARIANTS:
        with no_weight_init():
            state_dicts.append((name, _build(name).state_dict()))
    with no_weight_init():
        state_dicts += [
            ("nexus random", nexus.NEXUS(**_random_nexus(rng)).state_dict()) for _ in range(5)
        ]
        state_dicts += [
            ("hyresr random", hyresr.HyReSR(**_random_hyresr(rng)).state_dict()) for _ in range(5)
        ]
        state_dicts.append(
            ("hyresr deploy", hyresr.reparameterize_model(hyresr.hyresr_tiny()).state_dict())
        )
    for name, sd in state_dicts:
        claimed = [a.architecture.id for a in theirs if a.detect(sd)]
        assert not claimed, (name, claimed)
        assert sum(a.detect(sd) for a in ARCHITECTURES) == 1, name


# --- contradictions ------------------------------------------------------------------------------


def _tiny_nexus_sd() -> dict:
    torch.manual_seed(0)
    m = nexus.nexus_tiny(scale=2, embed_dim=16, depths=(2, 2), num_heads=2, window_size=4)
    return dict(m.state_dict())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda sd: sd.__setitem__("layers.0.blocks.1.shift_buf", torch.tensor(0)), "shift_buf"),
        (lambda sd: sd.__setitem__("upsampler_buf", torch.tensor(1)), "upsampler_buf"),
        (lambda sd: sd.__setitem__("use_freq_buf", torch.tensor(0)), "freq"),
        (
            lambda sd: sd.__setitem__("layers.1.blocks.1.attn.num_heads_buf", torch.tensor(4)),
            "head",
        ),
        (lambda sd: sd.__setitem__("conv_first.weight", torch.zeros(24, 3, 3, 3)), "NEXUS"),
        (
            lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("layers.1.blocks.0.")],
            "not consecutive",
        ),
    ],
)
def test_contradictory_nexus_checkpoints_are_refused(tmp_path, edit, message):
    from safetensors.torch import save_file

    sd = _tiny_nexus_sd()
    edit(sd)
    path = tmp_path / "edited.safetensors"
    save_file(sd, path)
    with pytest.raises(InconsistentCheckpointError, match=f"edited.safetensors.*{message}"):
        load_model(path)


def test_mixed_hyresr_forms_are_refused(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = hyresr.hyresr_tiny(base=8)
    sd = dict(model.state_dict())
    fused = hyresr.reparameterize_model(model).state_dict()
    sd["stem.conv_fused.weight"] = fused["stem.conv_fused.weight"]
    path = tmp_path / "mixed.safetensors"
    save_file(sd, path)
    with pytest.raises(InconsistentCheckpointError, match="mixed.safetensors.*deploy form"):
        load_model(path)
