"""The model architectures and their named variants.

``VARIANTS`` maps a variant name to the function that builds it; every function takes
``scale`` and keyword overrides (``nexus_medium(scale=2, window_size=8)``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .hyresr import (
    HyReSR,
    hyresr_base,
    hyresr_restoration_heavy,
    hyresr_sr_heavy,
    hyresr_tiny,
    reparameterize_model,
)
from .nexus import NEXUS, nexus_extreme, nexus_large, nexus_medium, nexus_small, nexus_tiny

VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "nexus_tiny": nexus_tiny,
    "nexus_small": nexus_small,
    "nexus_medium": nexus_medium,
    "nexus_large": nexus_large,
    "nexus_extreme": nexus_extreme,
    "hyresr_tiny": hyresr_tiny,
    "hyresr_base": hyresr_base,
    "hyresr_sr_heavy": hyresr_sr_heavy,
    "hyresr_restoration_heavy": hyresr_restoration_heavy,
}

__all__ = [
    "HyReSR",
    "NEXUS",
    "VARIANTS",
    "hyresr_base",
    "hyresr_restoration_heavy",
    "hyresr_sr_heavy",
    "hyresr_tiny",
    "nexus_extreme",
    "nexus_large",
    "nexus_medium",
    "nexus_small",
    "nexus_tiny",
    "reparameterize_model",
]
