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
        cfg = load_config(args.config)
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
    p = argparse.ArgumentParser(
        prog="nexus-eval",
        description="PSNR/SSIM on folders of HR images the way SR papers report them "
        "(MATLAB bicubic LR, uint8 output, Y channel, scale-pixel border), as a Markdown table "
        "with bicubic as the baseline row.",
    )
    p.add_argument(
        "--model", help="a shipped model's name (nexus-x4, ...) or any model file spandrel can load"
    )
    p.add_argument(
        "--data", type=Path, action="append", required=True, metavar="DIR", help="repeatable"
    )
    p.add_argument("--scale", type=int, help="upscale factor (default: the model's)")
    p.add_argument("--bicubic-only", action="store_true", help="only the bicubic baseline")
    p.add_argument("--device", default="cpu")
    p.add_argument("--name", help="the model's row name (default: the file name)")
    return p


def eval_main(argv: Sequence[str] | None = None) -> int:
    parser = _eval_parser()
    args = parser.parse_args(argv)
    if args.model is None and not args.bicubic_only:
        parser.error("give --model PATH, or --bicubic-only")
    from .evaluate import bicubic_upscaler, descriptor_upscaler, evaluate_folder, markdown_table

    try:
        descriptor = None
        scale = args.scale
        if args.model is not None and not args.bicubic_only:
            from ..loading import load_model

            descriptor = load_model(args.model, device=args.device)
            if scale is not None and scale != descriptor.scale:
                parser.error(f"--scale {scale} but {args.model} is a x{descriptor.scale} model")
            scale = int(descriptor.scale)
        if scale is None:
            parser.error("--scale is required with --bicubic-only")
        for folder in args.data:
            if not folder.is_dir():
                parser.error(f"--data {folder}: not a folder")
        rows = [
            ("Bicubic", [evaluate_folder(d, scale, bicubic_upscaler(scale)) for d in args.data])
        ]
        if descriptor is not None:
            up = descriptor_upscaler(descriptor, args.device)
            name = args.name or Path(args.model).name
            rows.append((name, [evaluate_folder(d, scale, up) for d in args.data]))
    except NexusError as exc:
        print(f"nexus-eval: error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(scale, rows))
    return 0


if __name__ == "__main__":  # python -m nexus_upscaler.core.training.cli CONFIG (e.g. torchrun -m)
    sys.exit(train_main())
