"""ComfyUI nodes over the core engine (ComfyUI's V3 node API).

``logic`` holds what the nodes do as plain functions (no ComfyUI import); ``nodes`` holds the
``io.ComfyNode`` classes and is imported only by ``comfy_entrypoint``, which ComfyUI calls while
it loads ``custom_nodes``. That call is also where our architectures are registered with
spandrel, so ComfyUI's own "Load Upscale Model" opens our checkpoints from then on.
"""

from __future__ import annotations

from typing import Any

__all__ = ["comfy_entrypoint"]


async def comfy_entrypoint() -> Any:
    """ComfyUI's V3 entry point: register our architectures, return the ``ComfyExtension``."""
    from ..core.detection import register_with_spandrel
    from .nodes import NexusExtension

    register_with_spandrel()
    return NexusExtension()
