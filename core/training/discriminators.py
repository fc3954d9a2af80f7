"""Discriminators for the GAN loss: a U-Net with spectral norm and a VGG-style classifier."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

__all__ = ["UNetDiscriminatorSN", "VGGStyleDiscriminator", "build_discriminator"]


class UNetDiscriminatorSN(nn.Module):
    """Per-pixel real/fake logits from a 3-level U-Net with spectral-normalised convolutions
    (the design of Real-ESRGAN's discriminator). x: (B, C, H, W), H and W multiples of 8
    -> (B, 1, H, W) logits."""

    def __init__(self, in_ch: int = 3, num_feat: int = 64) -> None:
        super().__init__()
        f = num_feat
        sn = spectral_norm
        self.conv0 = nn.Conv2d(in_ch, f, 3, 1, 1)
        self.down = nn.ModuleList(
            sn(nn.Conv2d(a, b, 4, 2, 1, bias=False))
            for a, b in ((f, 2 * f), (2 * f, 4 * f), (4 * f, 8 * f))
        )
        self.up = nn.ModuleList(
            sn(nn.Conv2d(a, b, 3, 1, 1, bias=False))
            for a, b in ((8 * f, 4 * f), (4 * f, 2 * f), (2 * f, f))
        )
        self.refine = nn.Sequential(
            sn(nn.Conv2d(f, f, 3, 1, 1, bias=False)),
            nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(f, f, 3, 1, 1, bias=False)),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(f, 1, 3, 1, 1),
        )

    def forward(
        self, x: Tensor, return_features: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Logits; with ``return_features`` also the encoder and decoder activations (for
        feature matching)."""
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        skips = [act(self.conv0(x))]
        for conv in self.down:
            skips.append(act(conv(skips[-1])))
        features = list(skips)
        y = skips.pop()
        for conv in self.up:
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            y = act(conv(y)) + skips.pop()
            features.append(y)
        logits = self.refine(y)
        return (logits, features) if return_features else logits


class VGGStyleDiscriminator(nn.Module):
    """One real/fake logit per image: five stride-2 stages of conv + BN + LeakyReLU, then an
    adaptive 4x4 pool and two linear layers (any input of at least 32x32).
    x: (B, C, H, W) -> (B, 1)."""

    def __init__(self, in_ch: int = 3, num_feat: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, num_feat, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        ch = num_feat
        for i in range(5):
            out = num_feat * min(8, 2 ** (i + 1)) if i else num_feat
            layers += [
                nn.Conv2d(ch, out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(out),
                nn.LeakyReLU(0.2, True),
            ]
            ch = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(ch * 16, 100), nn.LeakyReLU(0.2, True), nn.Linear(100, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def build_discriminator(kind: str, in_ch: int = 3, num_feat: int = 64) -> nn.Module:
    """``"unet"`` or ``"vgg"``."""
    if kind == "unet":
        return UNetDiscriminatorSN(in_ch, num_feat)
    if kind == "vgg":
        return VGGStyleDiscriminator(in_ch, num_feat)
    raise ValueError(f"unknown discriminator {kind!r} (unet or vgg)")
