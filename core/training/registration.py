"""Register our architectures in BasicSR-family trainers (traiNNer-redux, neosr).

Those trainers build ``network_g`` by looking ``type`` up in an ``ARCH_REGISTRY`` whose
``register(obj)`` stores ``obj`` under ``obj.__name__``, then call it with the remaining options
as keyword arguments. ``register_architectures`` adds one builder per variant of
``core.archs.VARIANTS`` under the variant's own name (``nexus_tiny``, ``hyresr_base``, ...).

traiNNer-redux passes ``scale``; neosr's own archs read the scale from its options instead, so
the builders also accept ``upscale`` and fall back to ``default_scale``. List options from YAML
(``depths: [6, 6, 6, 6]``) become tuples. Nothing of either trainer is imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from torch import nn

__all__ = ["register_architectures", "builders"]


class _Registry(Protocol):
    def register(self, obj: Any = None, suffix: str | None = None) -> Any: ...


def _builder(
    name: str, variant: Callable[..., nn.Module], default_scale: int
) -> Callable[..., nn.Module]:
    def build(scale: int | None = None, upscale: int | None = None, **options: Any) -> nn.Module:
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        return variant(scale=scale or upscale or default_scale, **opts)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"{name} from nexus_upscaler (scale from `scale`, `upscale` or {default_scale})."
    )
    return build


def builders(default_scale: int = 4) -> dict[str, Callable[..., nn.Module]]:
    """``{variant name: builder}`` for every variant, each accepting ``scale``/``upscale``."""
    from ..archs import VARIANTS

    return {name: _builder(name, fn, default_scale) for name, fn in VARIANTS.items()}


def register_architectures(registry: _Registry, default_scale: int = 4) -> list[str]:
    """Register every variant in a BasicSR-style ``registry``; returns the names registered.

    Names the registry already holds are left alone, so calling this twice is harmless.
    """
    keys = registry.keys() if hasattr(registry, "keys") else ()
    done = []
    for name, build in builders(default_scale).items():
        if name in keys:
            continue
        registry.register(build)
        done.append(name)
    return done
