"""``CosineAnnealingRestartLR``: cosine annealing over consecutive periods with restarts.

The schedule BasicSR-family trainers use: the iterations are split into ``periods``; in period
``i`` the learning rate follows a cosine from ``restart_weights[i] * base_lr`` down to
``eta_min``. After the last period the rate stays at ``eta_min``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["CosineAnnealingRestartLR"]


class CosineAnnealingRestartLR(LRScheduler):
    def __init__(
        self,
        optimizer: Optimizer,
        periods: Sequence[int],
        restart_weights: Sequence[float] | None = None,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if not periods or any(p < 1 for p in periods):
            raise ValueError(f"periods must be positive integers, got {list(periods)}")
        weights = [1.0] * len(periods) if not restart_weights else list(restart_weights)
        if len(weights) != len(periods):
            raise ValueError("restart_weights needs one weight per period")
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in weights]
        self.eta_min = float(eta_min)
        self.cumulative = [sum(self.periods[: i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, step: int) -> float:
        """The learning rate at iteration ``step`` for a group whose base rate is ``base_lr``."""
        if step >= self.cumulative[-1]:
            return self.eta_min
        i = next(k for k, end in enumerate(self.cumulative) if step < end)
        start = self.cumulative[i - 1] if i else 0
        progress = (step - start) / self.periods[i]
        amplitude = self.restart_weights[i] * (base_lr - self.eta_min)
        return self.eta_min + 0.5 * amplitude * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:  # closed form, so resuming needs only last_epoch
        return [self.lr_at(base, self.last_epoch) for base in self.base_lrs]
