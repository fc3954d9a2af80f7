"""What the ComfyUI nodes do, as plain functions that import neither ComfyUI nor Qt.

The node classes in ``nodes.py`` only translate between ComfyUI (its folders, progress bar,
interrupt flag and model management) and these functions, so CI, which has no ComfyUI, tests
the behaviour here with real spandrel descriptors and real tensors.

ComfyUI's conventions, which these functions speak:

- ``IMAGE`` is a float tensor ``(B, H, W, C)`` in 0..1 on the CPU, ``C`` = 3 (some nodes pass 4).
- ``MASK`` is a float tensor ``(B, H, W)`` (or ``(H, W)``) where 1 means masked, i.e.
  transparent: ComfyUI's "Load Image" gives ``mask = 1 - alpha``, and a 64 x 64 zero mask for an
  image without alpha.
- ``UPSCALE_MODEL`` is a ``spandrel.ImageModelDescriptor``; newer ComfyUI versions attach a
  ``.patcher`` to it (see ``management``), which these functions never need.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from typing import Any

import torch
import torch.nn.functional as F
from spandrel import ImageModelDescriptor, ModelTiling

from ..core import engine, loading, presets, zoo
from ..core.errors import ModelNotFoundError
from ..core.model_info import format_count, parameter_count

PRESET = "preset"
"""Dropdown value meaning "keep what the preset says" for an override."""

PRECISION_CHOICES = [PRESET, "auto", "fp32", "fp16", "bf16"]
TTA_CHOICES = [PRESET, "off", "on"]
ALPHA_CHOICES = ["model", "resize"]
"""How alpha is upscaled: through the model (sharp edges) or by plain interpolation."""

ProgressFn = Callable[[int, int], None]


# --- models ------------------------------------------------------------------------------------


def load_upscale_model(path: str | PathLike[str]) -> ImageModelDescriptor:
    """Load a checkpoint (ours or any spandrel architecture) as ComfyUI's ``UPSCALE_MODEL``.

    The model is kept on the CPU in fp32, like ComfyUI's own loader: the upscale node moves it to
    the device ComfyUI picks, at the precision the preset asks for, and back afterwards.
    Raises ``CheckpointError`` subclasses naming the file.
    """
    descriptor = loading.load_model(path, device="cpu", dtype=torch.float32)
    return descriptor.eval()


SHIPPED_PREFIX = "NEXUS/"
"""Marks the models that ship in the package's ``weights/`` in the loader's list:
``NEXUS/hyresr-real-x4``. Short, and stable as long as the file keeps its name; it can never
equal an entry of ``models/upscale_models``, which always ends in a file extension."""

LEGACY_SHIPPED_SUFFIX = " (shipped with NEXUS)"
"""How the loader named shipped models before; workflows saved then still load."""


def model_choices(upscale_model_files: list[str]) -> list[str]:
    """The loader's list: our shipped models first (recommended order), then ComfyUI's files."""
    shipped = [SHIPPED_PREFIX + m.name for m in zoo.list_shipped_models()]
    return shipped + list(upscale_model_files)


def shipped_model_name(choice: str) -> str | None:
    """The shipped model's name in a loader choice (current or legacy spelling), else None."""
    if choice.startswith(SHIPPED_PREFIX):
        return choice[len(SHIPPED_PREFIX) :]
    if choice.endswith(LEGACY_SHIPPED_SUFFIX):
        return choice[: -len(LEGACY_SHIPPED_SUFFIX)]
    return None


def shipped_model_path(choice: str) -> str | None:
    """The file of a shipped model picked in the loader's list, or None for a ComfyUI file.

    Raises ``ModelNotFoundError`` for a shipped name that is not (or no longer) in ``weights/``.
    """
    name = shipped_model_name(choice)
    if name is None:
        return None
    shipped = zoo.list_shipped_models()
    for model in shipped:
        if model.name == name:  # a name only: a workflow never reaches a file outside weights/
            return str(model.path)
    listing = ", ".join(SHIPPED_PREFIX + m.name for m in shipped) or "none"
    raise ModelNotFoundError(
        f"{choice!r}: no such model ships with NEXUS in {zoo.weights_dir()}; shipped: {listing}"
    )


count_parameters = parameter_count  # the name the node tests and older callers use


def model_info(descriptor: ImageModelDescriptor) -> str:
    """One line a user can read on the loader node: architecture, scale, size, precisions.

    Example: ``NEXUS x4 | 1.23M parameters | fp32, fp16, bf16 | 3 -> 3 channels``.
    """
    precisions = ["fp32"]
    if descriptor.supports_half:
        precisions.append("fp16")
    if descriptor.supports_bfloat16:
        precisions.append("bf16")
    parts = [
        f"{descriptor.architecture.name} x{descriptor.scale}",
        f"{format_count(parameter_count(descriptor))} parameters",
        ", ".join(precisions),
        f"{descriptor.input_channels} -> {descriptor.output_channels} channels",
    ]
    req = descriptor.size_requirements
    if req.minimum > 0 or req.multiple_of > 1 or req.square:
        needs = []
        if req.minimum > 0:
            needs.append(f"min {req.minimum}px")
        if req.multiple_of > 1:
            needs.append(f"multiple of {req.multiple_of}")
        if req.square:
            needs.append("square")
        parts.append("input " + ", ".join(needs))
    if descriptor.tiling is not ModelTiling.SUPPORTED:
        parts.append(f"tiling {descriptor.tiling.name.lower()}")
    return " | ".join(parts)


# --- options -----------------------------------------------------------------------------------


DEFAULT_PRESET = presets.DEFAULT_PRESET


def preset_names() -> list[str]:
    """The presets a user can pick, shipped and user-defined, the default one first."""
    names = [item if isinstance(item, str) else item.name for item in presets.list_presets()]
    if DEFAULT_PRESET in names:
        names.remove(DEFAULT_PRESET)
        names.insert(0, DEFAULT_PRESET)
    return names


def build_options(
    preset: str,
    *,
    device: str | torch.device = "cpu",
    tile: int = 0,
    overlap: int = -1,
    precision: str = PRESET,
    tta: str = PRESET,
    scale_by: float = 0.0,
    alpha_mode: str = "model",
) -> engine.UpscaleOptions:
    """Turn the node's widgets into ``UpscaleOptions``: the preset, then the overrides.

    The widgets need a value that means "no override", so: ``tile`` 0, ``overlap`` -1,
    ``precision``/``tta`` ``"preset"`` and ``scale_by`` 0 keep the preset's choice
    (``scale_by`` 0 means the model's own scale). ``device`` is ComfyUI's device; it is used
    unless the preset names a device itself (the "cpu" preset), which is the user's explicit
    choice. Raises ``PresetError`` for an unknown preset or an override core rejects (a tile
    under its minimum), ``ValueError`` for a value no widget can produce.
    """
    overrides: dict[str, Any] = {"alpha_mode": alpha_mode}
    if tile < 0:
        raise ValueError(f"tile must be 0 (preset) or a positive size, got {tile}")
    if tile > 0:
        overrides["tile"] = tile
    if overlap >= 0:
        overrides["overlap"] = overlap
    if precision != PRESET:
        if precision not in PRECISION_CHOICES:
            raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
        overrides["precision"] = precision
    if tta != PRESET:
        if tta not in TTA_CHOICES:
            raise ValueError(f"tta must be one of {TTA_CHOICES}, got {tta!r}")
        overrides["tta"] = tta == "on"
    if scale_by < 0:
        raise ValueError(f"scale_by must be 0 (the model's scale) or positive, got {scale_by}")
    if scale_by > 0:
        overrides["target_scale"] = float(scale_by)
    return presets.build_options(preset, fallback_device=str(device), **overrides)


def working_memory(
    descriptor: ImageModelDescriptor, image: torch.Tensor, tile: int | None = None
) -> int:
    """Bytes an upscale of ``image`` (B, H, W, C) needs besides the weights: the input and
    output batch and the activations of one tile.

    The activation factor is the one ComfyUI's built-in upscale node uses: a deliberate
    over-estimate, since freeing too little ends in an out-of-memory fallback that costs more
    than unloading a model.
    """
    side = tile if tile else 512
    per_tile = side * side * 3 * 4 * max(descriptor.scale, 1) * 384
    in_bytes = image.nelement() * 4
    out_bytes = in_bytes * descriptor.scale * descriptor.scale
    return int(per_tile + in_bytes + out_bytes)


def memory_estimate(
    descriptor: ImageModelDescriptor, image: torch.Tensor, tile: int | None = None
) -> int:
    """Bytes to ask ComfyUI to free before upscaling ``image``: the weights plus
    ``working_memory`` (for a model without a patcher, which model management does not count)."""
    weights = sum(p.numel() * p.element_size() for p in descriptor.model.parameters())
    return int(weights + working_memory(descriptor, image, tile))


# --- masks and alpha ---------------------------------------------------------------------------


def mask_to_alpha(mask: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """ComfyUI ``MASK`` (B, H, W) or (H, W), 1 = transparent, to alpha (batch, 1, height, width).

    A mask of another size (e.g. "Load Image"'s 64 x 64 placeholder) is resized to the image; a
    single mask is shared by the whole batch, as ComfyUI's own mask nodes do.
    """
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() != 3:
        raise ValueError(f"a MASK has shape (B, H, W) or (H, W), got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, batch):
        raise ValueError(
            f"the mask batch ({mask.shape[0]}) does not match the image batch ({batch})"
        )
    alpha = 1.0 - mask.to(device="cpu", dtype=torch.float32).unsqueeze(1)
    if alpha.shape[-2:] != (height, width):
        alpha = F.interpolate(alpha, size=(height, width), mode="bilinear", align_corners=False)
    return alpha.expand(batch, 1, height, width).clamp(0.0, 1.0)


def alpha_to_mask(alpha: torch.Tensor) -> torch.Tensor:
    """Alpha (B, 1, H, W), 1 = opaque, to a ComfyUI ``MASK`` (B, H, W), 1 = transparent."""
    return (1.0 - alpha[:, 0]).clamp(0.0, 1.0)


def _constant_per_image(alpha: torch.Tensor, batch: int) -> torch.Tensor | None:
    """alpha (B or 1, H, W) or (H, W): its value per image (batch,) if each image has one."""
    flat = alpha.reshape(-1, alpha.shape[-2] * alpha.shape[-1])
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    if low.numel() not in (1, batch):
        raise ValueError(f"the mask batch ({low.numel()}) does not match the image batch ({batch})")
    if not torch.equal(low, high):
        return None
    return low.expand(batch)


# --- upscaling ---------------------------------------------------------------------------------


def upscale_images(
    descriptor: ImageModelDescriptor,
    images: torch.Tensor,
    options: engine.UpscaleOptions,
    *,
    mask: torch.Tensor | None = None,
    progress: ProgressFn | None = None,
    cancel: engine.CancelToken | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upscale a ComfyUI ``IMAGE`` batch, and its alpha, with the core engine.

    images: (B, H, W, C) float 0..1, C = 3, or 4 with alpha in the last channel.
    mask: optional ComfyUI ``MASK`` (B or 1, h, w), 1 = transparent; it wins over a 4th channel.
    Returns ``(image, mask)``: image (B, H', W', 3) float 0..1 on the CPU and mask (B, H', W');
    without a mask or alpha channel the mask is all zeros (opaque), the size of the output. A
    mask or alpha that is one value over an image (all zero, all one, the 64 x 64 placeholder)
    is not upscaled: the output mask keeps that exact value.
    ``progress(done, total)`` is called per tile; ``cancel`` stops between tiles
    (``UpscaleCancelled``). The model is left on the device and dtype it came with.
    """
    if images.dim() != 4 or images.shape[-1] not in (3, 4):
        raise ValueError(f"an IMAGE has shape (B, H, W, 3 or 4), got {tuple(images.shape)}")
    batch, height, width, channels = images.shape
    x = images.to(device="cpu", dtype=torch.float32).movedim(-1, 1)  # (B, C, H, W)
    # A mask with nothing to say (all opaque, all transparent, "Load Image"'s placeholder for
    # an RGB file) would cost a second model pass and come back a little off its value (opaque
    # 255 saved as 254): its value is kept instead, per image, read before any resizing.
    alpha = constant = None
    if mask is not None:
        constant = _constant_per_image(1.0 - mask.to(device="cpu", dtype=torch.float32), batch)
        if constant is None:
            alpha = mask_to_alpha(mask, batch, height, width)
    elif channels == 4:
        constant = _constant_per_image(x[:, 3], batch)
        if constant is None:
            alpha = x[:, 3:4]
    rgb = x[:, :3]
    x = rgb if alpha is None else torch.cat([rgb, alpha], dim=1)

    # the engine hands the model back bit-identical, on its device and dtype (ComfyUI caches a
    # loader's output and gives the same descriptor to every node wired to it)
    out = engine.upscale_tensor(descriptor, x, options, progress=progress, cancel=cancel)
    out = out.to(device="cpu", dtype=torch.float32).clamp(0.0, 1.0)

    image = out[:, :3].movedim(1, -1).contiguous()
    if alpha is not None:
        out_mask = alpha_to_mask(out[:, 3:4])
    elif constant is not None:
        out_mask = (1.0 - constant).view(-1, 1, 1).expand(batch, *out.shape[2:]).contiguous()
    else:
        out_mask = torch.zeros(out.shape[0], out.shape[2], out.shape[3])
    return image, out_mask
