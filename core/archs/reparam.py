"""Re-parameterizable convolutions (RepVGG / PLKSR style) and the walker that fuses a model.

Each block trains with several branches and has an idempotent ``reparameterize()`` that folds
them into one conv under new key names (``conv_fused``), so a fused checkpoint is never mistaken
for an unfused one. ``reparameterize_model`` converts a whole model, on a copy by default;
``inference_form`` is what inference runs: that copy, made once per model and kept while the
model's weights stay the same.
"""

from __future__ import annotations

import copy
import threading
import weakref
from itertools import chain

import torch
from torch import Tensor, nn


class RepConv(nn.Module):
    """3x3 conv with a parallel 1x1 conv (and identity when in == out) during training.

    ``reparameterize()`` folds the branches into ``conv_fused`` (a plain 3x3 conv) and deletes
    them; the fused key name differs so the two forms cannot be confused on load.
    x: (B, C_in, H, W) -> (B, C_out, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, *, deploy: bool = False) -> None:
        super().__init__()
        self.in_ch, self.out_ch = in_ch, out_ch
        self.has_identity = in_ch == out_ch
        if deploy:
            self.conv_fused = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        else:
            self.conv3x3 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
            self.conv1x1 = nn.Conv2d(in_ch, out_ch, 1)

    @property
    def deployed(self) -> bool:
        return hasattr(self, "conv_fused")

    def forward(self, x: Tensor) -> Tensor:
        if self.deployed:
            return self.conv_fused(x)
        y = self.conv3x3(x) + self.conv1x1(x)
        return y + x if self.has_identity else y

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the branches into one 3x3 conv (idempotent)."""
        if self.deployed:
            return
        w = self.conv3x3.weight.detach().clone()
        b = self.conv3x3.bias.detach() + self.conv1x1.bias.detach()
        w[:, :, 1, 1] += self.conv1x1.weight[:, :, 0, 0]
        if self.has_identity:
            w[:, :, 1, 1] += torch.eye(self.out_ch, dtype=w.dtype, device=w.device)
        fused = nn.Conv2d(self.in_ch, self.out_ch, 3, padding=1).to(w.device, w.dtype)
        fused.weight.copy_(w)
        fused.bias.copy_(b)
        del self.conv3x3, self.conv1x1
        self.conv_fused = fused


class PLKConv(nn.Module):
    """PLK-style partial large-kernel conv (PLKSR) with identity and a 3x3 branch.

    The first ``plk_ch`` channels go through ``x1 + large(x1) + small(x1)``; the rest pass
    unchanged (concatenated, never written in place). ``reparameterize()`` folds the three into
    ``conv_fused`` (kernel x kernel). x: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int, plk_ch: int, kernel: int, *, deploy: bool = False) -> None:
        super().__init__()
        if kernel % 2 == 0 or kernel < 3:
            raise ValueError(f"plk_kernel must be odd and >= 3, got {kernel}")
        if not 0 < plk_ch <= dim:
            raise ValueError(f"plk channels {plk_ch} must be in [1, {dim}]")
        self.plk_ch, self.kernel = plk_ch, kernel
        if deploy:
            self.conv_fused = nn.Conv2d(plk_ch, plk_ch, kernel, padding=kernel // 2)
        else:
            self.conv_large = nn.Conv2d(plk_ch, plk_ch, kernel, padding=kernel // 2)
            self.conv_small = nn.Conv2d(plk_ch, plk_ch, 3, padding=1)
            # Start close to the identity: the large kernel is small at init.
            nn.init.normal_(self.conv_large.weight, std=0.02 / kernel)

    @property
    def deployed(self) -> bool:
        return hasattr(self, "conv_fused")

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x[:, : self.plk_ch], x[:, self.plk_ch :]
        if self.deployed:
            y1 = self.conv_fused(x1)
        else:
            y1 = x1 + self.conv_large(x1) + self.conv_small(x1)
        return torch.cat((y1, x2), dim=1)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold identity, 3x3 and large branches into one conv (idempotent)."""
        if self.deployed:
            return
        k, c, mid = self.kernel, self.plk_ch, self.kernel // 2
        w = self.conv_large.weight.detach().clone()
        w[:, :, mid - 1 : mid + 2, mid - 1 : mid + 2] += self.conv_small.weight
        w[:, :, mid, mid] += torch.eye(c, dtype=w.dtype, device=w.device)
        b = self.conv_large.bias.detach() + self.conv_small.bias.detach()
        fused = nn.Conv2d(c, c, k, padding=mid).to(w.device, w.dtype)
        fused.weight.copy_(w)
        fused.bias.copy_(b)
        del self.conv_large, self.conv_small
        self.conv_fused = fused


def reparameterize_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every re-parameterizable block of ``model`` into its single-conv deploy form.

    With ``inplace=False`` (default) the model is deep-copied first. Idempotent.
    """
    target = model if inplace else copy.deepcopy(model)
    for module in list(target.modules()):
        if isinstance(module, (RepConv, PLKConv)):
            module.reparameterize()
    return target


_DEPLOY_COPIES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = (
    weakref.WeakKeyDictionary()
)
_DEPLOY_LOCK = threading.Lock()


def _weights_key(model: nn.Module) -> tuple:
    """Changes whenever a weight of ``model`` is replaced, moved, cast or written in place."""
    key = []
    for t in chain(model.parameters(), model.buffers()):
        try:
            version = t._version
        except RuntimeError:  # an inference tensor (made under inference_mode) has no counter
            version = -1
        key.append((t.data_ptr(), version, t.dtype, t.device))
    return tuple(key)


def inference_form(model: nn.Module) -> nn.Module:
    """The module inference should run: ``model`` itself, unless it has re-parameterizable
    blocks still in their training form; then its deploy form, fused on a copy (in float32,
    then cast back) once, and kept for as long as ``model`` lives and its weights stay the same.

    The caller's model is never changed (it stays loadable, trainable and savable as it is).
    """
    if not any(isinstance(m, (RepConv, PLKConv)) and not m.deployed for m in model.modules()):
        return model
    key = _weights_key(model)
    with _DEPLOY_LOCK:
        cached = _DEPLOY_COPIES.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    fused = copy.deepcopy(model)
    if dtype != torch.float32:
        fused.float()
    reparameterize_model(fused, inplace=True).to(dtype)
    fused.train(model.training)
    with _DEPLOY_LOCK:
        _DEPLOY_COPIES[model] = (key, fused)
    return fused
