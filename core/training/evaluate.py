"""Benchmark evaluation: PSNR/SSIM of a model and of bicubic on folders of HR images.

The protocol is the one SR papers use (see ``metrics``): each HR image is mod-cropped to the
scale, its LR input made with MATLAB-style bicubic (``imresize``), the output rounded to uint8,
and PSNR/SSIM measured on the BT.601 Y channel with ``scale`` pixels of border dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import IMAGE_SUFFIXES, list_images, load_rgb
from .imresize import imresize
from .metrics import mod_crop, psnr, ssim

__all__ = [
    "DatasetScore",
    "evaluate_folder",
    "bicubic_upscaler",
    "module_upscaler",
    "markdown_table",
    "IMAGE_SUFFIXES",
]

Upscaler = Callable[[np.ndarray], np.ndarray]
"""Maps an LR ``(h, w, 3)`` uint8 image to an SR ``(h*s, w*s, 3)`` uint8 image."""


@dataclass
class DatasetScore:
    """Mean PSNR (dB) and SSIM of one method on one folder."""

    dataset: str
    psnr: float
    ssim: float
    per_image: dict[str, tuple[float, float]] = field(default_factory=dict)


def bicubic_upscaler(scale: int) -> Upscaler:
    """The paper baseline: MATLAB-style bicubic upscaling of the uint8 LR image."""
    return lambda lr: imresize(lr, float(scale))


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8, rounded like MATLAB's im2uint8."""
    arr = t[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.floor(arr * 255.0 + 0.5).astype(np.uint8)


@torch.no_grad()
def forward_padded(
    model: nn.Module, lr: torch.Tensor, scale: int, multiple: int = 1
) -> torch.Tensor:
    """Run ``model`` on ``lr`` ``(B, C, h, w)``, reflect-padding to a multiple of ``multiple``
    and cropping the ``(B, C, h*scale, w*scale)`` result back."""
    h, w = lr.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    x = F.pad(lr, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else lr
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
    req = descriptor.size_requirements  # type: ignore[attr-defined]
    multiple = max(1, int(getattr(req, "multiple_of", 1)))
    minimum = int(getattr(req, "minimum", 0))
    model.eval().to(device)

    def run(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255.0).to(device)
        h, w = x.shape[-2:]
        if h < minimum or w < minimum:
            x = F.pad(x, (0, max(0, minimum - w), 0, max(0, minimum - h)), mode="replicate")
        out = forward_padded(model, x, scale, multiple)
        return _to_uint8(out[..., : h * scale, : w * scale])

    return run


def evaluate_folder(folder: str | Path, scale: int, upscale: Upscaler) -> DatasetScore:
    """Mean PSNR/SSIM of ``upscale`` over the HR images in ``folder`` (paper protocol)."""
    folder = Path(folder)
    scores: dict[str, tuple[float, float]] = {}
    for path in list_images(folder):
        hr = mod_crop(load_rgb(path), scale)
        lr = imresize(hr, 1.0 / scale)
        sr = upscale(lr)
        if sr.shape != hr.shape:
            raise ValueError(f"{path}: output is {sr.shape[:2]}, expected {hr.shape[:2]}")
        scores[path.name] = (psnr(sr, hr, scale), ssim(sr, hr, scale))
    if not scores:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    values = np.array(list(scores.values()))
    return DatasetScore(folder.name, float(values[:, 0].mean()), float(values[:, 1].mean()), scores)


def markdown_table(scale: int, rows: Sequence[tuple[str, Sequence[DatasetScore]]]) -> str:
    """A Markdown table: one row per method, PSNR / SSIM per dataset (Y channel)."""
    datasets = [s.dataset for s in rows[0][1]]
    head = "| Method | Scale | " + " | ".join(f"{d} PSNR / SSIM" for d in datasets) + " |"
    sep = "|---|---|" + "---|" * len(datasets)
    lines = [head, sep]
    for name, scores in rows:
        cells = " | ".join(f"{s.psnr:.2f} / {s.ssim:.4f}" for s in scores)
        lines.append(f"| {name} | x{scale} | {cells} |")
    return "\n".join(lines)
