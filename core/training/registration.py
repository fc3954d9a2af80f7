"""Our variants in BasicSR-family trainers (traiNNer-redux, neosr), from one copied file.

Both trainers import every ``*_arch.py`` of their ``archs/`` folder at start-up and build
``network_g`` by looking its ``type`` up in an ``ARCH_REGISTRY`` whose ``register(obj)`` stores
``obj`` under ``obj.__name__`` (traiNNer-redux lower-cases it), then calling it with the other
options as keyword arguments. ``trainers/nexus_arch.py`` (shipped with the package) is such a
file: it calls :func:`register_for_trainer`, which adds one builder per variant of
``core.archs.VARIANTS`` under the variant's own name (``nexus_tiny``, ``hyresr_base``, ...).

The scale: traiNNer-redux passes ``scale`` (``build_network({**opt.network_g, "scale":
opt.scale})``); neosr passes nothing and its own archs read ``scale`` from the training options
with ``neosr.archs.arch_util.net_opt()``, which the builders call when neither ``scale`` nor
``upscale`` is given. List options from YAML (``depths: [6, 6, 6, 6]``) become tuples.

HyReSR's MoE balance loss: neither trainer calls ``model.aux_loss()``. The HyReSR builders take
``moe_balance_weight`` (default 0.01, as ``nexus-train``; 0 turns it off) and give the model a
forward hook that, in training mode, passes the output through :class:`AddAuxGradient`: the
output is unchanged, and the backward pass that starts from any loss on it also sends
``moe_balance_weight`` into the balance loss, so the routers get the gradient of
``loss + weight * aux_loss`` without the trainer knowing. The state dict is untouched (the
hook is no module), so what the trainer saves loads through spandrel like our own files.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = [
    "AddAuxGradient",
    "BalanceLossHook",
    "builders",
    "register_architectures",
    "register_for_trainer",
]

#: the weight ``nexus-train`` gives the balance loss (``[train] moe_balance_weight``)
DEFAULT_MOE_BALANCE_WEIGHT = 0.01


class _Registry(Protocol):
    def register(self, obj: Any = None, suffix: str | None = None) -> Any: ...


class AddAuxGradient(torch.autograd.Function):
    """``y = x`` forward; backward also returns ``weight`` as the gradient of ``aux``.

    So ``loss(y).backward()`` leaves the same gradients as ``(loss(y) + weight * aux)
    .backward()`` would: the auxiliary loss reaches the parameters it depends on through
    whatever loss the caller builds on ``y``.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, aux: Tensor, weight: float) -> Tensor:  # type: ignore[override]
        ctx.weight = weight
        ctx.aux_meta = (aux.shape, aux.dtype, aux.device)
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        shape, dtype, device = ctx.aux_meta
        return grad, torch.full(shape, ctx.weight, dtype=dtype, device=device), None


class BalanceLossHook:
    """A forward hook for HyReSR: in training with gradients on, the output carries the MoE
    balance loss of this forward into the backward pass (see :class:`AddAuxGradient`).

    A plain object holding only the weight, so ``copy.deepcopy`` of the model (an EMA copy)
    keeps a working hook.
    """

    def __init__(self, weight: float) -> None:
        self.weight = float(weight)

    def __call__(self, module: nn.Module, args: Any, output: Tensor) -> Tensor | None:
        if not (module.training and torch.is_grad_enabled() and output.requires_grad):
            return None
        aux = module.aux_loss()  # type: ignore[operator]
        if not aux.requires_grad:
            return None
        return AddAuxGradient.apply(output, aux, self.weight)


def _builder(
    name: str,
    variant: Callable[..., nn.Module],
    default_scale: int,
    scale_source: Callable[[], int | None] | None,
) -> Callable[..., nn.Module]:
    has_experts = name.startswith("hyresr")

    def build(scale: int | None = None, upscale: int | None = None, **options: Any) -> nn.Module:
        weight = DEFAULT_MOE_BALANCE_WEIGHT
        if has_experts:
            weight = float(options.pop("moe_balance_weight", weight))
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        scale = scale or upscale or (scale_source() if scale_source else None) or default_scale
        model = variant(scale=int(scale), **opts)
        if has_experts and weight > 0 and model.moe_layers():  # type: ignore[operator]
            model.register_forward_hook(BalanceLossHook(weight))
        return model

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"{name} from nexus_upscaler (scale from `scale`, `upscale`, the trainer, else "
        f"{default_scale})" + ("; `moe_balance_weight` (default 0.01)." if has_experts else ".")
    )
    return build


def builders(
    default_scale: int = 4, scale_source: Callable[[], int | None] | None = None
) -> dict[str, Callable[..., nn.Module]]:
    """``{variant name: builder}`` for every variant, each accepting ``scale``/``upscale``;
    ``scale_source`` is asked when neither is given (neosr's ``net_opt``)."""
    from ..archs import VARIANTS

    return {name: _builder(name, fn, default_scale, scale_source) for name, fn in VARIANTS.items()}


def register_architectures(
    registry: _Registry,
    default_scale: int = 4,
    scale_source: Callable[[], int | None] | None = None,
) -> list[str]:
    """Register every variant in a BasicSR-style ``registry``; returns the names registered.

    Names the registry already holds are left alone, so calling this twice is harmless.
    """
    keys = registry.keys() if hasattr(registry, "keys") else ()
    done = []
    for name, build in builders(default_scale, scale_source).items():
        if name in keys:
            continue
        registry.register(build)
        done.append(name)
    return done


# The trainers a drop-in file knows, by the top-level package it is imported from.
_TRAINERS = {
    "traiNNer": "traiNNer-redux (copy it into traiNNer/archs/)",
    "neosr": "neosr (copy it into neosr/archs/)",
}


def _neosr_scale() -> int | None:
    # neosr's own archs call this at import; it parses the training options of this run.
    net_opt = importlib.import_module("neosr.archs.arch_util").net_opt
    return int(net_opt()[0])


def register_for_trainer(module_name: str) -> list[str]:
    """What ``trainers/nexus_arch.py`` runs: register every variant in the ``ARCH_REGISTRY``
    of the trainer that imported the file (``module_name`` is its ``__name__``, e.g.
    ``traiNNer.archs.nexus_arch``). Returns the names registered."""
    trainer = module_name.split(".")[0]
    if trainer not in _TRAINERS:
        raise ImportError(
            f"nexus_arch.py was imported as {module_name!r}: it is a drop-in for "
            + " or ".join(_TRAINERS.values())
        )
    registry = importlib.import_module(f"{trainer}.utils.registry").ARCH_REGISTRY
    return register_architectures(
        registry, scale_source=_neosr_scale if trainer == "neosr" else None
    )
