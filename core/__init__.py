"""The core: architectures, detection, loading, tiling, presets, image I/O and training.

Nothing under ``core`` imports Qt or ComfyUI. Public names are re-exported lazily, so that
``import nexus_upscaler.core`` stays cheap and each submodule is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    CheckpointError,
    CheckpointFormatError,
    ConfigError,
    ImageError,
    ImageReadError,
    ImageWriteError,
    InconsistentCheckpointError,
    ModelNotFoundError,
    NexusError,
    OutputExistsError,
    PresetError,
    TileTooSmallError,
    UnknownArchitectureError,
    UnsafeCheckpointError,
    UpscaleCancelled,
)

# public name -> submodule that defines it
_LAZY: dict[str, str] = {
    # detection and loading (spandrel)
    "register_with_spandrel": "detection",
    "load_model": "loading",
    "save_model": "loading",
    "read_state_dict": "loading",
    "read_metadata": "loading",
    "export_onnx": "onnx_export",
    # the engine
    "UpscaleOptions": "engine",
    "CancelToken": "engine",
    "upscale_tensor": "engine",
    "upscale_array": "engine",
    "upscale_file": "pipeline",
    # presets, images, shipped models
    "get_preset": "presets",
    "list_presets": "presets",
    "read_image": "imageio",
    "write_image": "imageio",
    "list_shipped_models": "zoo",
    "resolve_model": "zoo",
}

__all__ = [
    "CancelToken",
    "CheckpointError",
    "CheckpointFormatError",
    "ConfigError",
    "ImageError",
    "ImageReadError",
    "ImageWriteError",
    "InconsistentCheckpointError",
    "ModelNotFoundError",
    "NexusError",
    "OutputExistsError",
    "PresetError",
    "TileTooSmallError",
    "UnknownArchitectureError",
    "UnsafeCheckpointError",
    "UpscaleCancelled",
    "UpscaleOptions",
    "export_onnx",
    "get_preset",
    "list_presets",
    "list_shipped_models",
    "load_model",
    "read_image",
    "read_metadata",
    "read_state_dict",
    "register_with_spandrel",
    "resolve_model",
    "save_model",
    "upscale_array",
    "upscale_file",
    "upscale_tensor",
    "write_image",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
