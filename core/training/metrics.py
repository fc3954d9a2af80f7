"""Image quality figures: PSNR and SSIM the way SR papers report them, a weight-free perceptual
index (HaarPSI, GMSD), and the visibility of a JPEG block grid.

The conventions (from the MATLAB evaluation scripts of SRCNN/EDSR/RCAN, as ported by BasicSR):
images are uint8, the metric uses the Y channel of BT.601 YCbCr in MATLAB's studio range
(Y in [16, 235]), ``crop_border`` pixels (the scale) are dropped on each side, PSNR uses a peak
of 255, and SSIM uses an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, averaged
over the 'valid' part of the SSIM map.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["rgb_to_y", "psnr", "ssim", "mod_crop", "blockiness", "haarpsi", "gmsd"]


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop ``(H, W[, C])`` so both sides are multiples of ``scale`` (top-left kept)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Y of BT.601 as MATLAB's ``rgb2ycbcr``: ``(H, W, 3)`` uint8 RGB -> ``(H, W)`` float64.

    The value is not rounded to an integer (BasicSR's convention); Y is in [16, 235].
    Greyscale ``(H, W)`` or ``(H, W, 1)`` input is returned as float64 unchanged.
    """
    img = image.astype(np.float64)
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[..., 0]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _prepare(img: np.ndarray, crop_border: int, y_channel: bool) -> np.ndarray:
    out = rgb_to_y(img) if y_channel else img.astype(np.float64)
    if crop_border > 0:
        out = out[crop_border:-crop_border, crop_border:-crop_border]
    return out


def _prepare_pair(
    output: np.ndarray, reference: np.ndarray, crop_border: int, y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    if output.shape != reference.shape:
        raise ValueError(f"shapes differ: {output.shape} vs {reference.shape}")
    return _prepare(output, crop_border, y_channel), _prepare(reference, crop_border, y_channel)


def psnr(
    output: np.ndarray, reference: np.ndarray, crop_border: int = 0, y_channel: bool = True
) -> float:
    """PSNR in dB of two uint8 images ``(H, W, 3)`` with a peak of 255."""
    a, b = _prepare_pair(output, reference, crop_border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * float(np.log10(255.0**2 / mse))


@lru_cache(maxsize=4)
def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def _ssim_single(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of two ``(1, 1, H, W)`` float64 planes in [0, 255]."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    win = _gaussian_window()
    mu_a, mu_b = F.conv2d(a, win), F.conv2d(b, win)
    var_a = F.conv2d(a * a, win) - mu_a**2
    var_b = F.conv2d(b * b, win) - mu_b**2
    cov = F.conv2d(a * b, win) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(ssim_map.mean())


def ssim(
    output: np.ndarray, reference: np.ndarray, crop_border: int = 0, y_channel: bool = True
) -> float:
    """SSIM of two uint8 images (11x11 Gaussian window, sigma 1.5; channels averaged)."""
    a, b = _prepare_pair(output, reference, crop_border, y_channel)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    values = [
        _ssim_single(
            torch.from_numpy(np.ascontiguousarray(a[..., c]))[None, None],
            torch.from_numpy(np.ascontiguousarray(b[..., c]))[None, None],
        )
        for c in range(a.shape[2])
    ]
    return float(np.mean(values))


def blockiness(image: np.ndarray, period: int) -> float:
    """How visible a block grid of ``period`` pixels is: the mean absolute step of Y across the
    grid lines (between pixel ``k*period - 1`` and ``k*period``, both directions) over the mean
    step everywhere else. About 1 for a natural image; above 1 when the grid shows (the 8x8
    blocks of a JPEG input, ``period = 8 * scale`` after upscaling).
    """
    y = rgb_to_y(image)
    steps = []
    for d in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):
        # d[:, j] is the step between pixels j and j + 1; grid lines sit at j = k*period - 1
        on = np.zeros(d.shape[1], dtype=bool)
        on[period - 1 :: period] = True
        steps.append((d[:, on].mean(), d[:, ~on].mean()))
    across = np.mean([a for a, _ in steps])
    elsewhere = np.mean([b for _, b in steps])
    return float(across / max(elsewhere, 1e-8))


def _piq():
    try:
        import piq
    except ImportError as exc:  # an optional extra
        raise ImportError(
            "the perceptual figures (HaarPSI, GMSD) need the 'piq' package: "
            "pip install 'nexus-upscaler[eval]' (or pip install piq)"
        ) from exc
    return piq


def _pair_tensors(output: np.ndarray, reference: np.ndarray, crop_border: int) -> tuple:
    if output.shape != reference.shape:
        raise ValueError(f"shapes differ: {output.shape} vs {reference.shape}")
    b = crop_border
    a, r = (output[b:-b, b:-b], reference[b:-b, b:-b]) if b > 0 else (output, reference)
    to = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].double() / 255  # noqa: E731
    return to(a), to(r)


def haarpsi(output: np.ndarray, reference: np.ndarray, crop_border: int = 0) -> float:
    """HaarPSI (Reisenhofer et al. 2018) of two ``(H, W, 3)`` uint8 images, through ``piq``: a
    full-reference perceptual similarity from Haar wavelet responses, no learned weights;
    1 is identical, higher is better."""
    a, r = _pair_tensors(output, reference, crop_border)
    return float(_piq().haarpsi(a, r, data_range=1.0))


def gmsd(output: np.ndarray, reference: np.ndarray, crop_border: int = 0) -> float:
    """GMSD (Xue et al. 2014) of two ``(H, W, 3)`` uint8 images, through ``piq``: the deviation
    of the gradient-magnitude similarity map; 0 is identical, lower is better."""
    a, r = _pair_tensors(output, reference, crop_border)
    return float(_piq().gmsd(a, r, data_range=1.0))
