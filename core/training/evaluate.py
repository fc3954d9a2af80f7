"""Benchmark evaluation: a model and bicubic on folders of HR images.

The ``bicubic`` protocol is the one SR papers use (see ``metrics``): each HR image is mod-cropped
to the scale, its LR input made with MATLAB-style bicubic (``imresize``), the output rounded to
uint8, and PSNR/SSIM measured on the BT.601 Y channel with ``scale`` pixels of border dropped.

The ``web`` and ``real`` protocols make the inputs people actually have: ``web`` is a bicubic
downscale saved as a JPEG of quality 30-80, ``real`` the second-order real-world chain
(``realworld.degrade_real`` at its default ranges). Both are seeded per image name, so every run
and every model sees the same inputs. They report, besides PSNR/SSIM, HaarPSI and GMSD (weight-free
perceptual indices) and the blockiness of the output on the input's JPEG grid.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from spandrel import SizeRequirements
from torch import nn

from ..runner import pad_to_requirements
from .config import RealDegradation
from .data import IMAGE_SUFFIXES, list_images, load_rgb
from .imresize import imresize
from .metrics import blockiness, gmsd, haarpsi, mod_crop, psnr, ssim
from .realworld import degrade_real, degrade_web

__all__ = [
    "DEGRADATIONS",
    "PROTOCOLS",
    "Degrader",
    "make_degrader",
    "DatasetScore",
    "evaluate_folder",
    "bicubic_upscaler",
    "module_upscaler",
    "markdown_table",
    "IMAGE_SUFFIXES",
]

Upscaler = Callable[[np.ndarray], np.ndarray]
"""Maps an LR ``(h, w, 3)`` uint8 image to an SR ``(h*s, w*s, 3)`` uint8 image."""

Degrader = Callable[[np.ndarray, str], np.ndarray]
"""Maps an HR ``(H, W, 3)`` uint8 image (mod-cropped) and its file name to the LR input."""

EVAL_SEED = 20261201
WEB_JPEG_QUALITY = (30, 80)
PROTOCOLS = {
    "bicubic": "MATLAB bicubic downscale (the SR papers' protocol)",
    "web": f"bicubic downscale, then JPEG at quality {WEB_JPEG_QUALITY[0]}-{WEB_JPEG_QUALITY[1]}",
    "real": "the second-order real-world chain at its default ranges",
}
DEGRADATIONS = tuple(PROTOCOLS)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float() / 255


def _array(t: torch.Tensor) -> np.ndarray:
    return (t[0] * 255.0).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def make_degrader(kind: str, scale: int) -> Degrader:
    """The LR inputs of protocol ``kind`` (see the module docstring), seeded by file name."""
    if kind == "bicubic":
        return lambda hr, _name: imresize(hr, 1.0 / scale)
    if kind == "web":
        return lambda hr, name: _array(
            degrade_web(
                _tensor(hr), scale, WEB_JPEG_QUALITY, (EVAL_SEED, zlib.crc32(name.encode()))
            )
        )
    if kind == "real":
        opt = RealDegradation()
        return lambda hr, name: _array(
            degrade_real(_tensor(hr), scale, opt, (EVAL_SEED, zlib.crc32(name.encode())))
        )
    raise ValueError(f"unknown degradation {kind!r} (one of {', '.join(DEGRADATIONS)})")


@dataclass
class DatasetScore:
    """Mean figures of one method on one folder: PSNR (dB) and SSIM always; HaarPSI, GMSD and
    blockiness when measured (``perceptual``), else None."""

    dataset: str
    psnr: float
    ssim: float
    per_image: dict[str, tuple[float, ...]] = field(default_factory=dict)
    haarpsi: float | None = None
    gmsd: float | None = None
    blockiness: float | None = None


def bicubic_upscaler(scale: int) -> Upscaler:
    """The paper baseline: MATLAB-style bicubic upscaling of the uint8 LR image."""
    return lambda lr: imresize(lr, float(scale))


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8, rounded like MATLAB's im2uint8."""
    arr = t[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.floor(arr * 255.0 + 0.5).astype(np.uint8)


@torch.no_grad()
def forward_padded(
    model: nn.Module,
    lr: torch.Tensor,
    scale: int,
    multiple: int = 1,
    requirements: SizeRequirements | None = None,
) -> torch.Tensor:
    """Run ``model`` on ``lr`` ``(B, C, h, w)``, padded as the engine pads (to ``requirements``,
    else to a multiple of ``multiple``), and crop the ``(B, C, h*scale, w*scale)`` result back."""
    h, w = lr.shape[-2:]
    x = pad_to_requirements(lr, requirements or SizeRequirements(multiple_of=multiple))
    out = model(x)
    return out[..., : h * scale, : w * scale]


def module_upscaler(
    model: nn.Module, scale: int, device: torch.device | str = "cpu", multiple: int = 1
) -> Upscaler:
    """Wrap a plain ``nn.Module`` (eval mode, fp32, whole-image forward)."""

    def run(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255.0).to(device)
        return _to_uint8(forward_padded(model, x, scale, multiple))

    return run


def descriptor_upscaler(descriptor: object, device: torch.device | str = "cpu") -> Upscaler:
    """Wrap a spandrel ``ImageModelDescriptor`` (pads to its ``size_requirements``)."""
    model = descriptor.model  # type: ignore[attr-defined]
    scale = int(descriptor.scale)  # type: ignore[attr-defined]
    requirements = descriptor.size_requirements  # type: ignore[attr-defined]
    model.eval().to(device)

    def run(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255.0).to(device)
        return _to_uint8(forward_padded(model, x, scale, requirements=requirements))

    return run


def evaluate_folder(
    folder: str | Path,
    scale: int,
    upscale: Upscaler,
    degrade: Degrader | None = None,
    perceptual: bool = False,
) -> DatasetScore:
    """Mean figures of ``upscale`` over the HR images in ``folder``: the inputs come from
    ``degrade`` (default: the paper's bicubic protocol); ``perceptual`` adds HaarPSI, GMSD and
    the blockiness on the input's 8-pixel JPEG grid."""
    folder = Path(folder)
    degrade = degrade or make_degrader("bicubic", scale)
    scores: dict[str, tuple[float, ...]] = {}
    for path in list_images(folder):
        hr = mod_crop(load_rgb(path), scale)
        sr = upscale(degrade(hr, path.name))
        if sr.shape != hr.shape:
            raise ValueError(f"{path}: output is {sr.shape[:2]}, expected {hr.shape[:2]}")
        figures = (psnr(sr, hr, scale), ssim(sr, hr, scale))
        if perceptual:
            figures += (haarpsi(sr, hr, scale), gmsd(sr, hr, scale), blockiness(sr, 8 * scale))
        scores[path.name] = figures
    if not scores:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    mean = np.array(list(scores.values())).mean(axis=0)
    extra = dict(zip(("haarpsi", "gmsd", "blockiness"), map(float, mean[2:])))
    return DatasetScore(folder.name, float(mean[0]), float(mean[1]), scores, **extra)


def markdown_table(scale: int, rows: Sequence[tuple[str, Sequence[DatasetScore]]]) -> str:
    """A Markdown table, one row per method: PSNR / SSIM per dataset (Y channel), or, when the
    perceptual figures were measured, one column group per dataset with all five."""
    datasets = [s.dataset for s in rows[0][1]]
    perceptual = rows[0][1][0].haarpsi is not None
    what = "PSNR / SSIM / HaarPSI / GMSD / blockiness" if perceptual else "PSNR / SSIM"
    head = "| Method | Scale | " + " | ".join(f"{d} {what}" for d in datasets) + " |"
    sep = "|---|---|" + "---|" * len(datasets)
    lines = [head, sep]
    for name, scores in rows:
        cells = " | ".join(_cell(s) for s in scores)
        lines.append(f"| {name} | x{scale} | {cells} |")
    return "\n".join(lines)


def _cell(s: DatasetScore) -> str:
    text = f"{s.psnr:.2f} / {s.ssim:.4f}"
    if s.haarpsi is not None:
        text += f" / {s.haarpsi:.4f} / {s.gmsd:.4f} / {s.blockiness:.3f}"
    return text
