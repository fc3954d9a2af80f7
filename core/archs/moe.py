"""Top-1 token mixture of experts with real dispatch and a Switch-style balance loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Expert(nn.Module):
    """One MoE expert: a small MLP on tokens. x: (N, C) -> (N, C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TokenMoE(nn.Module):
    """Top-1 token-wise mixture of experts (Switch Transformer routing) on (B, H, W, C) tokens.

    The router runs in fp32. Each expert sees only its own tokens (``nonzero`` +
    ``index_select``, results written back with ``scatter``), scaled by the gate probability of
    the chosen expert, which is how the router gets gradients from the reconstruction loss.
    Selection is ``argmax`` (deterministic) except in training with ``explore`` on, where it
    samples with Gumbel-max (a warm-up against expert collapse).

    In training mode each forward records the Switch balance loss ``E * sum_e f_e * P_e`` and
    the token fractions in ``self.last_routing`` (a dict created once in ``__init__``), for
    :meth:`HyReSR.aux_loss`. Nothing is recorded in eval mode.
    x: (B, H, W, C) -> (B, H, W, C) (a residual update).
    """

    def __init__(self, dim: int, experts: int, hidden: int) -> None:
        super().__init__()
        if experts < 1:
            raise ValueError(f"experts must be >= 1, got {experts}")
        self.num_experts = experts
        self.norm = nn.LayerNorm(dim)
        self.router = nn.Linear(dim, experts)
        nn.init.normal_(self.router.weight, std=0.02)
        nn.init.zeros_(self.router.bias)
        self.experts = nn.ModuleList(Expert(dim, hidden) for _ in range(experts))
        self.explore = False
        self.last_routing: dict[str, Tensor] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The routing record is transient and holds the last training forward's autograd graph,
        # which deepcopy and pickle cannot take: a copy (reparameterize_model, EMA) starts empty.
        state = dict(super().__getstate__())
        state["last_routing"] = {}
        return state

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        tokens = self.norm(x).reshape(-1, shape[-1])  # (N, C)
        logits = F.linear(tokens.float(), self.router.weight.float(), self.router.bias.float())
        probs = logits.softmax(dim=-1)  # (N, E) fp32
        if self.training and self.explore:
            u = torch.rand_like(probs).clamp_(1e-9, 1.0 - 1e-9)
            choice = (probs.clamp_min(1e-9).log() - torch.log(-torch.log(u))).argmax(dim=-1)
        else:
            choice = probs.argmax(dim=-1)  # (N,)
        gate = probs.gather(1, choice[:, None]).to(tokens.dtype)  # (N, 1)
        if tokens.is_meta:
            # Shape-only runs (FLOP counting on "meta") cannot route: any top-1 dispatch costs
            # one expert pass per token, so equal chunks give the same count.
            out = torch.cat([e(t) for e, t in zip(self.experts, tokens.chunk(self.num_experts))])
            return (out * gate).view(shape)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            idx = (choice == e).nonzero().squeeze(1)  # tokens of expert e only
            y = expert(tokens.index_select(0, idx)) * gate.index_select(0, idx)
            out = out.scatter(0, idx[:, None].expand(-1, shape[-1]), y)
        if self.training:
            frac = F.one_hot(choice, self.num_experts).float().mean(dim=0)  # f_e, no gradient
            self.last_routing["aux_loss"] = self.num_experts * (frac * probs.mean(dim=0)).sum()
            self.last_routing["fractions"] = frac.detach()
        return out.view(shape)
