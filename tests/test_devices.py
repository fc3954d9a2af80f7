"""Every model path on the meta device, where a tensor made on the CPU inside ``forward`` fails
as it would on CUDA (``torch.stack`` of a CPU and a CUDA tensor, say) - a check that runs on
machines without a GPU. The GPU tests (``-m gpu``) then run the same paths for real."""

from __future__ import annotations

import pytest
import torch
from nexus_upscaler.core.archs import hyresr_tiny, nexus_tiny
from nexus_upscaler.core.loading import descriptor_from_state_dict
from nexus_upscaler.core.options import UpscaleOptions
from nexus_upscaler.core.runner import ModelRunner

NEXUS_CONFIGS = {
    "pixelshuffle": {},
    "pixelshuffledirect": {"upsampler": "pixelshuffledirect"},
    "nearest+conv": {"upsampler": "nearest+conv"},
    "no-freq-3conv": {"use_freq": False, "resi_connection": "3conv"},
}
HYRESR_CONFIGS = {
    "pixelshuffle": {},
    "dysample": {"upsampler": "dysample"},
    "fourier-globalmix": {"fourier": True, "global_mix": True},
    "overlap-noise": {"overlap": True, "noise": True},
    "deploy": {"deploy": True},
}


def _meta_forward(model: torch.nn.Module, h: int, w: int, scale: int) -> None:
    model = model.eval().to("meta")
    x = torch.empty(2, 3, h, w, device="meta")
    with torch.inference_mode():
        y = model(x)
    assert y.device.type == "meta" and y.shape == (2, 3, h * scale, w * scale)


@pytest.mark.parametrize("config", NEXUS_CONFIGS.values(), ids=NEXUS_CONFIGS.keys())
def test_nexus_builds_nothing_on_another_device(config):
    model = nexus_tiny(scale=3, embed_dim=16, depths=(2,), num_heads=2, window_size=8, **config)
    _meta_forward(model, 19, 23, 3)


@pytest.mark.parametrize("config", HYRESR_CONFIGS.values(), ids=HYRESR_CONFIGS.keys())
def test_hyresr_builds_nothing_on_another_device(config):
    model = hyresr_tiny(scale=4, base=8, depths=(1, 1, 1), num_heads=(1, 1, 1), **config)
    model.set_noise(True)  # the noise path too, when a config has it
    _meta_forward(model, 19, 23, 4)


@pytest.mark.parametrize("tta", [False, True])
def test_the_model_runner_builds_nothing_on_another_device(tta):
    """The runner's device side (padding to the size requirements, TTA transforms, the fp32
    model for redone tiles) on meta; the caller's model comes back on the CPU."""
    net = nexus_tiny(scale=2, embed_dim=16, depths=(1,), num_heads=2, window_size=8, num_feat=16)
    desc = descriptor_from_state_dict(net.state_dict())
    options = UpscaleOptions(device="meta", precision="bf16", tta=tta)
    with torch.inference_mode(), ModelRunner(desc, options, channels=3) as runner:
        x = torch.empty(2, 3, 19, 23, device="meta")
        y = runner._forward(runner.compiled, runner._pad(x).to(runner.dtype))
        assert y.device.type == "meta" and y.shape == (2, 3, 48, 48)  # padded to 24 x 24
        y = runner._forward(runner._fp32(), runner._pad(x))
        assert y.dtype == torch.float32 and y.device.type == "meta"
    assert all(p.device.type == "cpu" for p in desc.model.parameters())
