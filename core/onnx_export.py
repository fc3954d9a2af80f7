"""Export a model to ONNX with dynamic height and width (for chaiNNer's ONNX nodes and any runtime).

HyReSR-MoE models are converted to their re-parameterized deploy form first, so the graph holds
one fused convolution where training had several branches.

Files are written for the widest set of runtimes by default: IR version 9 at most (onnxruntime
1.17, the one chaiNNer ships, refuses IR 10, which torch's exporter writes) and opset 18. Export
needs the ``onnx`` and ``onnxscript`` packages: ``pip install "nexus-upscaler[onnx]"``.
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

COMPATIBLE_IR_VERSION = 9
"""The newest ONNX IR version onnxruntime 1.17 (chaiNNer's) reads; files are written at most at it."""
VERIFY_SIZES: tuple[tuple[int, int], ...] = ((3, 3), (16, 16), (19, 23), (32, 40))
"""Input sizes the export is checked at: tiny, one 16 px HyReSR grid cell, odd, and larger."""
INSTALL_HINT = 'pip install "nexus-upscaler[onnx]"'


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
    ir_version: int | None = COMPATIBLE_IR_VERSION,
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
        verify: when onnxruntime is installed, run the file on the sizes of ``VERIFY_SIZES``
            and raise ``OnnxExportError`` if it differs from PyTorch by more than 1e-3.
        ir_version: the newest ONNX IR version the file may have (default 9, which onnxruntime
            1.17 and later read); None keeps the exporter's own.

    Input and output are float32 in [0, 1], named ``input`` and ``output``.

    Raises:
        OnnxExportError: the onnx/onnxscript packages are missing (the message says how to
            install them), the model cannot be exported, or the graph disagrees with PyTorch.
    """
    _require_exporter_packages()
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
    if ir_version is not None:
        _limit_ir_version(path, ir_version)

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
    sizes: tuple[tuple[int, int], ...] = VERIFY_SIZES,
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


def _require_exporter_packages() -> None:
    """Raise OnnxExportError naming the extra to install when onnx or onnxscript is missing
    (torch's exporter needs both, and imports them only once it is called)."""
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise OnnxExportError(
            f"ONNX export needs the {' and '.join(missing)} package"
            f"{'s' * (len(missing) > 1)}, which {'are' if len(missing) > 1 else 'is'} not "
            f"installed: {INSTALL_HINT}"
        )


def _limit_ir_version(path: Path, newest: int) -> None:
    """Lower the file's IR version to ``newest`` when the exporter wrote a newer one.

    The IR version is a declaration of the file format the graph needs. torch's exporter writes
    the newest onnx supports (10, since onnx 1.16) whatever the graph holds; what IR 10 added
    (4-bit types, overloaded local functions) is not used by our graphs at opset <= 20, and
    ``onnx.checker`` confirms the file is valid at the lower version before it is kept.
    """
    import onnx

    model = onnx.load(str(path))
    if model.ir_version <= newest:
        return
    # (release, IR version, ai.onnx opset, ...) per onnx release: the opsets an IR version covers
    top_opset = max(row[2] for row in onnx.helper.VERSION_TABLE if row[1] <= newest)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > top_opset:
        raise OnnxExportError(
            f"{path}: opset {opset} is newer than ONNX IR version {newest} covers (opsets up to "
            f"{top_opset}): export with opset={top_opset} or lower, or with ir_version=None"
        )
    model.ir_version = newest
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types; one clear error here
        raise OnnxExportError(
            f"{path}: the exported graph needs ONNX IR version {newest + 1} or later "
            f"({str(exc).strip()[:500]}); export with a lower opset, or ir_version=None to keep it"
        ) from exc
    onnx.save(model, str(path))


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
