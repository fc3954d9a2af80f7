"""Losses: L1 / Charbonnier, VGG19 perceptual, vanilla GAN.

The perceptual loss needs VGG19 weights from a file the user names (nothing is downloaded): the
network is torchvision's ``vgg19`` architecture built with ``weights=None``, then the user's
state dict is loaded with ``torch.load(weights_only=True)`` (or from safetensors).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = [
    "L1Loss",
    "CharbonnierLoss",
    "PerceptualLoss",
    "VanillaGANLoss",
    "VGG19_LAYERS",
]


class L1Loss(nn.Module):
    """Mean absolute error. pred, target: (B, C, H, W) -> 0-d."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(pred, target)


class CharbonnierLoss(nn.Module):
    """``mean(sqrt((pred - target)^2 + eps^2))``: L1 that is smooth at zero."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


def _vgg19_layer_names() -> list[str]:
    """Names of ``torchvision.models.vgg19().features`` children: conv1_1, relu1_1, ... pool5."""
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


VGG19_LAYERS = _vgg19_layer_names()


def _read_vgg_state_dict(path: Path) -> dict[str, Tensor]:
    where = "train.perceptual_opt.vgg_weights"
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: field '{where}': file not found") from exc
    except Exception as exc:  # any unreadable or unsafe file is a config problem for the user
        raise ConfigError(f"{path}: field '{where}': cannot read VGG19 weights ({exc})") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ConfigError(f"{path}: field '{where}': not a state dict")
    return sd


class PerceptualLoss(nn.Module):
    """Weighted distance of VGG19 feature maps (pre-activation ``convX_Y`` or ``reluX_Y``).

    pred, target: (B, 3, H, W) in [0, 1] -> 0-d. The VGG is frozen and in eval mode; inputs are
    normalised with the ImageNet mean/std when ``use_input_norm``.
    """

    def __init__(
        self,
        vgg_weights: str | Path,
        layer_weights: dict[str, float],
        perceptual_weight: float = 1.0,
        criterion: str = "l1",
        use_input_norm: bool = True,
    ) -> None:
        super().__init__()
        from torchvision.models import vgg19

        for name in layer_weights:
            if name not in VGG19_LAYERS:
                raise ConfigError(
                    f"field 'train.perceptual_opt.layer_weights.{name}': unknown VGG19 layer "
                    f"(use names such as conv3_4 or relu5_4)"
                )
        path = Path(vgg_weights)
        sd = _read_vgg_state_dict(path)
        # Accept a whole vgg19 state dict ("features.N.weight", "classifier...") or the features.
        feats = {
            k.removeprefix("features."): v for k, v in sd.items() if not k.startswith("classifier.")
        }
        # Built on the meta device: no time spent initialising 143M weights we overwrite.
        with torch.device("meta"):
            features = vgg19(weights=None).features
        try:
            features.load_state_dict(feats, strict=True, assign=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(
                f"{path}: field 'train.perceptual_opt.vgg_weights': not torchvision VGG19 "
                f"weights ({first})"
            ) from exc
        last = max(VGG19_LAYERS.index(n) for n in layer_weights)
        self.features = features[: last + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.taps = {VGG19_LAYERS.index(n): w for n, w in layer_weights.items()}
        self.perceptual_weight = perceptual_weight
        self.criterion = F.l1_loss if criterion == "l1" else F.mse_loss
        self.use_input_norm = use_input_norm
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # always eval: the VGG is a fixed feature extractor
        return self

    def _taps(self, x: Tensor) -> dict[int, Tensor]:
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out[i] = x
        return out

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        fp = self._taps(pred)
        with torch.no_grad():
            ft = self._taps(target.detach())
        loss = sum(w * self.criterion(fp[i], ft[i]) for i, w in self.taps.items())
        return self.perceptual_weight * loss


class VanillaGANLoss(nn.Module):
    """The original GAN loss on logits: binary cross-entropy against 1 (real) or 0 (fake)."""

    def forward(self, logits: Tensor, target_is_real: bool) -> Tensor:
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())
