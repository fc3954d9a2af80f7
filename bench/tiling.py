"""Benchmark of the tiled engine against a whole-image pass and a ComfyUI-style float tiler.

    .venv/bin/python bench/tiling.py                 # both anchors, CPU
    .venv/bin/python bench/tiling.py --only monarch  # one of: mosaic, monarch, large, swinir

Model: spandrel's RealESRGAN Compact x4 (64 features, 9 body convs, 0.36M parameters, the size of
the model in the issue's anchor). No trained weights can be downloaded here, so the setup fits it
for ``--steps`` Adam steps on T91 (random 64 px crops, x4 antialiased-bicubic LR) and caches the
weights (``--weights``); the output says how many steps it had.

Images: ``monarch`` is Set14 monarch.png (768x512). ``mosaic`` is 1440x1152, a 3x4 mosaic of
twelve 480x320 landscape B100 photos (img_001.. in order, landscape ones only) cropped to 1152
rows: the datasets hold no real photo that large. ``large`` is the same mosaic idea at 2880x2304
(engine only; the float tiler would need ~5 GB).

Every measurement runs in a fresh subprocess. Peak memory is the rise of the process's peak RSS
(VmHWM, which sees torch's allocations, unlike tracemalloc) over the same process after the same
job on a 16x16 image. Throughput is input megapixels per second of the timed job; the engine and
the reference tiler alternate, and the ratio is taken within this one run.

The reference tiler ``comfy_like`` is our own code written the way ComfyUI's ``tiled_scale`` and
upscale node work: float32 input, tiles at a stride of tile - overlap, a linear feather over the
whole overlap at every tile edge, full-size float ``out`` and ``out_div`` accumulators, a division,
a clamp, and the save node's float -> uint8 conversion (truncating).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
# the data sets training configs use ({datasets}: $NEXUS_DATASETS, else ../shared/datasets)
DATASETS = Path(os.environ.get("NEXUS_DATASETS") or ROOT.parent / "shared" / "datasets")


# --- model -------------------------------------------------------------------------------------


def compact_x4():
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=9, upscale=4)


def fit_compact(path: Path, steps: int) -> None:
    """Fit Compact x4 on T91 for ``steps`` steps and save it as safetensors."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    files = sorted((DATASETS / "T91").glob("*.bmp"))
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    images = [im for im in images if min(im.shape[:2]) >= 64]
    net = compact_x4()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.time()
    for step in range(steps):
        crops = []
        for _ in range(8):
            im = images[rng.integers(len(images))]
            y = rng.integers(im.shape[0] - 63)
            x = rng.integers(im.shape[1] - 63)
            crops.append(im[y : y + 64, x : x + 64])
        hr = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
        lr = torch.nn.functional.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True)
        loss = (net(lr.clamp(0, 1)) - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"  fit step {step}: L1 {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))


def load_descriptor(path: Path):
    from spandrel import ModelLoader

    return ModelLoader().load_from_file(str(path))


def tiny_swinir_path() -> Path:
    """A small random-init SwinIR x4 (window 8), saved once; transformers' seam figure."""
    from safetensors.torch import save_file
    from spandrel.architectures.SwinIR import SwinIR

    path = Path("/tmp/nexus_bench_swinir_x4.safetensors")
    if not path.exists():
        torch.manual_seed(0)
        net = SwinIR(
            upscale=4,
            in_chans=3,
            img_size=64,
            window_size=8,
            embed_dim=24,
            depths=[2, 2],
            num_heads=[2, 2],
            mlp_ratio=2,
            upsampler="pixelshuffledirect",
        )
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


# --- images ------------------------------------------------------------------------------------


def mosaic(cols: int, rows: int, height: int) -> np.ndarray:
    """Landscape 480x320 B100 photos in a cols x rows grid, cropped to ``height`` rows."""
    tiles = []
    for f in sorted((DATASETS / "B100").glob("*.png")):
        im = np.asarray(Image.open(f).convert("RGB"))
        if im.shape[:2] == (320, 480):
            tiles.append(im)
        if len(tiles) == cols * rows:
            break
    grid = [np.concatenate(tiles[r * cols : (r + 1) * cols], 1) for r in range(rows)]
    return np.ascontiguousarray(np.concatenate(grid, 0)[:height])


def load_image(name: str) -> np.ndarray:
    if name == "monarch":
        return np.asarray(Image.open(DATASETS / "Set14" / "monarch.png").convert("RGB"))
    if name == "mosaic":
        return mosaic(3, 4, 1152)
    if name == "large":
        return mosaic(6, 8, 2304)
    raise ValueError(name)


# --- the ComfyUI-style reference tiler (our own code) -----------------------------------------


def comfy_like(desc, image_u8: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """Float tiler in the manner of ComfyUI's upscale node; returns uint8 (H*s, W*s, 3)."""
    with torch.inference_mode():
        img = torch.from_numpy(image_u8.astype(np.float32) / 255.0)[None]  # LoadImage: float32
        x = img.movedim(-1, -3)
        s = desc.scale
        _, c, h, w = x.shape
        out = torch.zeros(1, desc.output_channels, h * s, w * s)
        div = torch.zeros(1, desc.output_channels, h * s, w * s)
        feather = overlap * s
        for y0 in range(0, h, tile - overlap):
            for x0 in range(0, w, tile - overlap):
                py = max(0, min(h - overlap, y0))
                px = max(0, min(w - overlap, x0))
                t = x[:, :, py : py + tile, px : px + tile]
                ps = desc(t)
                mask = torch.ones_like(ps)
                for k in range(feather):
                    a = (k + 1) / feather
                    if k < ps.shape[2] // 2:
                        mask[:, :, k, :] *= a
                        mask[:, :, -1 - k, :] *= a
                    if k < ps.shape[3] // 2:
                        mask[:, :, :, k] *= a
                        mask[:, :, :, -1 - k] *= a
                oy, ox = py * s, px * s
                out[:, :, oy : oy + ps.shape[2], ox : ox + ps.shape[3]] += ps * mask
                div[:, :, oy : oy + ps.shape[2], ox : ox + ps.shape[3]] += mask
        result = out / div
        del out, div
        result = torch.clamp(result.movedim(-3, -1), min=0, max=1.0)
        i = 255.0 * result[0].numpy()  # SaveImage: float -> uint8, truncating
        return np.clip(i, 0, 255).astype(np.uint8)


def whole_pass(desc, image_u8: np.ndarray) -> np.ndarray:
    """One forward over the whole image; float (H*s, W*s, 3) in [0, 1]."""
    with torch.inference_mode():
        x = torch.from_numpy(image_u8).permute(2, 0, 1)[None].float() / 255
        return desc(x)[0].permute(1, 2, 0).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# --- one measurement in a fresh process --------------------------------------------------------


def vm_hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    from nexus_upscaler.core import engine

    desc = load_descriptor(Path(args.weights))
    image = load_image(args.image)

    def run(img: np.ndarray) -> np.ndarray:
        if args.worker == "engine":
            opts = engine.UpscaleOptions(tile=args.tile, overlap=args.overlap)
            return engine.upscale_array(desc, img, opts)
        if args.worker == "comfy":
            return comfy_like(desc, img, args.tile, args.overlap)
        return whole_pass(desc, img)

    run(image[:16, :16])  # baseline: the same process after the same job on a 16x16 image
    base = vm_hwm()
    t0 = time.perf_counter()
    out = run(image)
    seconds = time.perf_counter() - t0
    peak = vm_hwm() - base
    np.save(args.out, out)
    print(
        json.dumps({"seconds": seconds, "peak": peak, "mp": image.shape[0] * image.shape[1] / 1e6})
    )


def measure(kind: str, image: str, weights: Path, tile: int, overlap: int, threads: int) -> dict:
    out = Path(f"/tmp/nexus_bench_{kind}_{image}_{tile}_{overlap}.npy")
    cmd = [sys.executable, __file__, "--worker", kind, "--image", image, "--weights", str(weights)]
    cmd += ["--tile", str(tile), "--overlap", str(overlap), "--out", str(out)]
    cmd += ["--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    info = json.loads(res.stdout.strip().splitlines()[-1])
    info["out"] = np.load(out)
    out.unlink()
    return info


def compare(name: str, weights: Path, tile: int, overlap: int, threads: int, repeats: int) -> dict:
    image = load_image(name)
    whole = measure("whole", name, weights, tile, overlap, threads)["out"]
    whole_round = np.rint(np.clip(whole, 0, 1) * 255).astype(np.uint8)  # how the engine rounds
    whole_trunc = np.clip(whole * 255.0, 0, 255).astype(np.uint8)  # how ComfyUI's save node does
    runs: dict[str, list[dict]] = {"engine": [], "comfy": []}
    for _ in range(repeats):
        for kind in ("engine", "comfy"):
            runs[kind].append(measure(kind, name, weights, tile, overlap, threads))
    eng, com = runs["engine"], runs["comfy"]
    row = {
        "image": f"{name} {image.shape[1]}x{image.shape[0]}",
        "tile/overlap": f"{tile}/{overlap}",
        "engine MP/s": max(r["mp"] / r["seconds"] for r in eng),
        "comfy MP/s": max(r["mp"] / r["seconds"] for r in com),
        "engine peak MB": min(r["peak"] for r in eng) / 1e6,
        "comfy peak MB": min(r["peak"] for r in com) / 1e6,
        "output MB": whole_round.nbytes / 1e6,
        "engine seam dB": psnr(eng[0]["out"], whole_round),
        "comfy seam dB": psnr(com[0]["out"], whole_trunc),
    }
    row["speed ratio"] = row["engine MP/s"] / row["comfy MP/s"]
    row["memory ratio"] = row["engine peak MB"] / row["comfy peak MB"]
    return row


def engine_only(name: str, weights: Path, tile: int, overlap: int, threads: int) -> dict:
    image = load_image(name)
    r = measure("engine", name, weights, tile, overlap, threads)
    out_mb = r["out"].nbytes / 1e6
    return {
        "image": f"{name} {image.shape[1]}x{image.shape[0]}",
        "tile/overlap": f"{tile}/{overlap}",
        "engine MP/s": r["mp"] / r["seconds"],
        "engine peak MB": r["peak"] / 1e6,
        "output MB": out_mb,
        "peak / output": r["peak"] / 1e6 / out_mb,
    }


def steady_speed(image_name: str, weights: Path, tile: int, overlap: int, repeats: int) -> dict:
    """Both tilers in this process, alternated, each timed best of ``repeats`` after a warm-up."""
    from nexus_upscaler.core import engine

    desc = load_descriptor(weights)
    image = load_image(image_name)
    opts = engine.UpscaleOptions(tile=tile, overlap=overlap)
    runs = {
        "engine": lambda: engine.upscale_array(desc, image, opts),
        "comfy": lambda: comfy_like(desc, image, tile, overlap),
    }
    best = {}
    for name, run in runs.items():
        run()  # warm-up on the full image: oneDNN primitives, allocator, page faults
        best[name] = float("inf")
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    mp = image.shape[0] * image.shape[1] / 1e6
    return {
        "image": f"{image_name} {image.shape[1]}x{image.shape[0]} (steady state)",
        "tile/overlap": f"{tile}/{overlap}",
        "engine MP/s": mp / best["engine"],
        "comfy MP/s": mp / best["comfy"],
        "speed ratio": best["comfy"] / best["engine"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", choices=["mosaic", "monarch", "large", "swinir"], action="append")
    p.add_argument("--weights", default="/tmp/nexus_bench_compact_x4.safetensors")
    p.add_argument("--steps", type=int, default=150, help="fitting steps on T91 (cached)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--tile-sizes",
        action="store_true",
        help="the model's cost per pixel by square tile size (best of 4), plain and per useful "
        "pixel at overlap 32: what the CPU cap on automatic tiles rests on",
    )
    p.add_argument(
        "--steady",
        action="store_true",
        help="speed only: engine and ComfyUI-like tiler alternated in this one process after a "
        "full warm-up run each, best of --repeats (leaves out first-call costs)",
    )
    # worker-only arguments
    p.add_argument("--worker", choices=["engine", "comfy", "whole"], help=argparse.SUPPRESS)
    p.add_argument("--image", help=argparse.SUPPRESS)
    p.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    p.add_argument("--overlap", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    torch.set_num_threads(args.threads)
    weights = Path(args.weights)
    if not weights.exists():
        print(f"fitting Compact x4 for {args.steps} steps on T91 -> {weights}", flush=True)
        fit_compact(weights, args.steps)
    print(f"model: RealESRGAN Compact x4, 64nf 9nc, fitted on T91 ({weights}); CPU, no GPU here")
    print(f"torch {torch.__version__}, {args.threads} threads")
    only = args.only or ["mosaic", "monarch", "large", "swinir"]

    def show(row: dict) -> None:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))

    if args.tile_sizes:
        desc = load_descriptor(weights)
        best = {size: float("inf") for size in (128, 192, 256, 384, 512)}
        with torch.inference_mode():
            for _ in range(4):
                for size in best:
                    x = torch.rand(1, 3, size, size)
                    t0 = time.perf_counter()
                    desc(x)
                    best[size] = min(best[size], (time.perf_counter() - t0) / size**2)
        for size, cost in best.items():
            useful = cost * (size / (size - 32)) ** 2
            show({"tile": size, "ns/px": cost * 1e9, "ns/useful px at overlap 32": useful * 1e9})
        return

    if args.steady:
        for name, tile, overlap in (("monarch", 128, 16), ("mosaic", 512, 32)):
            if name in only:
                show(steady_speed(name, weights, tile, overlap, max(args.repeats, 3)))
        return

    if "monarch" in only:
        show(compare("monarch", weights, 128, 16, args.threads, args.repeats))
    if "swinir" in only:
        row = compare("monarch", tiny_swinir_path(), 128, 16, args.threads, 1)
        row["image"] += " (SwinIR tiny, random init)"
        show(row)
    if "mosaic" in only:
        show(compare("mosaic", weights, 512, 32, args.threads, args.repeats))
    if "large" in only:
        show(engine_only("large", weights, 512, 32, args.threads))


if __name__ == "__main__":
    main()
