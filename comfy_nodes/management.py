"""UPSCALE_MODEL objects as the running ComfyUI makes them, placed by its model management.

ComfyUI changed its upscale-model contract after 0.3.64:

- 0.3.64: "Load Upscale Model" returns a bare ``spandrel.ImageModelDescriptor``; "Upscale Image
  (using Model)" frees memory with ``model_management.free_memory`` and moves the model itself.
- later versions: the loader attaches ``descriptor.patcher =
  comfy.model_patcher.CoreModelPatcher(descriptor.model, load_device=..., offload_device=...,
  fast_disk=...)`` and the built-in upscale node reads ``upscale_model.patcher.load_device`` and
  calls ``model_management.load_models_gpu([patcher], ...)``, so model management places the
  model and frees it when another model needs the memory. ``CoreModelPatcher`` is looked up at
  call time: ``main.py`` swaps in ``ModelPatcherDynamic`` when comfy-aimdo is installed.

So we attach a patcher whenever the running ComfyUI offers one (``CoreModelPatcher``, else
``ModelPatcher``, which 0.3.64 has), passing only the keyword arguments its constructor takes,
and before upscaling we hand any patcher (ours or the built-in loader's) to ``load_models_gpu``.
A descriptor without one (the 0.3.64 built-in loader's) gets the 0.3.64 treatment. Either way the
engine runs on the patcher's load device and gives the model back exactly as it found it.

ComfyUI's modules are imported when called (``importlib``), never at import, so a test can
stand in for a ComfyUI version by putting modules in ``sys.modules``.
"""

from __future__ import annotations

import importlib
import inspect
from os import PathLike
from types import ModuleType
from typing import Any

import torch
from spandrel import ImageModelDescriptor

from . import logic


def _comfy(name: str) -> ModuleType:
    return importlib.import_module(f"comfy.{name}")


def _fast_disk(path: str | PathLike[str]) -> bool:
    """What the running ComfyUI's storage policy says of the file's disk (False where none)."""
    try:
        storage = _comfy("storage")
    except ImportError:
        return False
    model_fast_disk = getattr(storage, "model_fast_disk", None)
    return bool(model_fast_disk([str(path)])) if callable(model_fast_disk) else False


def _accepts(function: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def make_patcher(model: torch.nn.Module, path: str | PathLike[str]) -> Any | None:
    """The model patcher the running ComfyUI's own loader would wrap ``model`` in, or None.

    ``CoreModelPatcher`` when the running version has it (read now: it can be replaced after
    import), else ``ModelPatcher``; load device = ComfyUI's torch device, offload device = where
    it keeps models it is not using; ``fast_disk`` from its storage policy if it takes one.
    """
    patcher_module = _comfy("model_patcher")
    patcher_class = getattr(patcher_module, "CoreModelPatcher", None) or getattr(
        patcher_module, "ModelPatcher", None
    )
    if patcher_class is None:
        return None
    mm = _comfy("model_management")
    kwargs: dict[str, Any] = {
        "load_device": mm.get_torch_device(),
        "offload_device": mm.unet_offload_device(),
    }
    if _accepts(patcher_class, "fast_disk"):
        kwargs["fast_disk"] = _fast_disk(path)
    return patcher_class(model, **kwargs)


def load_upscale_model(path: str | PathLike[str]) -> ImageModelDescriptor:
    """Our loader's ``UPSCALE_MODEL``: the descriptor on the CPU in fp32, with ``.patcher`` when
    the running ComfyUI makes one, as its own "Load Upscale Model" does."""
    descriptor = logic.load_upscale_model(path)
    patcher = make_patcher(descriptor.model, path)
    if patcher is not None:
        descriptor.patcher = patcher  # type: ignore[attr-defined]
    return descriptor


def comfy_device(upscale_model: ImageModelDescriptor) -> torch.device:
    """Where ComfyUI wants this model run: its patcher's load device, else ComfyUI's device."""
    patcher = getattr(upscale_model, "patcher", None)
    if patcher is not None:
        return torch.device(patcher.load_device)
    return torch.device(_comfy("model_management").get_torch_device())


def place(
    upscale_model: ImageModelDescriptor, image: torch.Tensor, device: torch.device, tile: int | None
) -> None:
    """Make room for the model and one tile's work on ``device``, through model management.

    With a patcher: ``load_models_gpu`` loads the model in full (it is small) and may unload
    others; the model stays registered, so ComfyUI frees it when something else needs the
    memory. Without one: ``free_memory`` for weights and work, as 0.3.64's built-in node does.
    """
    mm = _comfy("model_management")
    patcher = getattr(upscale_model, "patcher", None)
    if patcher is not None and torch.device(patcher.load_device) == device:
        mm.load_models_gpu(
            [patcher],
            memory_required=logic.working_memory(upscale_model, image, tile),
            force_full_load=True,
        )
    else:
        mm.free_memory(logic.memory_estimate(upscale_model, image, tile), device)


def upscale(
    upscale_model: ImageModelDescriptor,
    image: torch.Tensor,
    mask: torch.Tensor | None,
    **option_widgets: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Body of both upscale nodes: place the model, run the engine, tick the progress bar.

    Returns ``(image, mask)`` on ComfyUI's intermediate device.
    """
    mm = _comfy("model_management")
    utils = _comfy("utils")
    device = comfy_device(upscale_model)
    options = logic.build_options(device=device, **option_widgets)
    place(upscale_model, image, torch.device(options.device), options.tile)
    mm.throw_exception_if_processing_interrupted()
    pbar = utils.ProgressBar(1)

    def progress(done: int, total: int) -> None:
        # Raises ComfyUI's InterruptProcessingException when the user pressed Cancel; it passes
        # through the engine untouched, so ComfyUI reports the prompt as interrupted.
        mm.throw_exception_if_processing_interrupted()
        pbar.update_absolute(done, total)

    out_image, out_mask = logic.upscale_images(
        upscale_model, image, options, mask=mask, progress=progress
    )
    mm.soft_empty_cache()
    return out_image.to(mm.intermediate_device()), out_mask.to(mm.intermediate_device())
