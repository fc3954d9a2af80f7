"""Export a model to ONNX with dynamic height and width (for chaiNNer's ONNX nodes and any runtime).

HyReSR-MoE models are converted to their re-parameterized deploy form first, so the graph holds
one fused convolution where training had several branches.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Literal

import spandrel
import torch

__all__ = ["OnnxExportError", "export_onnx", "verify_onnx"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"


class OnnxExportError(RuntimeError):
    """The model could not be exported, or the exported graph disagrees with PyTorch."""


def export_onnx(
    model: torch.nn.Module | spandrel.ModelDescriptor,
    path: str | os.PathLike[str],
    *,
    opset: int | None = None,
    input_channels: int | None = None,
    sample_size: int = 64,
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto",
    verify: bool = True,
) -> Path:
    """Write ``model`` as a single ``.onnx`` file whose input is ``(1, C, H, W)``, H and W dynamic.

    Args:
        model: an ``nn.Module`` or a spandrel descriptor (e.g. from ``load_model``). It is copied,
            never modified; a HyReSR model is exported in its fused deploy form.
        path: the ``.onnx`` file to write (parent folders are created).
        opset: ONNX opset; default 18 for the dynamo exporter, 17 for the TorchScript one.
        input_channels: channels of the sample input; read from the descriptor or the model's
            first convolution when not given.
        sample_size: height/width of the tracing sample; deliberately not a multiple of common
            window sizes (it is made odd) so that padding code is traced, not skipped.
        exporter: ``"dynamo"`` (``torch.export``), ``"torchscript"`` (the legacy tracer) or
            ``"auto"`` (dynamo, then the tracer if dynamo fails).
        verify: when onnxruntime is installed, run the file on two input sizes and raise
            ``OnnxExportError`` if it differs from PyTorch by more than 1e-3.

    Input and output are float32 in [0, 1], named ``input`` and ``output``.
    """
    path = Path(path)
    module = model.model if isinstance(model, spandrel.ModelBase) else model
    if input_channels is None:
        input_channels = (
            model.input_channels
            if isinstance(model, spandrel.ModelBase)
            else _first_conv_in_channels(module)
        )
    module = _deploy_form(copy.deepcopy(module).float().cpu().eval())
    size = sample_size | 1
    sample = torch.rand(1, input_channels, size, size, generator=torch.Generator().manual_seed(0))
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        # One eager run first: a model that cannot run fails here with its own error, and the
        # masks/biases the architectures cache per (shift, device, dtype) enter the graph as
        # constants instead of being traced op by op.
        module(sample)

    errors: list[str] = []
    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    for kind in order:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporters are chatty about deprecations
                if kind == "dynamo":
                    _export_dynamo(module, sample, path, opset or 18)
                else:
                    _export_torchscript(module, sample, path, opset or 17)
            break
        except Exception as e:  # noqa: BLE001 - collect both exporters' reasons, raise below
            errors.append(f"{kind}: {type(e).__name__}: {str(e).strip()[:2000]}")
    else:
        raise OnnxExportError(
            f"{path}: could not export {type(module).__name__} to ONNX\n" + "\n".join(errors)
        )

    if verify:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return path
        worst = verify_onnx(module, path, input_channels=input_channels)
        if worst > 1e-3:
            raise OnnxExportError(
                f"{path}: the exported graph differs from PyTorch by up to {worst:.2e} (> 1e-3)"
            )
    return path


def verify_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    input_channels: int = 3,
    sizes: tuple[tuple[int, int], ...] = ((19, 23), (32, 40)),
) -> float:
    """Largest absolute difference between onnxruntime and PyTorch over inputs of ``sizes``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = _deploy_form(model).eval()
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for h, w in sizes:
        x = torch.rand(1, input_channels, h, w, generator=generator)
        with torch.no_grad():
            expected = model(x).float().numpy()
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        if got.shape != expected.shape:
            raise OnnxExportError(f"{path}: output shape {got.shape} != PyTorch's {expected.shape}")
        worst = max(worst, float(abs(got - expected).max()))
    return worst


def _export_dynamo(module: torch.nn.Module, sample: torch.Tensor, path: Path, opset: int) -> None:
    height = torch.export.Dim("height")
    width = torch.export.Dim("width")
    torch.onnx.export(
        module,
        (sample,),
        str(path),
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({2: height, 3: width},),
        external_data=False,  # one self-contained file, as chaiNNer and most tools expect
        verbose=False,
    )


def _export_torchscript(
    module: torch.nn.Module, sample: torch.Tensor, path: Path, opset: int
) -> None:
    torch.onnx.export(
        module,
        (sample,),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {2: "height", 3: "width"}, OUTPUT_NAME: {2: "out_h", 3: "out_w"}},
    )


def _deploy_form(module: torch.nn.Module) -> torch.nn.Module:
    """HyReSR in its fused form (a no-op for everything else, and for already fused models)."""
    try:
        from .archs.hyresr import HyReSR, reparameterize_model
    except ImportError:  # the architecture module is optional for exporting other models
        return module
    if isinstance(module, HyReSR):
        return reparameterize_model(module)
    return module


def _first_conv_in_channels(module: torch.nn.Module) -> int:
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            return m.in_channels
    raise OnnxExportError(
        f"cannot tell the input channels of {type(module).__name__}; pass input_channels="
    )
