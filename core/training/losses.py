"""Losses: L1 / Charbonnier, VGG19 perceptual, vanilla GAN, and perceptual signals that need no
downloaded weights.

The VGG perceptual loss needs VGG19 weights from a file the user names (nothing is downloaded):
the network is torchvision's ``vgg19`` architecture built with ``weights=None``, then the user's
state dict is loaded with ``torch.load(weights_only=True)`` (or from safetensors).

Where no such file exists (our machines, CI), three weight-free signals stand in:
``FFTLoss`` (the spectrum's amplitude and phase, which an L1-blurred output lacks at high
frequencies), ``RandomFeatureLoss`` (distances of the features of a fixed, randomly initialised
conv net: random deep features already capture local structure, Liu et al. 2021, "Generic
Perceptual Loss") and ``ArtifactLoss`` (LDL, Liang et al. 2022: penalise the pixels where the
GAN-trained output departs from the target more than its EMA does, weighted by the local variance
of the residual, which is high on GAN artefacts). The discriminator's own features give a fourth,
feature matching, in the trainer.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = [
    "ArtifactLoss",
    "FFTLoss",
    "RandomFeatureLoss",
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


class FFTLoss(nn.Module):
    """L1 distance of the 2-D spectra (real and imaginary parts, orthonormal FFT) of ``pred`` and
    ``target`` (B, C, H, W): high frequencies weigh as much as low ones, so a blurred output
    costs more than under pixel L1 alone."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        fp = torch.fft.rfft2(pred.float(), norm="ortho")
        ft = torch.fft.rfft2(target.float(), norm="ortho")
        return F.l1_loss(torch.view_as_real(fp), torch.view_as_real(ft))


class RandomFeatureLoss(nn.Module):
    """Distance of features from a fixed, randomly initialised VGG-style network.

    Three stages of two 3x3 convs + ReLU (``widths``), 2x average pooling between stages,
    Kaiming-normal weights drawn from ``seed`` (the same network every run, nothing downloaded).
    Each stage's L1 distance is divided by the mean magnitude of the target's features there, so
    every stage counts alike whatever its random scale. pred, target: (B, 3, H, W) in [0, 1].
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        stages = []
        ch = 3
        for w in widths:
            convs = [nn.Conv2d(ch, w, 3, 1, 1), nn.Conv2d(w, w, 3, 1, 1)]
            for conv in convs:
                fan_in = conv.in_channels * 9
                with torch.no_grad():
                    conv.weight.copy_(
                        torch.randn(conv.weight.shape, generator=gen) * (2 / fan_in) ** 0.5
                    )
                    conv.bias.zero_()
            stages.append(nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU()))
            ch = w
        self.stages = nn.ModuleList(stages)
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), False)

    def _features(self, x: Tensor) -> list[Tensor]:
        out = []
        x = x - self.mean
        for i, stage in enumerate(self.stages):
            if i:
                x = F.avg_pool2d(x, 2)
            x = stage(x)
            out.append(x)
        return out

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        fp = self._features(pred)
        with torch.no_grad():
            ft = self._features(target.detach())
        return sum(F.l1_loss(a, b) / (b.abs().mean() + 1e-6) for a, b in zip(fp, ft)) / len(fp)


def _local_variance(x: Tensor, size: int) -> Tensor:
    """Variance of ``x`` (B, 1, H, W) over ``size``x``size`` windows (reflect-padded)."""
    p = size // 2
    xp = F.pad(x, (p, p, p, p), mode="reflect")
    mean = F.avg_pool2d(xp, size, 1)
    return (F.avg_pool2d(xp * xp, size, 1) - mean * mean).clamp_min(0)


class ArtifactLoss(nn.Module):
    """LDL's artefact term: L1 of ``weight * (pred - target)``, where the weight is the residual's
    local variance (``window`` pixels) times its patch variance to the power 1/5, and zero where
    the EMA model's output is further from the target than ``pred`` (there ``pred`` is a detail,
    not an artefact). pred, pred_ema, target: (B, C, H, W)."""

    def __init__(self, window: int = 7) -> None:
        super().__init__()
        self.window = window

    def forward(self, pred: Tensor, pred_ema: Tensor, target: Tensor) -> Tensor:
        residual = (target - pred).abs().sum(1, keepdim=True).detach()
        residual_ema = (target - pred_ema).abs().sum(1, keepdim=True).detach()
        patch = residual.flatten(1).var(dim=1).pow(0.2).view(-1, 1, 1, 1)
        weight = _local_variance(residual, self.window) * patch
        weight = torch.where(residual < residual_ema, torch.zeros_like(weight), weight)
        return F.l1_loss(weight * pred, weight * target)
