"""spandrel detectors for NEXUS and HyReSR-MoE, and ``register_with_spandrel()``.

Each detector reads every hyperparameter back from the state dict alone (shapes, counts of
repeated keys, which keys exist, small persistent buffers), so a file written by anyone's
``torch.save(model.state_dict())`` loads in ComfyUI, chaiNNer or spandrel without a config.
"""

from __future__ import annotations

import spandrel

__all__ = ["ARCHITECTURES", "register_with_spandrel", "variant_of"]

#: our ``spandrel.Architecture`` instances, in the order they are registered
ARCHITECTURES: tuple[spandrel.Architecture, ...] = ()


def register_with_spandrel(registry: spandrel.ArchRegistry | None = None) -> None:
    """Add our architectures to ``spandrel.MAIN_REGISTRY`` (or ``registry``).

    Harmless when called again, or after another copy of this package registered the same ids:
    an id already present is left as it is.
    """
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    registry.add(
        *(spandrel.ArchSupport.from_architecture(a) for a in ARCHITECTURES),
        ignore_duplicates=True,
    )


def variant_of(descriptor: spandrel.ModelDescriptor) -> str:
    """The variant name of a loaded model (e.g. ``"nexus_tiny"``), or ``""`` if it has none.

    Our detectors put the variant name first in ``tags``; other architectures' tags are sizes.
    """
    if descriptor.architecture in ARCHITECTURES and descriptor.tags:
        return descriptor.tags[0]
    return ""
