"""NEXUS Upscaler: the pip package ``nexus_upscaler`` and a ComfyUI custom-node folder.

ComfyUI imports this file from ``custom_nodes/<any folder name>/``; pip installs it as
``nexus_upscaler``. Everything here is cheap: ComfyUI's modules are imported only inside
``comfy_entrypoint``, PySide6 only by ``gui``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "comfy_entrypoint"]


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: returns our ``ComfyExtension``."""
    from .comfy_nodes import comfy_entrypoint as _entrypoint

    return await _entrypoint()
