"""The ComfyUI V3 nodes: thin adapters from ComfyUI to ``logic``.

Imported only by ``comfy_entrypoint`` inside a running ComfyUI (it needs ``comfy``,
``comfy_api`` and ``folder_paths``). The inputs and outputs reuse ComfyUI's own
``UPSCALE_MODEL``, ``IMAGE`` and ``MASK`` types, so these nodes connect to the built-in
"Load Upscale Model" and "Upscale Image (using Model)" both ways.
"""

from __future__ import annotations

import comfy.model_management as model_management
import comfy.utils
import folder_paths
import torch
from comfy_api.v0_0_2 import ComfyExtension, io
from spandrel import ImageModelDescriptor

from . import logic

CATEGORY = "image/upscaling/NEXUS"


class NEXUSUpscaleModelLoader(io.ComfyNode):
    """Load a model from ``models/upscale_models`` and tell what it is."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="NEXUSUpscaleModelLoader",
            display_name="NEXUS Load Upscale Model",
            category=CATEGORY,
            description=(
                "Loads a model shipped with NEXUS Upscaler, or a NEXUS, HyReSR-MoE or any spandrel "
                "upscale model from models/upscale_models. The output is ComfyUI's UPSCALE_MODEL, usable by the "
                "built-in upscale node too; info names the architecture, scale, size and "
                "precisions."
            ),
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=logic.model_choices(folder_paths.get_filename_list("upscale_models")),
                ),
            ],
            outputs=[
                io.UpscaleModel.Output(display_name="upscale_model"),
                io.String.Output(display_name="info"),
            ],
        )

    @classmethod
    def execute(cls, model_name: str) -> io.NodeOutput:
        path = logic.shipped_model_path(model_name) or folder_paths.get_full_path_or_raise(
            "upscale_models", model_name
        )
        descriptor = logic.load_upscale_model(path)
        return io.NodeOutput(descriptor, logic.model_info(descriptor))


def _upscale_inputs(preset_names: list[str]) -> list[io.Input]:
    return [
        io.UpscaleModel.Input("upscale_model"),
        io.Image.Input("image"),
        io.Combo.Input(
            "preset",
            options=preset_names,
            default=preset_names[0] if preset_names else None,
            tooltip="Tile size, overlap, precision and TTA as a named bundle (core presets).",
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
            tooltip="Tile size in input pixels; 0 keeps the preset's (automatic by default).",
        ),
        io.Int.Input(
            "overlap",
            default=-1,
            min=-1,
            max=512,
            step=1,
            optional=True,
            tooltip="Overlap between tiles in input pixels; -1 keeps the preset's.",
        ),
        io.Combo.Input(
            "precision",
            options=logic.PRECISION_CHOICES,
            default=logic.PRESET,
            optional=True,
            tooltip="Compute precision; 'auto' picks fp16/bf16 where the model and device allow.",
        ),
        io.Combo.Input(
            "tta",
            options=logic.TTA_CHOICES,
            default=logic.PRESET,
            optional=True,
            tooltip="Test-time augmentation (8 flips/rotations averaged): better, 8x slower.",
        ),
    ]


def _alpha_inputs() -> list[io.Input]:
    return [
        io.Mask.Input(
            "mask",
            optional=True,
            tooltip="Alpha as a ComfyUI mask (1 = transparent, as 'Load Image' gives it); it "
            "is upscaled with the image and comes out as the mask output.",
        ),
        io.Combo.Input(
            "alpha_mode",
            options=logic.ALPHA_CHOICES,
            default="model",
            optional=True,
            tooltip="How the mask is upscaled: by the model (sharp edges) or by resizing.",
        ),
    ]


def _outputs() -> list[io.Output]:
    return [
        io.Image.Output(display_name="image"),
        io.Mask.Output(display_name="mask"),
    ]


def _run(
    upscale_model: ImageModelDescriptor,
    image: torch.Tensor,
    mask: torch.Tensor | None,
    **option_widgets: object,
) -> io.NodeOutput:
    """Shared body of both upscale nodes: free memory, run the engine, tick the progress bar."""
    device = model_management.get_torch_device()
    options = logic.build_options(device=device, **option_widgets)  # type: ignore[arg-type]
    model_management.free_memory(logic.memory_estimate(upscale_model, image, options.tile), device)
    model_management.throw_exception_if_processing_interrupted()
    pbar = comfy.utils.ProgressBar(1)

    def progress(done: int, total: int) -> None:
        # Raises ComfyUI's InterruptProcessingException when the user pressed Cancel; it passes
        # through the engine untouched, so ComfyUI reports the prompt as interrupted.
        model_management.throw_exception_if_processing_interrupted()
        pbar.update_absolute(done, total)

    out_image, out_mask = logic.upscale_images(
        upscale_model, image, options, mask=mask, progress=progress
    )
    model_management.soft_empty_cache()
    return io.NodeOutput(
        out_image.to(model_management.intermediate_device()),
        out_mask.to(model_management.intermediate_device()),
    )


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
                    tooltip="Output size as a multiple of the input; 0 = the model's scale.",
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
        tile: int = 0,
        overlap: int = -1,
        precision: str = logic.PRESET,
        tta: str = logic.PRESET,
        mask: torch.Tensor | None = None,
        alpha_mode: str = "model",
    ) -> io.NodeOutput:
        return _run(
            upscale_model,
            image,
            mask,
            preset=preset,
            scale_by=scale_by,
            tile=tile,
            overlap=overlap,
            precision=precision,
            tta=tta,
            alpha_mode=alpha_mode,
        )


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
                io.Float.Input("factor", default=2.0, min=0.25, max=16.0, step=0.05),
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
        tile: int = 0,
        overlap: int = -1,
        precision: str = logic.PRESET,
        tta: str = logic.PRESET,
        mask: torch.Tensor | None = None,
        alpha_mode: str = "model",
    ) -> io.NodeOutput:
        return _run(
            upscale_model,
            image,
            mask,
            preset=preset,
            scale_by=factor,
            tile=tile,
            overlap=overlap,
            precision=precision,
            tta=tta,
            alpha_mode=alpha_mode,
        )


NODES: list[type[io.ComfyNode]] = [NEXUSUpscaleModelLoader, NEXUSUpscaleImage, NEXUSUpscaleImageBy]


class NexusExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
