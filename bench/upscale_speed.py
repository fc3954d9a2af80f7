"""Seconds per input megapixel of the shipped models, the way ``nexus-upscale`` runs them.

Each model runs the real engine on a real image with a preset's settings (default ``balanced``,
on the CPU: automatic tiles, overlap 32), as the command line does once the model is loaded.
Models take turns, round after round, and the best round of each is kept. Both clocks are
printed: wall time, and the CPU time of this process. With one thread on a machine that other
jobs keep busy, the CPU time is the figure to trust (it is what the run costs an idle core);
with several threads, wall time on an idle machine is the user's figure.

    python bench/upscale_speed.py --threads 1
    python bench/upscale_speed.py --threads 0 --image ../shared/datasets/Set14/monarch.png

Model loading and interpreter start-up are not included (``nexus-upscale`` pays them once per
run: time ``nexus-upscale --list-models`` for the start-up alone).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from nexus_upscaler.core import get_preset, load_model, read_image, upscale_array
from nexus_upscaler.core.zoo import list_shipped_models

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads; 0: torch's default")
    p.add_argument("--image", type=Path, default=REPO / "examples" / "sample.png")
    p.add_argument("--preset", default="balanced")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--models", nargs="*", help="shipped model names (default: all)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    image = read_image(args.image).array
    height, width = image.shape[:2]
    megapixels = height * width / 1e6
    options = get_preset(args.preset, device="cpu")
    models = {
        m.name: load_model(m.path, device="cpu")
        for m in list_shipped_models()
        if not args.models or m.name in args.models
    }
    best = {name: (float("inf"), float("inf")) for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            wall, cpu = time.perf_counter(), time.process_time()
            out = upscale_array(model, image, options)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert out.shape[0] == height * model.scale, out.shape
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))

    print("| model | scale | wall s | CPU s | wall s per input MP | CPU s per input MP |")
    print("|---|---|---|---|---|---|")
    for name, (wall, cpu) in best.items():
        scale = models[name].scale
        print(
            f"| {name} | x{scale} | {wall:.1f} | {cpu:.1f} | {wall / megapixels:.0f} "
            f"| {cpu / megapixels:.0f} |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\n{args.image.name} {width}x{height} ({megapixels:.3f} MP), preset {args.preset}, "
        f"{torch.get_num_threads()} thread(s) of {os.cpu_count()} CPUs, best of {args.rounds} "
        f"rounds, load average {load:.1f} at the end, torch {torch.__version__}, "
        f"numpy {np.__version__}"
    )


if __name__ == "__main__":
    main()
