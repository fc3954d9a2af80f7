"""The model architectures and their named variants.

``VARIANTS`` maps a variant name to the function that builds it; every function takes
``scale`` and keyword overrides (``nexus_medium(scale=2, window_size=8)``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .nexus import NEXUS, nexus_extreme, nexus_large, nexus_medium, nexus_small, nexus_tiny

VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "nexus_tiny": nexus_tiny,
    "nexus_small": nexus_small,
    "nexus_medium": nexus_medium,
    "nexus_large": nexus_large,
    "nexus_extreme": nexus_extreme,
}

__all__ = [
    "NEXUS",
    "VARIANTS",
    "nexus_extreme",
    "nexus_large",
    "nexus_medium",
    "nexus_small",
    "nexus_tiny",
]
