"""``nexus-train CONFIG`` and ``nexus-eval --model PATH --data DIR --scale N``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import NexusError

__all__ = ["train_main", "eval_main"]


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nexus-train",
        description="Train a NEXUS or HyReSR model from a TOML config. Runs under torchrun "
        "for DDP (e.g. torchrun --nproc_per_node 2 $(which nexus-train) CONFIG).",
    )
    p.add_argument("config", type=Path, help="training config (.toml; .yml with PyYAML)")
    p.add_argument(
        "--resume",
        metavar="STATE",
        help="a training_state/<step>.state file, or 'auto' for the newest of this run",
    )
    p.add_argument("--total-iter", type=int, help="override train.total_iter")
    p.add_argument("--output-dir", help="override output_dir")
    p.add_argument("--device", help="override device (auto, cpu, cuda, cuda:N, mps)")
    p.add_argument(
        "--datasets",
        metavar="DIR",
        help="the folder {datasets} stands for in the config's data folders (default: "
        "$NEXUS_DATASETS, else ../shared/datasets)",
    )
    p.add_argument(
        "--stop-after-minutes",
        type=float,
        metavar="M",
        help="save a resumable state and stop after M minutes (resume with --resume auto)",
    )
    return p


def train_main(argv: Sequence[str] | None = None) -> int:
    args = _train_parser().parse_args(argv)
    from .config import load_config

    try:
        cfg = load_config(args.config, datasets=args.datasets)
        if args.total_iter is not None:
            cfg.train.total_iter = args.total_iter
        if args.output_dir is not None:
            cfg.output_dir = args.output_dir
        if args.device is not None:
            cfg.device = args.device
        from .trainer import Trainer

        trainer = Trainer(cfg, resume=args.resume)
        if trainer.step >= cfg.train.total_iter:
            print(
                f"already trained for {trainer.step} iterations (total_iter {cfg.train.total_iter})"
            )
            return 0
        stop = None if args.stop_after_minutes is None else args.stop_after_minutes * 60.0
        last = trainer.train(stop_after_s=stop)
    except NexusError as exc:
        print(f"nexus-train: error: {exc}", file=sys.stderr)
        return 2
    if trainer.dist.main:
        summary = ", ".join(f"{k} {v}" for k, v in last.items() if v not in ("", None))
        print(f"stopped at iteration {trainer.step}: {summary}")
        print(f"weights and training state in {trainer.out_dir}")
    return 0


def _eval_parser() -> argparse.ArgumentParser:
    from .evaluate import DEGRADATIONS

    p = argparse.ArgumentParser(
        prog="nexus-eval",
        description="Score models next to bicubic on folders of HR images, as a Markdown table. "
        "--degradation bicubic (default) is the SR papers' protocol: MATLAB bicubic LR, uint8 "
        "output, PSNR/SSIM on Y with a scale-pixel border. web (bicubic then JPEG 30-80) and "
        "real (the second-order real-world chain) make the inputs people actually have, seeded "
        "per image, and add HaarPSI (higher is better), GMSD (lower is better) and the "
        "blockiness of the output on the input's JPEG grid (1 is none).",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="MODEL",
        help="a shipped model name (nexus-upscale --list-models) or any model file spandrel "
        "can load; repeatable",
    )
    p.add_argument(
        "--data", type=Path, action="append", required=True, metavar="DIR", help="repeatable"
    )
    p.add_argument("--scale", type=int, help="upscale factor (default: the models')")
    p.add_argument(
        "--degradation",
        choices=DEGRADATIONS,
        default="bicubic",
        help="how the LR inputs are made (default: bicubic, the paper protocol)",
    )
    p.add_argument(
        "--perceptual",
        action="store_true",
        help="also HaarPSI, GMSD and blockiness with --degradation bicubic (always on otherwise)",
    )
    p.add_argument("--bicubic-only", action="store_true", help="only the bicubic baseline")
    p.add_argument(
        "--sheet",
        type=Path,
        metavar="OUT.png",
        help="also write the same crops of a few images of the first --data folder from every "
        "method, labelled, side by side",
    )
    p.add_argument("--sheet-images", type=int, default=3, metavar="N", help="images on the sheet")
    p.add_argument("--sheet-crop", type=int, default=64, metavar="PX", help="LR crop size")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--name",
        action="append",
        default=[],
        help="row name of each --model, in order (default: the shipped name or file name)",
    )
    return p


def eval_main(argv: Sequence[str] | None = None) -> int:
    parser = _eval_parser()
    args = parser.parse_args(argv)
    if not args.model and not args.bicubic_only:
        parser.error("give --model NAME_OR_PATH, or --bicubic-only")
    if len(args.name) > len(args.model):
        parser.error("more --name than --model")
    from .evaluate import (
        PROTOCOLS,
        bicubic_upscaler,
        descriptor_upscaler,
        evaluate_folder,
        make_degrader,
        markdown_table,
    )

    for folder in args.data:
        if not folder.is_dir():
            parser.error(f"--data {folder}: not a folder")
    try:
        methods = [("Bicubic", None)]
        scale = args.scale
        if not args.bicubic_only:
            from ..loading import load_model
            from ..zoo import resolve_model

            for i, model in enumerate(args.model):
                path = resolve_model(model)
                descriptor = load_model(path, device=args.device)
                if scale is None:
                    scale = int(descriptor.scale)
                if int(descriptor.scale) != scale:
                    parser.error(f"--model {model} is x{descriptor.scale}, the others x{scale}")
                name = args.name[i] if i < len(args.name) else (
                    model if path.stem == model else path.name
                )  # fmt: skip
                methods.append((name, descriptor_upscaler(descriptor, args.device)))
        if scale is None:
            parser.error("--scale is required with --bicubic-only")
        methods[0] = ("Bicubic", bicubic_upscaler(scale))
        degrade = make_degrader(args.degradation, scale)
        perceptual = args.perceptual or args.degradation != "bicubic"
        rows = [
            (name, [evaluate_folder(d, scale, up, degrade, perceptual) for d in args.data])
            for name, up in methods
        ]
        if args.sheet is not None:
            _write_sheet(args, methods, degrade, scale)
    except ImportError as exc:
        print(f"nexus-eval: error: {exc}", file=sys.stderr)
        return 2
    except NexusError as exc:
        print(f"nexus-eval: error: {exc}", file=sys.stderr)
        return 2
    if args.degradation != "bicubic":
        print(f"LR inputs: {PROTOCOLS[args.degradation]}, seeded per image\n")
    print(markdown_table(scale, rows))
    return 0


def _write_sheet(args: argparse.Namespace, methods, degrade, scale: int) -> None:  # noqa: ANN001
    from .data import list_images, load_rgb
    from .metrics import mod_crop
    from .sheets import comparison_sheet, save_sheet

    paths = list_images(args.data[0])[: max(1, args.sheet_images)]
    images = [(p.name, mod_crop(load_rgb(p), scale)) for p in paths]
    sheet = comparison_sheet(images, methods, degrade, scale, args.sheet_crop)
    save_sheet(sheet, args.sheet)
    print(f"sheet: {args.sheet} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":  # python -m nexus_upscaler.core.training.cli CONFIG (e.g. torchrun -m)
    sys.exit(train_main())
