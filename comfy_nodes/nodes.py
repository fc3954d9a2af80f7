"""The ComfyUI V3 nodes: thin adapters from ComfyUI to ``logic``.

Imported only by ``comfy_entrypoint`` inside a running ComfyUI (it needs ``comfy``,
``comfy_api`` and ``folder_paths``). The inputs and outputs reuse ComfyUI's own
``UPSCALE_MODEL``, ``IMAGE`` and ``MASK`` types, so these nodes connect to the built-in
"Load Upscale Model" and "Upscale Image (using Model)" both ways.
"""

from __future__ import annotations

from typing import Any

import folder_paths
import torch
from comfy_api.v0_0_2 import ComfyExtension, io
from spandrel import ImageModelDescriptor

from ..core.errors import ModelNotFoundError
from . import logic, management

CATEGORY = "image/upscaling/NEXUS"

UPSCALE_MODEL_TOOLTIP = (
    "An upscale model from a loader: NEXUS Load Upscale Model or ComfyUI's Load Upscale Model."
)


class NEXUSUpscaleModelLoader(io.ComfyNode):
    """Load a shipped model or one from ``models/upscale_models`` and tell what it is."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NEXUSUpscaleModelLoader",
            display_name="NEXUS Load Upscale Model",
            category=CATEGORY,
            description=(
                "Loads a model shipped with NEXUS Upscaler (NEXUS/...), or a NEXUS, HyReSR-MoE "
                "or any spandrel upscale model from models/upscale_models. The output is "
                "ComfyUI's UPSCALE_MODEL, usable by the built-in upscale node too."
            ),
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=logic.model_choices(folder_paths.get_filename_list("upscale_models")),
                    tooltip="NEXUS/... are the models shipped with NEXUS Upscaler, the "
                    "recommended one first (hyresr-real-*, where shipped, also clean JPEG blocks "
                    "and noise). The others are the files in models/upscale_models.",
                ),
            ],
            outputs=[
                io.UpscaleModel.Output(
                    display_name="upscale_model",
                    tooltip="The loaded model, for the NEXUS upscale nodes or ComfyUI's "
                    "Upscale Image (using Model).",
                ),
                io.String.Output(
                    display_name="info",
                    tooltip="What the model is: architecture, scale, parameters, precisions, "
                    "channels, e.g. 'NEXUS x4 | 1.23M parameters | fp32, fp16, bf16 | 3 -> 3 "
                    "channels'.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, model_name: str) -> bool | str:
        # Replaces ComfyUI's "value not in list" check for model_name, so that workflows saved
        # with the old "<name> (shipped with NEXUS)" spelling still run.
        try:
            if logic.shipped_model_path(model_name) is not None:
                return True
        except ModelNotFoundError as e:
            return str(e)
        if model_name in folder_paths.get_filename_list("upscale_models"):
            return True
        return f"model_name: {model_name!r} is not in models/upscale_models"

    @classmethod
    def execute(cls, model_name: str) -> io.NodeOutput:
        path = logic.shipped_model_path(model_name) or folder_paths.get_full_path_or_raise(
            "upscale_models", model_name
        )
        descriptor = management.load_upscale_model(path)
        return io.NodeOutput(descriptor, logic.model_info(descriptor))


def _upscale_inputs(preset_names: list[str]) -> list[io.Input]:
    return [
        io.UpscaleModel.Input("upscale_model", tooltip=UPSCALE_MODEL_TOOLTIP),
        io.Image.Input("image", tooltip="The images to upscale (a batch is fine)."),
        io.Combo.Input(
            "preset",
            options=preset_names,
            default=preset_names[0] if preset_names else None,
            tooltip="Tile size, overlap, precision and TTA as a named bundle: balanced (the "
            "default), fast, quality (TTA, 8x slower), low-memory, cpu. The inputs below "
            "override single values.",
        ),
    ]


def _override_inputs() -> list[io.Input]:
    return [
        io.Int.Input(
            "tile",
            default=0,
            min=0,
            max=8192,
            step=8,
            optional=True,
            tooltip="Tile size in input pixels. 0 = the preset's (automatic: as large as memory "
            "allows). Smaller tiles use less memory.",
        ),
        io.Int.Input(
            "overlap",
            default=-1,
            min=-1,
            max=512,
            step=1,
            optional=True,
            tooltip="Overlap between tiles in input pixels, blended so no seams show. "
            "-1 = the preset's (32 for balanced).",
        ),
        io.Combo.Input(
            "precision",
            options=logic.PRECISION_CHOICES,
            default=logic.PRESET,
            optional=True,
            tooltip="Compute precision. preset = the preset's; auto = fp16/bf16 where the model "
            "and GPU allow, else fp32.",
        ),
        io.Combo.Input(
            "tta",
            options=logic.TTA_CHOICES,
            default=logic.PRESET,
            optional=True,
            tooltip="Test-time augmentation: 8 flips/rotations averaged, slightly better, 8x "
            "slower. preset = the preset's.",
        ),
    ]


def _alpha_inputs() -> list[io.Input]:
    return [
        io.Mask.Input(
            "mask",
            optional=True,
            tooltip="Alpha as a ComfyUI mask (1 = transparent, as Load Image gives it); it is "
            "upscaled with the image and comes out as the mask output. A mask that is one "
            "value everywhere (an RGB file's) is passed through without a model pass.",
        ),
        io.Combo.Input(
            "alpha_mode",
            options=logic.ALPHA_CHOICES,
            default="model",
            optional=True,
            tooltip="How the mask is upscaled: model = by the model (sharp edges), resize = "
            "by plain interpolation (faster).",
        ),
    ]


def _outputs() -> list[io.Output]:
    return [
        io.Image.Output(display_name="image", tooltip="The upscaled images (RGB)."),
        io.Mask.Output(
            display_name="mask",
            tooltip="The upscaled mask (1 = transparent), the size of the image; all 0 "
            "(opaque) when no mask came in. Join Image with Alpha makes an RGBA image of both.",
        ),
    ]


def _run(
    upscale_model: ImageModelDescriptor,
    image: torch.Tensor,
    mask: torch.Tensor | None,
    **option_widgets: object,
) -> io.NodeOutput:
    """Shared body of both upscale nodes (``management.upscale``)."""
    return io.NodeOutput(*management.upscale(upscale_model, image, mask, **option_widgets))


class NEXUSUpscaleImage(io.ComfyNode):
    """Tiled upscale with presets, overrides, alpha and an optional output scale."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NEXUSUpscaleImage",
            display_name="NEXUS Upscale Image (tiled)",
            category=CATEGORY,
            description=(
                "Seamless tiled upscale with any UPSCALE_MODEL: presets, tile/overlap/precision/"
                "TTA overrides, out-of-memory fallback, alpha through the mask input/output, "
                "and an optional output scale (scale_by 0 = the model's own)."
            ),
            inputs=[
                *_upscale_inputs(logic.preset_names()),
                io.Float.Input(
                    "scale_by",
                    default=0.0,
                    min=0.0,
                    max=16.0,
                    step=0.05,
                    optional=True,
                    tooltip="Output size as a multiple of the input. 0 = the model's own scale "
                    "(x4 for a x4 model); another value runs the model, then resizes.",
                ),
                *_override_inputs(),
                *_alpha_inputs(),
            ],
            outputs=_outputs(),
        )

    @classmethod
    def execute(
        cls,
        upscale_model: ImageModelDescriptor,
        image: torch.Tensor,
        preset: str,
        scale_by: float = 0.0,
        mask: torch.Tensor | None = None,
        **overrides: Any,
    ) -> io.NodeOutput:
        """``overrides``: the optional widgets (``_override_inputs``, ``alpha_mode``); their
        defaults, which keep the preset's choice, are ``logic.build_options``'s."""
        return _run(upscale_model, image, mask, preset=preset, scale_by=scale_by, **overrides)


class NEXUSUpscaleImageBy(io.ComfyNode):
    """Upscale by a chosen factor (x1.5, x2 with a x4 model, ...)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NEXUSUpscaleImageBy",
            display_name="NEXUS Upscale Image By Factor",
            category=CATEGORY,
            description=(
                "Runs the model at its own scale, then resizes to the chosen factor "
                "(e.g. x2 with a x4 model), with the same tiling, presets and alpha handling."
            ),
            inputs=[
                *_upscale_inputs(logic.preset_names()),
                io.Float.Input(
                    "factor",
                    default=2.0,
                    min=0.25,
                    max=16.0,
                    step=0.05,
                    tooltip="Output size as a multiple of the input, e.g. 2 with a x4 model: "
                    "the model runs at its own scale, then the result is resized.",
                ),
                *_override_inputs(),
                *_alpha_inputs(),
            ],
            outputs=_outputs(),
        )

    @classmethod
    def execute(
        cls,
        upscale_model: ImageModelDescriptor,
        image: torch.Tensor,
        preset: str,
        factor: float,
        mask: torch.Tensor | None = None,
        **overrides: Any,
    ) -> io.NodeOutput:
        """As ``NEXUSUpscaleImage.execute``, with ``factor`` for ``scale_by``."""
        return _run(upscale_model, image, mask, preset=preset, scale_by=factor, **overrides)


NODES: list[type[io.ComfyNode]] = [NEXUSUpscaleModelLoader, NEXUSUpscaleImage, NEXUSUpscaleImageBy]


class NexusExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
