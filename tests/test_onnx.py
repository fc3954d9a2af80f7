"""ONNX export: dynamic height and width, checked with onnxruntime against PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from nexus_upscaler.core import export_onnx, load_model, save_model
from nexus_upscaler.core.archs import hyresr, nexus
from spandrel.architectures.Compact import Compact

SIZES = ((19, 23), (32, 40))  # two sizes, neither a multiple of the windows


def _run(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["output"], {"input": x.numpy()})
    return out


def _check(model: torch.nn.Module, path, channels: int = 3) -> None:
    graph = onnx.load(str(path))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[:2]] == [1, channels]
    assert dims[2].dim_param and dims[3].dim_param  # symbolic: any height and width
    generator = torch.Generator().manual_seed(0)
    for h, w in SIZES:
        x = torch.rand(1, channels, h, w, generator=generator)
        with torch.no_grad():
            expected = model.eval()(x).numpy()
        got = _run(path, x)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-3


def test_tiny_nexus_exports_with_dynamic_size(tmp_path):
    torch.manual_seed(0)
    model = nexus.nexus_tiny(scale=2, embed_dim=16, depths=(2,), num_heads=2, window_size=4)
    path = export_onnx(model, tmp_path / "nexus.onnx", verify=False)
    _check(model, path)


def test_tiny_hyresr_exports_in_deploy_form(tmp_path):
    torch.manual_seed(0)
    model = hyresr.hyresr_tiny(scale=2, base=8, depths=(1, 1, 1)).eval()
    path = export_onnx(model, tmp_path / "hyresr.onnx", verify=False)
    assert hasattr(model.stem, "conv3x3")  # the caller's model is left in training form
    names = {init.name for init in onnx.load(str(path)).graph.initializer}
    assert not any("conv3x3" in n or "conv_large" in n for n in names)  # branches were fused
    _check(model, path)


def test_any_spandrel_descriptor_exports(tmp_path):
    torch.manual_seed(0)
    src = tmp_path / "compact.safetensors"
    save_model(Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=3), src)
    descriptor = load_model(src)
    path = export_onnx(descriptor, tmp_path / "out" / "compact.onnx")  # verify=True by default
    _check(descriptor.model, path, channels=1)


@pytest.mark.parametrize("exporter", ["torchscript"])
def test_the_legacy_exporter_can_be_chosen(tmp_path, exporter):
    model = Compact(num_feat=4, num_conv=1, upscale=2)
    path = export_onnx(model, tmp_path / "c.onnx", exporter=exporter)
    _check(model, path)
