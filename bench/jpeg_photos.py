"""Blocks on JPEG photos: how visible an input's 8x8 JPEG grid stays after upscaling.

The case issue 16 starts from: a photo at its own size, saved as a low-quality JPEG, upscaled as
a user does it (the engine at default options). For each photo and model the figure is the
blockiness of the output on the input's JPEG grid (``metrics.blockiness``, period 8 x scale): the
mean step of Y across the grid lines over the mean step elsewhere, about 1 for a natural image
and higher as the blocks show. Bicubic (Pillow) is the baseline. ``--sheet`` writes the same
detailed crop of each photo from every method side by side, with the clean photo (bicubic
enlarged) last, for looking at.

    python bench/jpeg_photos.py --quality 30 --models hyresr-real-x4 hyresr-x4 nexus-x4
    python bench/jpeg_photos.py --photos ~/Pictures/phone --count 6 --sheet jpeg.png

No ground truth exists at the output size, so this prints no PSNR; ``nexus-eval --degradation
web`` measures fidelity on downscaled-then-JPEG inputs.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from nexus_upscaler.core.engine import upscale_array
from nexus_upscaler.core.loading import load_model
from nexus_upscaler.core.options import UpscaleOptions
from nexus_upscaler.core.training.config import datasets_dir
from nexus_upscaler.core.training.data import list_images, load_rgb
from nexus_upscaler.core.training.metrics import blockiness
from nexus_upscaler.core.training.sheets import comparison_sheet, save_sheet
from PIL import Image


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` saved as a baseline 4:2:0 JPEG of ``quality`` by Pillow, read back."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def bicubic(image: np.ndarray, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((w * scale, h * scale), Image.BICUBIC))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--photos", type=Path, help="folder of photos (default: B100 in the datasets folder)"
    )
    p.add_argument("--count", type=int, default=6, help="photos used (the first, sorted)")
    p.add_argument("--quality", type=int, default=30, help="JPEG quality of the inputs")
    p.add_argument(
        "--models", nargs="+", default=["hyresr-x4", "nexus-x4"], help="shipped names or files"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sheet", type=Path, help="write a side-by-side sheet of crops here")
    p.add_argument("--sheet-images", type=int, default=3)
    p.add_argument("--sheet-crop", type=int, default=48, help="crop side in input pixels")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.photos is None:  # the datasets folder the training configs use ($NEXUS_DATASETS)
        args.photos = datasets_dir() / "B100"
    if not args.photos.is_dir():
        raise SystemExit(
            f"{args.photos}: no such folder of photos (B100 is one of the evaluation sets, see "
            "docs/training.md 'Data sets'; set NEXUS_DATASETS or name any folder with --photos)"
        )
    photos = [(path.stem, load_rgb(path)) for path in list_images(args.photos)[: args.count]]

    models = {name: load_model(name) for name in args.models}
    scales = {int(d.scale) for d in models.values()}
    if len(scales) != 1:
        raise SystemExit(f"models of one scale only, got scales {sorted(scales)}")
    scale = scales.pop()
    options = UpscaleOptions()
    methods = {"bicubic": lambda lr: bicubic(lr, scale)}
    for name, descriptor in models.items():
        methods[name] = lambda lr, d=descriptor: upscale_array(d, lr, options)

    inputs = {name: jpeg(photo, args.quality) for name, photo in photos}
    print(
        f"JPEG quality {args.quality} photos from {args.photos} at their own size, x{scale}; "
        f"blockiness on the 8x8 grid (input) and the {8 * scale}-pixel grid (outputs)"
    )
    header = ["photo", "input", *methods]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    totals = {name: [] for name in ["input", *methods]}
    for name, lr in inputs.items():
        row = {"input": blockiness(lr, 8)}
        for method, run in methods.items():
            row[method] = blockiness(run(lr), 8 * scale)
        for k, v in row.items():
            totals[k].append(v)
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in header[1:]) + " |")
    print("| **mean** | " + " | ".join(f"**{np.mean(totals[k]):.3f}**" for k in header[1:]) + " |")

    if args.sheet is not None:
        shown = photos[: args.sheet_images]
        clean = [(name, bicubic(photo, scale)) for name, photo in shown]
        sheet = comparison_sheet(
            clean,
            [(m, run) for m, run in methods.items()],
            lambda _hr, name: inputs[name],
            scale,
            args.sheet_crop,
            reference_label="clean photo (bicubic)",
        )
        save_sheet(sheet, args.sheet)
        print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
