"""ONNX export: dynamic height and width, checked with onnxruntime against PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from nexus_upscaler.core import export_onnx, load_model, onnx_export, save_model
from nexus_upscaler.core.archs import hyresr, nexus
from nexus_upscaler.core.onnx_export import OnnxExportError
from spandrel.architectures.Compact import Compact

SIZES = ((3, 3), (16, 16), (19, 23), (32, 40))  # tiny, one HyReSR grid cell, odd, larger
OLD_ORT_ENV = "NEXUS_TEST_OLD_ONNXRUNTIME_PYTHON"
"""A Python with the oldest onnxruntime we target (1.17, chaiNNer's) to run exported files."""


def _run(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["output"], {"input": x.numpy()})
    return out


def _check(model: torch.nn.Module, path, channels: int = 3) -> None:
    graph = onnx.load(str(path))
    # onnxruntime 1.17 (chaiNNer's) reads IR version 9 and opsets up to 20 at most
    assert graph.ir_version <= 9
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) <= 20
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


@pytest.fixture(scope="module")
def tiny_nexus(tmp_path_factory):
    """A tiny NEXUS and its file, exported once for the tests that read it."""
    torch.manual_seed(0)
    model = nexus.nexus_tiny(scale=2, embed_dim=16, depths=(2,), num_heads=2, window_size=4)
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "nexus.onnx", verify=False)


@pytest.fixture(scope="module")
def tiny_hyresr(tmp_path_factory):
    torch.manual_seed(0)
    model = hyresr.hyresr_tiny(scale=2, base=8, depths=(1, 1, 1)).eval()
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "hyresr.onnx", verify=False)


def test_tiny_nexus_exports_with_dynamic_size(tiny_nexus):
    model, path = tiny_nexus
    _check(model, path)


def test_tiny_hyresr_exports_in_deploy_form(tiny_hyresr):
    model, path = tiny_hyresr
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


def test_the_exporter_can_keep_its_own_ir_version_and_refuses_what_ir_9_cannot_hold(tmp_path):
    model = Compact(num_feat=4, num_conv=1, upscale=2)
    kept = export_onnx(model, tmp_path / "new.onnx", ir_version=None, verify=False)
    assert onnx.load(str(kept)).ir_version >= 10  # what torch's exporter writes
    # a graph at opset 21 cannot be declared IR 9 (opset 21 came with IR 10): refused, not mislabelled
    node = onnx.helper.make_node("Relu", ["input"], ["output"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [value("input", 1, [1])], [value("output", 1, [1])])
    newer = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21)])
    newer.ir_version = 10
    onnx.save(newer, str(tmp_path / "o21.onnx"))
    with pytest.raises(OnnxExportError, match="opset 21 is newer than ONNX IR version 9 covers"):
        onnx_export._limit_ir_version(tmp_path / "o21.onnx", 9)


def test_a_missing_onnx_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails as if not installed
    with pytest.raises(OnnxExportError, match=r"onnxscript package.*nexus-upscaler\[onnx\]"):
        export_onnx(Compact(num_feat=4, num_conv=1, upscale=2), tmp_path / "c.onnx")
    assert not (tmp_path / "c.onnx").exists()


OLD_ORT_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
for h, w in [(3, 3), (16, 16), (19, 23)]:
    x = np.load(f"{sys.argv[2]}/{h}x{w}.npy")
    (out,) = session.run(["output"], {"input": x})
    np.save(f"{sys.argv[2]}/{h}x{w}.out.npy", out)
print(ort.__version__)
"""


@pytest.mark.skipif(
    not os.environ.get(OLD_ORT_ENV),
    reason=f"set {OLD_ORT_ENV} to a Python with onnxruntime 1.17 (and numpy<2) to run this",
)
def test_the_oldest_onnxruntime_we_target_runs_the_files(tmp_path, tiny_nexus, tiny_hyresr):
    """Run exported files in onnxruntime 1.17 (chaiNNer's), in its own Python."""
    for name, (model, path) in {"nexus": tiny_nexus, "hyresr": tiny_hyresr}.items():
        for h, w in [(3, 3), (16, 16), (19, 23)]:
            np.save(tmp_path / f"{h}x{w}.npy", torch.rand(1, 3, h, w).numpy())
        (tmp_path / "run.py").write_text(OLD_ORT_SCRIPT)
        result = subprocess.run(
            [os.environ[OLD_ORT_ENV], "run.py", str(path), str(tmp_path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().startswith("1.17"), result.stdout
        for h, w in [(3, 3), (16, 16), (19, 23)]:
            x = torch.from_numpy(np.load(tmp_path / f"{h}x{w}.npy"))
            with torch.no_grad():
                expected = model.eval()(x).numpy()
            got = np.load(tmp_path / f"{h}x{w}.out.npy")
            assert np.abs(got - expected).max() < 1e-3, (name, h, w)
