"""Optional LR degradations for restoration (scale 1) and real-world models.

All functions take and return ``(H, W, 3)`` uint8 arrays and draw from a numpy ``Generator``,
so a sample is fully determined by its seed (which makes resumed runs see the same data).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .config import Degradations
from .imresize import imresize

__all__ = ["gaussian_blur", "add_gaussian_noise", "jpeg_compress", "make_lr"]


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with a ``2*ceil(3*sigma)+1`` kernel and mirrored borders."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x**2) / (2.0 * sigma**2))
    k /= k.sum()
    img = np.pad(
        image.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), "symmetric"
    )
    h, w = image.shape[:2]
    rows = sum(k[i] * img[i : i + h] for i in range(k.size))
    out = sum(k[i] * rows[:, i : i + w] for i in range(k.size))
    return np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8)


def add_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add i.i.d. Gaussian noise of ``sigma`` (0..255 units) per pixel and channel."""
    noisy = image.astype(np.float64) + rng.normal(0.0, sigma, image.shape)
    return np.floor(np.clip(noisy, 0, 255) + 0.5).astype(np.uint8)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as baseline JPEG at ``quality`` (PIL, 4:2:0)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy()


def make_lr(
    hr: np.ndarray, scale: int, deg: Degradations | None, rng: np.random.Generator
) -> np.ndarray:
    """Make the network input from an HR crop ``(s*h, s*w, 3)`` -> ``(h, w, 3)`` uint8.

    Without degradations this is exactly the paper protocol (MATLAB bicubic, uint8).
    """
    img = hr
    if deg is not None and deg.blur_prob > 0 and rng.random() < deg.blur_prob:
        img = gaussian_blur(img, float(rng.uniform(*deg.blur_sigma)))
    if scale != 1:
        img = imresize(img, 1.0 / scale)
    if deg is not None and deg.noise_prob > 0 and rng.random() < deg.noise_prob:
        img = add_gaussian_noise(img, float(rng.uniform(*deg.noise_sigma)), rng)
    if deg is not None and deg.jpeg_prob > 0 and rng.random() < deg.jpeg_prob:
        lo, hi = deg.jpeg_quality
        img = jpeg_compress(img, int(rng.integers(lo, hi + 1)))
    return img
