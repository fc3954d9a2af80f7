"""What a face tells a user about a loaded model: its size in parameters, in one format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["format_count", "parameter_count"]


def parameter_count(model: torch.nn.Module | Any) -> int:
    """The number of parameters of a module, or of the model a spandrel descriptor wraps."""
    module = getattr(model, "model", model)
    return sum(p.numel() for p in module.parameters())


def format_count(n: int) -> str:
    """A parameter count as people write it: ``870``, ``2.3K``, ``207.1K``, ``2.07M``, ``1.25B``."""
    for unit, size, digits in (("B", 1e9, 2), ("M", 1e6, 2), ("K", 1e3, 1)):
        if n >= size:
            return f"{n / size:.{digits}f}{unit}"
    return str(n)
