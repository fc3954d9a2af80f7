"""Models shipped in the package's ``weights/`` folder, found by name.

A shipped model is ``weights/<name>.safetensors``; its scale, architecture and description come
from the safetensors metadata that ``core.loading.save_model`` writes (only the JSON header is
read, never the tensors). ``$NEXUS_UPSCALER_WEIGHTS_DIR`` points the zoo at another folder (tests
use it; so can a user who keeps models elsewhere).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, ModelNotFoundError

__all__ = [
    "DEFAULT_MODEL",
    "RECOMMENDED",
    "ShippedModel",
    "default_model_name",
    "list_shipped_models",
    "resolve_model",
    "weights_dir",
]

RECOMMENDED = (
    "hyresr-real-x4",
    "hyresr-real-x2",
    "hyresr-x4",
    "hyresr-x2",
    "nexus-x4",
    "nexus-x2",
)
"""Shipped models in the order to offer them: the real-world models (they clean JPEG blocks and
noise as they enlarge) before the faithful bicubic-trained ones, the stronger before the weaker.
Every face lists models in this order; other files in the weights folder follow by name."""
DEFAULT_MODEL = RECOMMENDED[0]
WEIGHTS_DIR_ENV = "NEXUS_UPSCALER_WEIGHTS_DIR"


@dataclass(frozen=True)
class ShippedModel:
    name: str
    path: Path
    scale: int | None
    architecture: str | None
    description: str


def weights_dir() -> Path:
    """``$NEXUS_UPSCALER_WEIGHTS_DIR`` if set, else the package's own ``weights/`` folder."""
    override = os.environ.get(WEIGHTS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "weights"


def _scale_from(metadata: dict[str, str], name: str) -> int | None:
    try:
        return int(metadata["scale"])
    except (KeyError, ValueError):
        match = re.search(r"(?:^|[^a-z0-9])x(\d+)(?:$|[^0-9])", name.lower())
        return int(match.group(1)) if match else None


def list_shipped_models(directory: str | os.PathLike[str] | None = None) -> list[ShippedModel]:
    """The ``*.safetensors`` files in ``directory`` (default ``weights_dir()``), sorted by name.

    A file whose header cannot be read is still listed, with what its name tells.
    """
    from .loading import read_metadata

    folder = Path(directory) if directory is not None else weights_dir()
    if not folder.is_dir():
        return []
    models = []
    for path in sorted(folder.glob("*.safetensors"), key=_offer_order):
        try:
            metadata = read_metadata(path)
        except (CheckpointError, ModelNotFoundError, OSError):
            metadata = {}
        architecture = metadata.get("architecture") or None
        if architecture and metadata.get("variant"):
            architecture = f"{architecture} ({metadata['variant']})"
        models.append(
            ShippedModel(
                name=path.stem,
                path=path,
                scale=_scale_from(metadata, path.stem),
                architecture=architecture,
                description=metadata.get("description") or metadata.get("name") or "",
            )
        )
    return models


def _offer_order(path: Path) -> tuple[int, str]:
    name = path.stem
    return (RECOMMENDED.index(name) if name in RECOMMENDED else len(RECOMMENDED), name)


def default_model_name(
    directory: str | os.PathLike[str] | None = None, scale: int | None = None
) -> str | None:
    """The model to use when none is named: the first shipped model in offer order
    (``RECOMMENDED`` first), or with ``scale`` the first one of that native scale (so asking for
    x2 runs an x2 model instead of an x4 one and a downscale; without one at that scale, the
    overall default). When no recommended model ships: the only model if there is exactly one,
    else None (the user must choose).
    """
    models = list_shipped_models(directory)
    if scale is not None:
        native = [m for m in models if m.scale == scale]
        if native:
            return native[0].name
    if models and models[0].name in RECOMMENDED:
        return models[0].name
    return models[0].name if len(models) == 1 else None


def resolve_model(
    name_or_path: str | os.PathLike[str] | None = None,
    directory: str | os.PathLike[str] | None = None,
    scale: int | None = None,
) -> Path:
    """The checkpoint file for a path, or for the name of a shipped model (None: the default,
    for ``scale`` if given; see :func:`default_model_name`).

    Raises ModelNotFoundError saying what exists, and plainly that no trained weights ship yet
    when the weights folder is empty.
    """
    folder = Path(directory) if directory is not None else weights_dir()
    models = list_shipped_models(folder)
    if name_or_path is None:
        name = default_model_name(folder, scale)
        if name is None:
            raise ModelNotFoundError(_nothing_to_default(models, folder))
        name_or_path = name
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    if candidate.is_dir():
        raise ModelNotFoundError(f"{candidate}: is a folder, not a model file")
    text = str(name_or_path)
    for model in models:
        if text in (model.name, model.path.name):
            return model.path
    if models:
        listing = ", ".join(m.name for m in models)
        raise ModelNotFoundError(
            f"no model file or shipped model named {text!r}; shipped models: {listing}"
        )
    raise ModelNotFoundError(
        f"no model file named {text!r}, and no trained weights ship in {folder} yet; "
        "pass the path of a checkpoint spandrel can load (ESRGAN, SwinIR, HAT, ...)"
    )


def _nothing_to_default(models: list[ShippedModel], folder: Path) -> str:
    if not models:
        return (
            f"no trained weights ship in {folder} yet, so there is no default model; "
            "pass --model PATH with a checkpoint spandrel can load (ESRGAN, SwinIR, HAT, ...)"
        )
    listing = ", ".join(m.name for m in models)
    return f"no default model ({', '.join(RECOMMENDED)}) in {folder}; choose one of: {listing}"
