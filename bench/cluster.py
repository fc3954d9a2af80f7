"""Throughput of ``nexus-upscale --cluster`` with 1 and 2 workers, against the plain CLI.

    .venv/bin/python bench/cluster.py                     # 16 B100 crops of 128 px, nexus-x2
    .venv/bin/python bench/cluster.py --images 32 --crop 0 --model nexus-x4

One run, one set of images (B100 photos, by default their central 128 x 128 pixels so that the
run stays short on a CPU; each a separate PNG), one model:

1. the plain CLI loop (``core.pipeline.upscale_file`` per file, as ``nexus-upscale`` runs it) in
   this process with one torch thread;
2. a local Ray cluster (``ray.init(num_cpus=2)``, timed; or the one ``RAY_ADDRESS`` names) and ``core.cluster.upscale_on_cluster``
   with 1 worker, then 2 workers, each worker holding one core (one torch thread), as the
   issue asks: "about 2x if each worker gets a core".

The three runs are interleaved ``--rounds`` times and the best of each is kept. For each: the
job's wall time (for the cluster: actor start and model load included, Ray's own
start-up not), images per second over the job, and the steady rate from the first image written
to the last (actor start-up left out). Outputs go to a temporary folder and are deleted.
Figures on a shared, busy machine move with its load: compare within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
if not DATASETS.exists():
    DATASETS = Path("/work/shared/datasets")


def images(count: int, crop: int, folder: Path) -> list[Path]:
    """The first ``count`` B100 photos, each cropped to its central ``crop`` x ``crop`` pixels
    (0: whole) and saved as its own PNG in ``folder``."""
    from PIL import Image

    found = sorted((DATASETS / "B100").glob("*.png"))[:count]
    if len(found) < count:
        sys.exit(f"need {count} images in {DATASETS / 'B100'}, found {len(found)}")
    folder.mkdir(parents=True)
    files = []
    for path in found:
        with Image.open(path) as im:
            if crop:
                left, top = (im.width - crop) // 2, (im.height - crop) // 2
                im = im.crop((left, top, left + crop, top + crop))
            im.save(folder / path.name)
        files.append(folder / path.name)
    return files


def plans_for(files: list[Path], out: Path):
    from nexus_upscaler.core.inputs import InputFile
    from nexus_upscaler.core.outputs import plan_outputs

    return plan_outputs([InputFile(f, f.parent) for f in files], output=out, suffix="_up")


def run_cli(files, model_path, options, out: Path) -> tuple[float, float]:
    """The CLI's loop, one torch thread. Returns (job seconds, steady seconds)."""
    import torch
    from nexus_upscaler.core.loading import load_model
    from nexus_upscaler.core.pipeline import upscale_file

    torch.set_num_threads(1)
    started = time.perf_counter()
    descriptor = load_model(model_path, device="cpu")
    first = None
    for plan in plans_for(files, out):
        upscale_file(descriptor, plan.input.path, plan.output, options)
        first = first or time.perf_counter()
    end = time.perf_counter()
    return end - started, end - first


def run_cluster(files, state_dict, options, workers: int, out: Path) -> tuple[float, float]:
    from nexus_upscaler.core.cluster import connect, plan_workers, upscale_on_cluster

    with connect() as cluster:
        pool = plan_workers(cluster, "cpu", workers=workers, cpus_per_worker=1)
        started = time.perf_counter()
        first = None
        failed = []
        for result in upscale_on_cluster(plans_for(files, out), state_dict, options, pool):
            first = first or time.perf_counter()
            if result.error:
                failed.append(result.error)
        end = time.perf_counter()
    if failed:
        sys.exit(f"{len(failed)} images failed, e.g. {failed[0]}")
    return end - started, end - first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--model", default="nexus-x2", help="a shipped model or a checkpoint")
    parser.add_argument("--crop", type=int, default=128, help="central crop in pixels; 0: whole")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many, interleaved")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import ray
    from nexus_upscaler.core.loading import read_state_dict
    from nexus_upscaler.core.presets import build_options
    from nexus_upscaler.core.zoo import resolve_model

    model_path = resolve_model(args.model)
    state_dict = read_state_dict(model_path)
    options = build_options(None, device="cpu", tile=args.tile)
    scratch = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    names = ["plain CLI, 1 thread", "--cluster, 1 worker x 1 core", "--cluster, 2 workers x 1 core"]
    best: dict[str, tuple[float, float]] = {}

    def keep(name: str, seconds: float, steady: float) -> None:
        old = best.get(name, (float("inf"), float("inf")))
        best[name] = (min(old[0], seconds), min(old[1], steady))

    try:
        files = images(args.images, args.crop, scratch / "in")
        size = f"{args.crop} px crops" if args.crop else "whole"
        print(f"{len(files)} B100 images ({size}), model {model_path.name}, tile {args.tile}, CPU")
        started = time.perf_counter()
        if os.environ.get("RAY_ADDRESS"):  # a cluster started with `ray start --head`
            ray.init(log_to_driver=False, logging_level="ERROR")
            print(
                f"Ray: joined {os.environ['RAY_ADDRESS']}, {ray.cluster_resources()['CPU']:g} CPUs"
            )
        else:
            ray.init(
                "local",
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
            )
            print(f"Ray start-up (local cluster, 2 CPUs): {time.perf_counter() - started:.1f} s")
        try:
            for round_ in range(args.rounds):  # interleaved, so that a change of load hits all
                out = scratch / f"round{round_}"
                keep(names[0], *run_cli(files, model_path, options, out / "cli"))
                for workers in (1, 2):
                    keep(
                        names[workers],
                        *run_cluster(files, state_dict, options, workers, out / f"w{workers}"),
                    )
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = [(name, *best[name]) for name in names]

    n = len(files)
    print(f"\n{'run':<28} {'job s':>7} {'images/s':>9} {'steady images/s':>16}")
    for name, seconds, steady in rows:
        print(f"{name:<28} {seconds:>7.1f} {n / seconds:>9.2f} {(n - 1) / steady:>16.2f}")
    cli, one, two = rows
    print(
        f"\n2 workers / 1 worker: x{one[1] / two[1]:.2f} over the job, "
        f"x{one[2] / two[2]:.2f} steady"
    )
    print(
        f"1 worker against the plain CLI: {100 * (one[1] / cli[1] - 1):+.0f}% time over the job, "
        f"{100 * (one[2] / cli[2] - 1):+.0f}% steady"
    )


if __name__ == "__main__":
    main()
