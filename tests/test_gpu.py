"""Every CUDA path of the engine, on a real GPU: ``pytest -m gpu`` (``bench/gpu_check.sh`` runs
these and ``bench/gpu.py`` in one command). Without CUDA every test here is skipped.

Tiny random models of each family (NEXUS, HyReSR, spandrel's Compact and SPAN) so the whole file
takes well under a minute on a GPU: half precision (weights bit-identical afterwards), DySample,
channels_last, ``torch.compile``, the out-of-memory fallback (provoked by capping this process's
share of GPU memory) and the fp32 redo of a tile that overflowed in fp16. The CPU result of the
same model is the reference throughout.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from nexus_upscaler.core import engine
from nexus_upscaler.core.archs import hyresr_tiny, nexus_tiny
from nexus_upscaler.core.loading import descriptor_from_state_dict
from nexus_upscaler.core.options import UpscaleOptions
from nexus_upscaler.core.runner import ModelRunner
from spandrel import ImageModelDescriptor, ModelLoader
from spandrel.architectures.Compact import Compact
from spandrel.architectures.SPAN import SPAN

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU (torch.cuda.is_available() is False); run `pytest -m gpu` there",
    ),
]

CUDA = "cuda"


# --- models and images -------------------------------------------------------------------------


def _spandrel(net: torch.nn.Module) -> ImageModelDescriptor:
    desc = ModelLoader().load_from_state_dict(net.state_dict())
    assert isinstance(desc, ImageModelDescriptor)
    return desc.eval()


def _nexus() -> ImageModelDescriptor:
    torch.manual_seed(1)
    net = nexus_tiny(scale=2, embed_dim=16, depths=(1,), num_heads=2, window_size=8, num_feat=16)
    return descriptor_from_state_dict(net.state_dict())


def _hyresr(**config) -> ImageModelDescriptor:
    torch.manual_seed(2)
    net = hyresr_tiny(scale=2, base=8, depths=(1, 1, 1), num_heads=(1, 1, 1), **config)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma", "conv2.weight")) or "offset" in name:
                p.normal_(0, 0.05)  # zero-initialised branches would hide most of the model
    return descriptor_from_state_dict(net.state_dict())


def _compact(feat: int = 16, conv: int = 4) -> ImageModelDescriptor:
    torch.manual_seed(0)
    return _spandrel(Compact(num_in_ch=3, num_out_ch=3, num_feat=feat, num_conv=conv, upscale=4))


def _span() -> ImageModelDescriptor:
    torch.manual_seed(3)
    return _spandrel(SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2))


MODELS = {
    "nexus": _nexus,
    "hyresr": _hyresr,
    "hyresr-dysample": lambda: _hyresr(upsampler="dysample"),
    "compact": _compact,
    "span": _span,
}


@pytest.fixture(params=list(MODELS), scope="module")
def model(request) -> ImageModelDescriptor:
    return MODELS[request.param]()


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image with some texture, (h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin((xx + yy) / 7)], axis=2)
    noise = rng.normal(0, 0.05, (h, w, 3))
    return (np.clip(base + noise, 0, 1) * 255).round().astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _bits(module: torch.nn.Module) -> dict[str, tuple]:
    """Every parameter and buffer: its object, dtype, device, layout and exact bytes."""
    out = {}
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        out[name] = (id(t), t.dtype, t.device, t.stride(), t.detach().cpu().numpy().tobytes())
    return out


@pytest.fixture()
def no_tf32():
    """Full fp32 convolutions, for comparisons with the CPU (cuDNN's default is TF32)."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


def _run(desc: ImageModelDescriptor, image: np.ndarray, **options) -> np.ndarray:
    return engine.upscale_array(desc, image, UpscaleOptions(**options))


# --- precision ---------------------------------------------------------------------------------


def test_fp32_on_cuda_matches_the_cpu(model, no_tf32):
    image = _image(40, 56)
    cpu = _run(model, image, tile=32, overlap=8, precision="fp32")
    gpu = _run(model, image, tile=32, overlap=8, precision="fp32", device=CUDA)
    assert _psnr(gpu, cpu) > 50


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_cuda_and_the_weights_come_back_bit_identical(model, precision):
    """The app and ComfyUI keep a model loaded on the CPU and run it on the GPU in half
    precision: the model must come back on the CPU in fp32, bit for bit."""
    image = _image(40, 56, seed=1)
    before = _bits(model.model)
    fp32 = _run(model, image, tile=32, overlap=8, precision="fp32", device=CUDA)
    half = _run(model, image, tile=32, overlap=8, precision=precision, device=CUDA)
    assert _bits(model.model) == before
    assert _psnr(half, fp32) > (35 if precision == "fp16" else 28)  # bf16: 8-bit mantissa
    again = _run(model, image, tile=32, overlap=8, precision="fp32", device=CUDA)
    assert np.abs(again.astype(int) - fp32).max() <= 1


def test_auto_precision_on_cuda_is_half(model):
    dtype = engine.pick_dtype(model, "auto", torch.device(CUDA))
    if model.supports_bfloat16 and torch.cuda.is_bf16_supported():
        assert dtype == torch.bfloat16
    elif model.supports_half:
        assert dtype == torch.float16
    else:
        assert dtype == torch.float32
    image = _image(24, 24)
    out = _run(model, image, device=CUDA)
    assert out.shape == (24 * model.scale, 24 * model.scale, 3)


def test_dysample_runs_on_cuda_in_every_precision(no_tf32):
    """DySample builds its sampling grid from the input's device and dtype."""
    desc = _hyresr(upsampler="dysample")
    image = _image(33, 45)
    cpu = _run(desc, image, precision="fp32")
    for precision in ("fp32", "fp16", "bf16"):
        gpu = _run(desc, image, precision=precision, device=CUDA)
        assert gpu.shape == cpu.shape
        assert _psnr(gpu, cpu) > (45 if precision == "fp32" else 28), precision


# --- layout and compile ------------------------------------------------------------------------


def test_channels_last_is_kept_on_cuda_and_equals_the_plain_layout(model, no_tf32):
    """Every model family takes channels_last on CUDA (no silent fall back) with the same
    result as the plain layout."""
    x = torch.from_numpy(_image(32, 48)).permute(2, 0, 1)[None].float().div(255)
    out_size = (32 * model.scale, 48 * model.scale)
    results = {}
    for channels_last in (True, False):
        options = UpscaleOptions(device=CUDA, precision="fp32")
        with torch.inference_mode(), ModelRunner(model, options, channels=3) as runner:
            runner.channels_last = channels_last
            if not channels_last:
                runner.module.to(memory_format=torch.contiguous_format)
            results[channels_last] = runner.run(x, out_size)
            assert runner.channels_last is channels_last
    assert (results[True] - results[False]).abs().max() < 1e-3


@pytest.mark.parametrize("which", ["compact", "nexus"])
def test_torch_compile_on_cuda_matches_eager(which):
    desc = MODELS[which]()
    image = _image(48, 48, seed=2)
    before = _bits(desc.model)
    eager = _run(desc, image, tile=48, precision="fp16", device=CUDA)
    compiled = _run(desc, image, tile=48, precision="fp16", device=CUDA, compile=True)
    assert _psnr(compiled, eager) > 40
    assert _bits(desc.model) == before


# --- out of memory and the fp32 redo ------------------------------------------------------------


def test_out_of_memory_on_cuda_halves_the_tile_and_finishes():
    """A real CUDA out-of-memory error: this process may use ~400 MiB, and a 1024 px tile of a
    64-channel x4 CNN needs more (a 256 MiB activation and a 200 MiB output). The engine halves
    the tile and the result equals the one of smaller tiles."""
    desc = _compact(feat=64, conv=2)
    image = _image(1024, 1024, seed=3)
    reference = _run(desc, image, tile=256, overlap=32, precision="fp32", device=CUDA)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = 400 * 2**20
    torch.cuda.set_per_process_memory_fraction(cap / total)
    torch.cuda.reset_peak_memory_stats()
    try:
        # the 1024 px tile must really fail under the cap
        probe = copy.deepcopy(desc.model).to(CUDA)
        with pytest.raises(torch.OutOfMemoryError), torch.inference_mode():
            probe(torch.rand(1, 3, 1024, 1024, device=CUDA))
        del probe
        torch.cuda.empty_cache()
        out = _run(desc, image, tile=1024, overlap=32, precision="fp32", device=CUDA)
        assert torch.cuda.max_memory_allocated() <= cap
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert out.shape == (4096, 4096, 3)
    assert _psnr(out, reference) > 50  # 2 + 2 convs: tiles agree far inside the overlap


class _HalfOverflow(torch.nn.Module):
    """Overflows in float16 (an intermediate above 65504) but is exact in float32."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * 1e5) / 1e5


@pytest.mark.parametrize("tta", [False, True])
def test_a_tile_that_overflows_in_fp16_on_cuda_is_redone_in_fp32(tta):
    inner = _compact()
    net = _HalfOverflow(inner.model)
    desc = ImageModelDescriptor(
        net,
        net.state_dict(),
        architecture=inner.architecture,
        purpose=inner.purpose,
        tags=inner.tags,
        supports_half=True,
        supports_bfloat16=True,
        scale=inner.scale,
        input_channels=3,
        output_channels=3,
    )
    image = _image(40, 40, seed=4)
    before = _bits(net)
    fp32 = _run(desc, image, tile=64, precision="fp32", device=CUDA, tta=tta)
    notes: list[str] = []
    fp16 = engine.upscale_array(
        desc, image, UpscaleOptions(tile=64, precision="fp16", device=CUDA, tta=tta), notes=notes
    )
    assert any("redone in fp32" in note for note in notes), notes
    assert np.abs(fp16.astype(int) - fp32).max() <= 1
    assert _bits(net) == before
