"""The engine with real spandrel descriptors built from spandrel's own architectures."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from nexus_upscaler.core import engine, loading
from nexus_upscaler.core.archs import hyresr_tiny, nexus_tiny
from nexus_upscaler.core.color import LUMA_WEIGHTS
from nexus_upscaler.core.errors import TileTooSmallError, UpscaleCancelled
from nexus_upscaler.core.tiling import plan_grid
from pictures import sample
from PIL import Image
from safetensors.torch import save_file
from spandrel import ImageModelDescriptor, ModelLoader, ModelTiling
from spandrel.architectures.Compact import Compact
from spandrel.architectures.SPAN import SPAN
from spandrel.architectures.SwinIR import SwinIR


def _load(net: torch.nn.Module, tmp_path_factory, name: str) -> ImageModelDescriptor:
    """Save as safetensors and load back through spandrel, as a user's file would be."""
    path = tmp_path_factory.mktemp("models") / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    desc = ModelLoader().load_from_file(str(path))
    assert isinstance(desc, ImageModelDescriptor)
    return desc


def _compact(tmp_path_factory, scale=4, cin=3, cout=3, feat=16, conv=4, seed=0):
    torch.manual_seed(seed)
    net = Compact(num_in_ch=cin, num_out_ch=cout, num_feat=feat, num_conv=conv, upscale=scale)
    return _load(net, tmp_path_factory, f"compact_x{scale}_{cin}{cout}_{seed}")


@pytest.fixture(scope="module")
def compact4(tmp_path_factory):
    return _compact(tmp_path_factory)


def _ours(tmp_path_factory, name: str, net: torch.nn.Module) -> ImageModelDescriptor:
    """One of our architectures through save_model/load_model, as a shipped file is loaded."""
    path = tmp_path_factory.mktemp("models") / f"{name}.safetensors"
    loading.save_model(net, path)
    return loading.load_model(path)


@pytest.fixture(scope="module")
def nexus_desc(tmp_path_factory):
    """A tiny NEXUS x2 (window 8) with random weights."""
    torch.manual_seed(1)
    net = nexus_tiny(scale=2, embed_dim=16, depths=(1,), num_heads=2, window_size=8, num_feat=16)
    return _ours(tmp_path_factory, "nexus", net)


@pytest.fixture(scope="module")
def hyresr_desc(tmp_path_factory):
    """A tiny HyReSR x2 (window 4, so the U-Net pads to 16) with random, non-trivial weights."""
    torch.manual_seed(2)
    net = hyresr_tiny(scale=2, base=8, depths=(1, 1, 1), num_heads=(1, 1, 1))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma", "conv2.weight")) or "offset" in name:
                p.normal_(0, 0.05)  # zero-initialised branches would hide most of the model
    return _ours(tmp_path_factory, "hyresr", net)


@pytest.fixture(scope="module")
def span_desc(tmp_path_factory):
    """A tiny SPAN x2: it keeps its RGB mean as a plain tensor attribute, replaced in forward."""
    torch.manual_seed(3)
    net = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)
    return _load(net, tmp_path_factory, "span_x2")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A crop of odd size of the committed sample picture, (101, 157, 3) uint8: edges, text and
    fine texture."""
    return sample(101, 157, top=100, left=60)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def whole(desc, image: np.ndarray, **kw) -> np.ndarray:
    """The engine with one tile covering the whole image (the seam-free reference)."""
    return engine.upscale_array(desc, image, engine.UpscaleOptions(tile=4096, **kw))


# --- seams -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tile", "overlap"), [(64, 16), (72, 24), (96, 8), (100, 32)])
def test_tiled_matches_whole_image_for_a_cnn(compact4, photo, tile, overlap):
    ref = whole(compact4, photo)
    calls = []
    opts = engine.UpscaleOptions(tile=tile, overlap=overlap)
    out = engine.upscale_array(compact4, photo, opts, progress=lambda d, n: calls.append((d, n)))
    assert out.shape == (404, 628, 3) and out.dtype == np.uint8
    assert calls[-1][0] == calls[-1][1] > 1  # really tiled
    # 6 layers of 3x3 convs: a receptive field of 6 px, inside the discarded tile edges
    assert psnr(out, ref) > 70


def test_window_transformer_with_size_requirements(tmp_path_factory, photo):
    torch.manual_seed(0)
    net = SwinIR(
        upscale=2,
        in_chans=3,
        img_size=32,
        window_size=8,
        embed_dim=12,
        depths=[1],
        num_heads=[2],
        mlp_ratio=1,
        upsampler="pixelshuffledirect",
    )
    path = tmp_path_factory.mktemp("models") / "swinir.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    desc = loading.load_model(path)
    # SwinIR pads to its window inside forward; our loader declares that grid for it
    assert desc.size_requirements.minimum == 16 and desc.size_requirements.multiple_of == 8
    assert engine.tile_alignment(desc) == 8
    image = photo[:45, :77]
    ref = whole(desc, image)
    out = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=20, overlap=8))
    assert out.shape == ref.shape == (90, 154, 3)
    # tiles are aligned to the windows and padded to the minimum; global attention within a
    # window still differs between tiles, so the bar is lower than for a CNN
    assert psnr(out, ref) > 30
    # a tile below the model's minimum is raised to it
    tiny = engine.upscale_array(desc, image[:13, :9], engine.UpscaleOptions(tile=4, overlap=2))
    assert tiny.shape == (26, 18, 3)


REPO = Path(__file__).resolve().parents[1]


def test_hyresr_tiles_follow_its_grid():
    """hyresr-x4 pads to multiples of 16 (two downsamplings, then 4 px windows): tiles that start
    on that grid see what the whole image sees (59.6 dB; 48.9 dB when the engine ignored it)."""
    desc = loading.load_model(REPO / "weights" / "hyresr-x4.safetensors")
    image = sample(80, 128)
    out = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=64, overlap=16))
    assert psnr(out, whole(desc, image)) > 56


def test_nexus_tiles_follow_its_windows(nexus_desc, photo):
    image = photo[:48, :80]
    out = engine.upscale_array(nexus_desc, image, engine.UpscaleOptions(tile=32, overlap=16))
    assert psnr(out, whole(nexus_desc, image)) > 60


def test_hyresr_runs_its_fused_deploy_form_made_once_per_model(hyresr_desc, photo):
    """Inference runs the deploy form (one conv per re-parameterizable block), fused on a copy
    once per loaded model; the caller's training-form model is left as it is."""
    from nexus_upscaler.core.archs.reparam import inference_form

    image = photo[:24, :40]
    trained = []
    # the 3x3 branch of the stem exists in the training form only (a deep copy keeps hooks)
    hook = hyresr_desc.model.stem.conv3x3.register_forward_hook(lambda *a: trained.append(1))
    try:
        out = engine.upscale_array(hyresr_desc, image, engine.UpscaleOptions(tile=4096))
    finally:
        hook.remove()
    assert trained == []  # the training form never ran
    fused = inference_form(hyresr_desc.model)
    assert inference_form(hyresr_desc.model) is fused  # made once
    assert any(k.endswith("conv_fused.weight") for k in fused.state_dict())
    assert not any(k.endswith("conv_fused.weight") for k in hyresr_desc.model.state_dict())
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        assert (fused(x) - hyresr_desc.model(x)).abs().max() < 1e-4
        ref = hyresr_desc(x)[0].permute(1, 2, 0).numpy()  # training form, padded as declared
    assert np.abs(out.astype(np.float64) - np.rint(ref * 255)).max() <= 1
    # new weights (a training step, a load) make a new fused copy
    with torch.no_grad():
        hyresr_desc.model.stem.conv3x3.bias.add_(0.0)
    assert inference_form(hyresr_desc.model) is not fused


@pytest.mark.parametrize("hint", [ModelTiling.DISCOURAGED, ModelTiling.INTERNAL])
def test_a_model_that_discourages_tiling_gets_the_whole_image(compact4, photo, hint, monkeypatch):
    desc = _wrapped(compact4, compact4.model, tiling=hint)
    image = sample(300, 320)
    seen, notes = [], []
    out = engine.upscale_array(desc, image, engine.UpscaleOptions(), lambda d, n: seen.append(n))
    assert seen == [1] and out.shape == (1200, 1280, 3)
    # where the whole image does not fit, it is tiled, and the user is told why
    monkeypatch.setattr(engine, "_available_memory", lambda device: 200 << 20)
    engine.upscale_array(
        desc, image, engine.UpscaleOptions(), lambda d, n: seen.append(n), None, notes
    )
    assert seen[-1] > 1
    assert len(notes) == 1 and "whole image" in notes[0] and "tiled" in notes[0]


# --- any model: scales and channels ------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 3, 8])
def test_any_scale(tmp_path_factory, photo, scale):
    desc = _compact(tmp_path_factory, scale=scale, feat=8, conv=2)
    image = photo[:37, :53]
    # 4 convs: a receptive field of 4 px, within a quarter of the overlap (the blend band's
    # distance from a tile's edge), where tiling is documented to match a whole-image pass
    out = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=24, overlap=16))
    assert out.shape == (37 * scale, 53 * scale, 3)
    assert psnr(out, whole(desc, image)) > 70


def test_span_model(tmp_path_factory, photo):
    torch.manual_seed(0)
    desc = _load(
        SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2), tmp_path_factory, "span"
    )
    image = photo[:50, :70]
    out = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=32, overlap=12))
    assert out.shape == (100, 140, 3)
    assert psnr(out, whole(desc, image)) > 50


def test_gray_image_with_rgb_model_stays_gray(compact4, photo):
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    out = engine.upscale_array(compact4, gray, engine.UpscaleOptions(tile=48, overlap=16))
    assert out.shape == (gray.shape[0] * 4, gray.shape[1] * 4) and out.dtype == np.uint8
    # same as running the gray replicated to RGB and taking the luma of the result
    rgb = whole(compact4, np.repeat(gray[:, :, None], 3, 2)).astype(np.float64)
    luma = np.rint(rgb @ np.array([0.299, 0.587, 0.114]))
    assert np.abs(out - luma).max() <= 1.5  # the engine takes luma before quantising
    # and a 3-dim (H, W, 1) gray array keeps its channel axis
    assert engine.upscale_array(compact4, gray[:, :, None], engine.UpscaleOptions()).ndim == 3


def test_rgb_image_with_gray_model_runs_each_channel(tmp_path_factory, photo):
    desc = _compact(tmp_path_factory, cin=1, cout=1, feat=8, conv=2)
    image = photo[:40, :60]
    out = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=32, overlap=8))
    assert out.shape == (160, 240, 3)
    for k in range(3):
        plane = engine.upscale_array(
            desc, image[:, :, k], engine.UpscaleOptions(tile=32, overlap=8)
        )
        np.testing.assert_array_equal(out[:, :, k], plane)


@pytest.mark.parametrize("mode", ["model", "resize"])
def test_rgba_alpha_modes(compact4, photo, mode):
    image = photo[:40, :60]
    alpha = np.zeros((40, 60, 1), np.uint8)
    alpha[:, 30:] = 255  # left half transparent, right half opaque
    rgba = np.concatenate([image, alpha], 2)
    opts = engine.UpscaleOptions(tile=32, overlap=8, alpha_mode=mode)
    out = engine.upscale_array(compact4, rgba, opts)
    assert out.shape == (160, 240, 4)
    assert np.abs(out[:, :, :3].astype(int) - whole(compact4, image)).max() <= 1
    a = out[:, :, 3].astype(int)
    if mode == "resize":
        assert (a[:, :110] == 0).all() and (a[:, 130:] == 255).all()
    else:
        gray_alpha = engine.upscale_array(
            compact4, alpha[:, :, 0], engine.UpscaleOptions(tile=32, overlap=8)
        )
        assert np.abs(a - gray_alpha).max() <= 1


def test_16_bit_and_float_images_keep_their_dtype(compact4, photo):
    image = photo[:30, :50]
    ref8 = whole(compact4, image)
    out16 = engine.upscale_array(
        compact4, image.astype(np.uint16) * 257, engine.UpscaleOptions(tile=32, overlap=16)
    )
    assert out16.dtype == np.uint16 and out16.shape == (120, 200, 3)
    assert np.abs(out16 / 257.0 - ref8).max() <= 1.0
    outf = engine.upscale_array(
        compact4, image.astype(np.float32) / 255, engine.UpscaleOptions(tile=32, overlap=16)
    )
    assert outf.dtype == np.float32
    assert np.abs(outf * 255 - ref8).max() <= 1.0


def test_output_is_assembled_in_uint8_without_a_full_size_float_buffer(compact4):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (160, 128, 3), dtype=np.uint8)
    out_bytes = 640 * 512 * 3
    tile_float = (32 * 4) ** 2 * 3 * 4  # one tile's output in float32
    tracemalloc.start()  # numpy's allocations are traced (torch's are not; tiles are small)
    try:
        out = engine.upscale_array(compact4, image, engine.UpscaleOptions(tile=32, overlap=8))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.nbytes == out_bytes
    # the output plus a few tiles' worth of float; a float32 output buffer would add 4x the output
    assert peak < out_bytes + 4 * tile_float < 4 * out_bytes


# --- target scale ------------------------------------------------------------------------------


def test_target_scale_below_model_scale_downscales(compact4, photo):
    image = photo[:40, :64]
    out = engine.upscale_array(
        compact4, image, engine.UpscaleOptions(tile=32, overlap=8, target_scale=2)
    )
    assert out.shape == (80, 128, 3)
    big = torch.from_numpy(whole(compact4, image)).permute(2, 0, 1)[None].float() / 255
    small = torch.nn.functional.interpolate(big, size=(80, 128), mode="bicubic", antialias=True)
    ref = np.rint(small.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255)
    assert psnr(out, ref) > 40


def test_target_scale_above_model_scale_runs_two_passes(compact4, photo):
    image = photo[:20, :24]
    calls = []
    opts = engine.UpscaleOptions(tile=64, overlap=8, target_scale=8)
    out = engine.upscale_array(compact4, image, opts, progress=lambda d, n: calls.append((d, n)))
    assert out.shape == (160, 192, 3)
    assert calls[-1][0] == calls[-1][1] and calls[-1][1] > 2  # both passes' tiles counted
    opts15 = engine.UpscaleOptions(tile=32, overlap=8, target_scale=1.5)
    assert engine.upscale_array(compact4, photo[:41, :63], opts15).shape == (62, 94, 3)


# --- memory, precision ------------------------------------------------------------------------


class _OOMAbove(torch.nn.Module):
    """Wraps a model; raises torch.OutOfMemoryError for inputs larger than ``limit`` pixels
    once ``allowed`` large calls have been made (so the failure comes in the middle of a run)."""

    def __init__(self, inner: torch.nn.Module, limit: int, allowed: int) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit
        self.allowed = allowed
        self.shapes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if max(x.shape[2:]) > self.limit:
            if self.allowed <= 0:
                raise torch.OutOfMemoryError("injected")
            self.allowed -= 1
        self.shapes.append(tuple(x.shape[2:]))
        return self.inner(x)


def _wrapped(
    desc: ImageModelDescriptor,
    module: torch.nn.Module,
    tiling: ModelTiling = ModelTiling.SUPPORTED,
) -> ImageModelDescriptor:
    return ImageModelDescriptor(
        module,
        module.state_dict(),
        architecture=desc.architecture,
        purpose=desc.purpose,
        tags=desc.tags,
        supports_half=True,
        supports_bfloat16=True,
        scale=desc.scale,
        input_channels=desc.input_channels,
        output_channels=desc.output_channels,
        tiling=tiling,
    )


def test_out_of_memory_halves_the_tile_and_keeps_finished_tiles(compact4, photo):
    image = sample(200, 300)
    wrapper = _OOMAbove(compact4.model, limit=64, allowed=2)
    desc = _wrapped(compact4, wrapper)
    calls = []
    opts = engine.UpscaleOptions(tile=128, overlap=16)
    out = engine.upscale_array(desc, image, opts, progress=lambda d, n: calls.append((d, n)))
    big = [s for s in wrapper.shapes if max(s) > 64]
    assert len(big) == 2  # the two tiles done before the failure were not run again
    assert max(max(s) for s in wrapper.shapes[2:]) <= 64  # the rest ran at 64
    assert calls == [(i, calls[0][1]) for i in range(1, calls[0][1] + 1)]
    assert psnr(out, whole(compact4, image)) > 60


def test_out_of_memory_at_the_floor_is_a_clear_error(compact4, photo):
    desc = _wrapped(compact4, _OOMAbove(compact4.model, limit=0, allowed=0))
    with pytest.raises(TileTooSmallError, match="out of memory"):
        engine.upscale_array(desc, photo, engine.UpscaleOptions(tile=256))


class _HalfOverflow(torch.nn.Module):
    """Overflows in float16 (an intermediate above 65504) but is exact in float32."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * 1e5) / 1e5  # Compact's output is linear-ish in scale of input


def test_half_precision_tile_with_inf_is_redone_in_fp32(compact4, photo):
    image = photo[:40, :40]
    desc = _wrapped(compact4, _HalfOverflow(compact4.model))
    fp32 = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=64, precision="fp32"))
    fp16 = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=64, precision="fp16"))
    np.testing.assert_array_equal(fp16, fp32)
    # the caller's model is handed back as it came: fp32 on the CPU
    p = next(desc.model.parameters())
    assert p.dtype == torch.float32 and p.device.type == "cpu"


def _bits(module: torch.nn.Module) -> dict[str, tuple]:
    """Every parameter and buffer: its object, dtype, device, layout and exact bytes."""
    out = {}
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        out[name] = (id(t), t.dtype, t.device, t.stride(), t.detach().cpu().numpy().tobytes())
    return out


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("which", ["compact4", "nexus_desc", "hyresr_desc", "span_desc"])
def test_a_half_precision_run_leaves_the_model_bit_identical(request, photo, which, precision):
    """The app and ComfyUI keep a model loaded: a bf16/fp16 run must not round its weights."""
    desc = request.getfixturevalue(which)
    image = photo[:20, :36]
    before = _bits(desc.model)
    fresh = engine.upscale_array(desc, image, engine.UpscaleOptions(precision="fp32"))
    half = engine.UpscaleOptions(tile=16, overlap=4, precision=precision)
    engine.upscale_array(desc, image, half)
    assert _bits(desc.model) == before
    again = engine.upscale_array(desc, image, engine.UpscaleOptions(precision="fp32"))
    np.testing.assert_array_equal(again, fresh)


def test_a_tile_redone_in_fp32_keeps_the_self_ensemble(compact4, photo):
    image = photo[:24, :32]
    desc = _wrapped(compact4, _HalfOverflow(compact4.model))
    fp32 = engine.upscale_array(desc, image, engine.UpscaleOptions(precision="fp32", tta=True))
    fp16 = engine.upscale_array(desc, image, engine.UpscaleOptions(precision="fp16", tta=True))
    np.testing.assert_array_equal(fp16, fp32)


def test_precision_choice(compact4):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert engine.pick_dtype(compact4, "auto", cpu) == torch.float32
    assert engine.pick_dtype(compact4, "bf16", cpu) == torch.bfloat16
    assert engine.pick_dtype(compact4, "fp16", cuda) == torch.float16
    bf16 = engine.upscale_array(
        compact4, np.zeros((20, 20, 3), np.uint8) + 100, engine.UpscaleOptions(precision="bf16")
    )
    assert bf16.shape == (80, 80, 3)


def test_automatic_tile_is_bounded(compact4):
    tile = engine.choose_tile(compact4, engine.UpscaleOptions(), 2000, 3000)
    assert 64 <= tile <= engine.MAX_AUTO_TILE_CPU
    assert engine.choose_tile(compact4, engine.UpscaleOptions(), 40, 50) <= 64
    assert engine.choose_tile(compact4, engine.UpscaleOptions(tile=200), 2000, 3000) == 200


def test_automatic_cpu_tile_is_the_cap_when_memory_allows(compact4, nexus_desc, monkeypatch):
    """On the CPU smaller tiles are faster per useful pixel up to the cap (see
    MAX_AUTO_TILE_CPU); less memory gives smaller tiles."""
    monkeypatch.setattr(engine, "_available_memory", lambda device: 16 << 30)
    for desc in (compact4, nexus_desc):
        assert engine.choose_tile(desc, engine.UpscaleOptions(), 1152, 1440) == 256
    monkeypatch.setattr(engine, "_available_memory", lambda device: 64 << 20)
    assert engine.choose_tile(compact4, engine.UpscaleOptions(), 1152, 1440) < 256


def test_the_automatic_tile_probes_a_model_once_not_once_per_image(compact4, photo):
    """A batch (or a model kept loaded by the app or ComfyUI) pays the probe forward once."""
    wrapper = _ThreadsSeen(compact4.model)
    desc = _wrapped(compact4, wrapper)
    image = photo[:40, :40]
    engine.upscale_array(desc, image, engine.UpscaleOptions())
    first = len(wrapper.seen)
    wrapper.seen.clear()
    engine.upscale_array(desc, image, engine.UpscaleOptions())
    assert len(wrapper.seen) == first - 1  # the image's one tile, no probe
    wrapper.seen.clear()
    engine.upscale_array(desc, image[:, :, :1], engine.UpscaleOptions())
    assert len(wrapper.seen) == 2  # a gray image runs another way: probed once for it


# --- batching, TTA, progress, cancel, tensors --------------------------------------------------


def test_batched_tiles_equal_single_tiles(compact4, photo):
    one = engine.upscale_array(compact4, photo, engine.UpscaleOptions(tile=48, overlap=16))
    four = engine.upscale_array(
        compact4, photo, engine.UpscaleOptions(tile=48, overlap=16, batch=4)
    )
    assert psnr(one, four) > 90


def test_tta_averages_the_eight_transforms(compact4, photo):
    image = photo[:32, :48]
    out = engine.upscale_array(compact4, image, engine.UpscaleOptions(tile=64, tta=True))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    acc = 0
    with torch.inference_mode():
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(x, k, (2, 3))
                y = compact4.model(t.flip(3) if flip else t)  # raw: the engine clamps the mean
                acc = acc + torch.rot90(y.flip(3) if flip else y, -k, (2, 3))
    ref = np.rint((acc / 8).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255)
    assert np.abs(out - ref).max() <= 1
    assert not np.array_equal(out, whole(compact4, image))


class _ThreadsSeen(torch.nn.Module):
    """Records torch's CPU thread count at each forward."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.inner(x)


def test_threads_set_the_cpu_thread_count_for_the_call_only(compact4, photo):
    wrapper = _ThreadsSeen(compact4.model)
    desc = _wrapped(compact4, wrapper)
    before = torch.get_num_threads()
    want = 2 if before != 2 else 3
    engine.upscale_array(desc, photo[:40, :40], engine.UpscaleOptions(tile=32, threads=want))
    assert wrapper.seen and set(wrapper.seen) == {want}
    assert torch.get_num_threads() == before
    wrapper.seen.clear()
    engine.upscale_array(desc, photo[:40, :40], engine.UpscaleOptions(tile=32))
    assert set(wrapper.seen) == {before}  # None: torch's own choice, untouched
    with pytest.raises(ValueError, match="threads"):
        engine.UpscaleOptions(threads=0)


def test_cancel_before_a_tile_raises(compact4, photo):
    token = engine.CancelToken()
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 2:
            token.cancel()

    with pytest.raises(UpscaleCancelled):
        engine.upscale_array(compact4, photo, engine.UpscaleOptions(tile=48), progress, token)
    assert seen == [1, 2] and token.cancelled


class _Counting(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_progress_moves_and_cancel_acts_between_passes(compact4, photo):
    """With TTA and alpha through the model a tile is 16 forward passes: progress counts each,
    and a cancel takes effect before the next pass, not after the tile."""
    rgba = np.concatenate([photo[:32, :40], np.full((32, 40, 1), 200, np.uint8)], 2)
    counting = _Counting(compact4.model)
    desc = _wrapped(compact4, counting)
    opts = engine.UpscaleOptions(tile=64, tta=True, alpha_mode="model")
    seen = []
    engine.upscale_array(desc, rgba, opts, progress=lambda d, n: seen.append((d, n)))
    assert seen == [(k, 16) for k in range(1, 17)] and counting.calls == 16

    token = engine.CancelToken()
    counting.calls = 0

    def cancel_at_three(done: int, total: int) -> None:
        if done == 3:
            token.cancel()

    with pytest.raises(UpscaleCancelled):
        engine.upscale_array(desc, rgba, opts, progress=cancel_at_three, cancel=token)
    assert counting.calls == 3


def test_progress_with_batched_tiles_is_monotonic_and_complete(compact4, photo):
    seen = []
    opts = engine.UpscaleOptions(tile=48, overlap=16, batch=3, tta=True)
    engine.upscale_array(compact4, photo[:60, :150], opts, progress=lambda d, n: seen.append(d))
    total = 8 * plan_grid(60, 150, 48, 16, 4).count
    assert seen == sorted(set(seen)) and seen[-1] == total and len(seen) > total // 8


def test_upscale_tensor_batch(compact4, photo):
    a = photo[:30, :40]
    b = photo[30:60, 40:80]
    x = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).float() / 255
    # overlap 16: the model's 4 px receptive field stays within a quarter of it, where tiles
    # are documented to match a whole-image pass
    out = engine.upscale_tensor(compact4, x, engine.UpscaleOptions(tile=32, overlap=16))
    assert out.shape == (2, 3, 120, 160) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    for k, img in enumerate((a, b)):
        ref = whole(compact4, img)
        assert np.abs(out[k].permute(1, 2, 0).numpy() * 255 - ref).max() <= 1.0


def test_options_are_validated():
    with pytest.raises(ValueError, match="precision"):
        engine.UpscaleOptions(precision="fp8")
    with pytest.raises(ValueError, match="overlap"):
        engine.UpscaleOptions(overlap=-1)


def test_model_that_cannot_take_channels_last_falls_back_to_plain_layout(tmp_path_factory, photo):
    """Tiles go in channels_last (faster convolutions); a forward that needs the plain layout
    (a .view across channels and rows) still gets a correct result."""
    desc = _compact(tmp_path_factory, scale=2, feat=8, conv=2)
    image = photo[:40, :48]
    plain = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=32, overlap=16))
    forward = desc.model.forward
    layouts = []

    def needs_plain_layout(x):
        layouts.append(x.is_contiguous())
        return forward(x.view(x.shape[0], -1).view(x.shape))  # raises on channels_last strides

    desc.model.forward = needs_plain_layout
    out = engine.upscale_array(desc, image, engine.UpscaleOptions(tile=32, overlap=16))
    assert layouts[0] is False and layouts[-1] is True  # tried channels_last, then fell back
    assert np.array_equal(out, plain)


# --- the same behaviour on our own architectures -------------------------------------------------


@pytest.fixture(params=["compact4", "nexus_desc", "hyresr_desc"])
def any_model(request) -> ImageModelDescriptor:
    """A spandrel CNN, and tiny NEXUS and HyReSR models loaded through our detectors."""
    return request.getfixturevalue(request.param)


def test_every_architecture_tiles_seamlessly(any_model, photo):
    image = photo[:64, :96]
    out = engine.upscale_array(any_model, image, engine.UpscaleOptions(tile=48, overlap=24))
    s = any_model.scale
    assert out.shape == (64 * s, 96 * s, 3) and out.dtype == np.uint8
    # window attention and HyReSR's U-Net see further than a CNN's few pixels
    assert psnr(out, whole(any_model, image)) > 40


def test_every_architecture_keeps_gray_gray_and_alpha(any_model, photo):
    image = photo[:32, :48]
    gray = np.asarray(Image.fromarray(image).convert("L"))
    out = engine.upscale_array(any_model, gray, engine.UpscaleOptions(tile=4096))
    rgb = whole(any_model, np.repeat(gray[:, :, None], 3, 2)).astype(np.float64)
    assert out.ndim == 2 and np.abs(out - np.rint(rgb @ np.array(LUMA_WEIGHTS))).max() <= 1.5
    alpha = np.full((32, 48, 1), 255, np.uint8)
    alpha[:, :24] = 0
    opts = engine.UpscaleOptions(tile=4096)
    rgba = engine.upscale_array(any_model, np.concatenate([image, alpha], 2), opts)
    assert rgba.shape[2] == 4
    assert np.abs(rgba[:, :, :3].astype(int) - whole(any_model, image)).max() <= 1
    # alpha goes through the model as a gray image of its own
    gray_alpha = engine.upscale_array(any_model, alpha[:, :, 0], opts)
    assert np.abs(rgba[:, :, 3].astype(int) - gray_alpha).max() <= 1


def test_every_architecture_keeps_16_bit_and_float(any_model, photo):
    image = photo[:32, :48]
    ref = whole(any_model, image).astype(np.float64)
    out16 = engine.upscale_array(any_model, image.astype(np.uint16) * 257, engine.UpscaleOptions())
    outf = engine.upscale_array(any_model, image.astype(np.float32) / 255, engine.UpscaleOptions())
    assert out16.dtype == np.uint16 and np.abs(out16 / 257.0 - ref).max() <= 1.0
    assert outf.dtype == np.float32 and np.abs(outf * 255 - ref).max() <= 1.0


def test_every_architecture_reaches_other_scales(any_model, photo):
    image = photo[:24, :40]
    s = any_model.scale
    twice = engine.upscale_array(any_model, image, engine.UpscaleOptions(target_scale=s * s))
    assert twice.shape == (24 * s * s, 40 * s * s, 3)
    less = engine.upscale_array(any_model, image, engine.UpscaleOptions(target_scale=1.5))
    assert less.shape == (36, 60, 3)


def test_every_architecture_batches_and_self_ensembles(any_model, photo):
    image = photo[:32, :48]  # a multiple of every model's grid: rotations need no padding
    one = engine.upscale_array(any_model, image, engine.UpscaleOptions(tile=16, overlap=8))
    three = engine.upscale_array(
        any_model, image, engine.UpscaleOptions(tile=16, overlap=8, batch=3)
    )
    assert psnr(one, three) > 60
    out = engine.upscale_array(any_model, image, engine.UpscaleOptions(tile=4096, tta=True))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    acc = 0
    with torch.inference_mode():
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(x, k, (2, 3))
                y = any_model.model(t.flip(3) if flip else t)
                acc = acc + torch.rot90(y.flip(3) if flip else y, -k, (2, 3))
    ref = np.rint((acc / 8).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255)
    assert np.abs(out - ref).max() <= 1


def test_every_architecture_through_upscale_tensor(any_model, photo):
    a, b = photo[:24, :32], photo[30:54, 40:72]
    x = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).float() / 255
    out = engine.upscale_tensor(any_model, x, engine.UpscaleOptions(tile=4096))
    s = any_model.scale
    assert out.shape == (2, 3, 24 * s, 32 * s) and out.dtype == torch.float32
    for k, img in enumerate((a, b)):
        assert np.abs(out[k].permute(1, 2, 0).numpy() * 255 - whole(any_model, img)).max() <= 1.0
