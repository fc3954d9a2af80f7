"""Our default settings against ComfyUI's own upscale node on the CPU: whole processes, the write
included, the ratio printed per model.

Our side is ``nexus-upscale photo.png -o out.png --model M`` as a user runs it (balanced preset:
automatic tiles and precision, PNG at level 4). ComfyUI's side runs in ComfyUI's own Python and
calls the real nodes' code from a ComfyUI checkout: its model loader (``comfy.utils.
load_torch_file`` + spandrel), Load Image's conversion, ``ImageUpscaleWithModel.execute``
(``comfy.utils.tiled_scale``: 512 px tiles, 32 px overlap) and Save Image's PNG at
``compress_level=4``. Our architectures are registered with spandrel there as our custom node
registers them. Each side is also timed on a 16x16 crop of the photo, and that time (Python,
imports, model load) is subtracted: what remains is the work on the photo. Rounds alternate the
sides so both see the same machine; the best round of each is kept.

    python bench/vs_comfyui.py --comfyui /work/envs/comfyui --size 1440x1152
    python bench/vs_comfyui.py --comfyui ~/ComfyUI --comfyui-python ~/ComfyUI/.venv/bin/python

A ratio (ours / ComfyUI's seconds) below 1 means we are faster. Wall-clock seconds are what a
user waits on an idle machine; the CPU seconds (user + system of the process) are the figure to
read on a shared machine, where the wall clock mostly measures the other processes (run with
``--threads 1`` there, so that idle OpenMP threads do not spin).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMFYUI_SIDE = r"""
import sys
comfy_dir, model_path, image_path, out_path = sys.argv[1:5]
sys.argv = [sys.argv[0], "--cpu"]
sys.path.insert(0, comfy_dir)
import comfy.options
comfy.options.enable_args_parsing()  # as ComfyUI's main.py: --cpu
import numpy as np
import torch
from PIL import Image, ImageOps
from spandrel import ImageModelDescriptor, ModelLoader
import comfy.utils
from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel
from nexus_upscaler.core.detection import register_with_spandrel
register_with_spandrel()  # what our custom node does when ComfyUI loads it

# Load Upscale Model
sd = comfy.utils.load_torch_file(model_path, safe_load=True)
model = ModelLoader().load_from_state_dict(sd).eval()
assert isinstance(model, ImageModelDescriptor)
# Load Image
img = ImageOps.exif_transpose(Image.open(image_path)).convert("RGB")
image = torch.from_numpy(np.array(img).astype(np.float32) / 255.0)[None]
# Upscale Image (using Model)
out = ImageUpscaleWithModel.execute(model, image).args[0]
# Save Image
pixels = 255.0 * out[0].cpu().numpy()
Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out_path, compress_level=4)
"""


def prepare(work: Path, size: tuple[int, int], image: Path) -> tuple[Path, Path]:
    from PIL import Image

    with Image.open(image) as im:
        photo = im.convert("RGB")
    if photo.size != size:
        photo = photo.resize(size, Image.Resampling.LANCZOS)
    photo_path, crop_path = work / "photo.png", work / "crop16.png"
    photo.save(photo_path)
    photo.crop((0, 0, 16, 16)).save(crop_path)
    return photo_path, crop_path


def models(work: Path, names: list[str]) -> dict[str, Path]:
    import torch
    from nexus_upscaler.core.zoo import resolve_model
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.SPAN import SPAN

    out = {}
    for name in names:
        if name == "compact":  # RealESRGAN's realesr-general-x4v3 shape, random weights
            torch.manual_seed(0)
            path = work / "compact-x4.safetensors"
            save_file(Compact(num_feat=64, num_conv=32, upscale=4).state_dict(), str(path))
            out["Compact x4 (spandrel)"] = path
        elif name == "span":
            torch.manual_seed(0)
            path = work / "span-x4.safetensors"
            net = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4)
            save_file(net.state_dict(), str(path))
            out["SPAN x4 (spandrel)"] = path
        else:
            out[name] = Path(resolve_model(name))
    return out


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", type=Path, required=True, help="a ComfyUI checkout")
    p.add_argument("--comfyui-python", help="ComfyUI's Python (default: its .venv)")
    p.add_argument("--size", default="1440x1152", help="photo size WxH (default 1440x1152)")
    p.add_argument("--image", type=Path, default=ROOT / "examples" / "sample.png")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--models", nargs="*", default=["nexus-x4", "hyresr-x4", "compact"],
        help="shipped model names, compact and/or span",
    )  # fmt: skip
    p.add_argument("--extra", nargs="*", default=[], help="extra nexus-upscale options")
    p.add_argument(
        "--threads", type=int, help="OMP_NUM_THREADS for both sides (default: torch's choice)"
    )
    args = p.parse_args()
    comfy_python = args.comfyui_python or str(args.comfyui / ".venv" / "bin" / "python")
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        link = work / "path"
        link.mkdir()
        (link / "nexus_upscaler").symlink_to(ROOT)
        env = {**os.environ, "PYTHONPATH": str(link)}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        photo, crop = prepare(work, size, args.image)
        script = work / "comfyui_side.py"
        script.write_text(COMFYUI_SIDE)
        paths = models(work, args.models)
        threads = args.threads or "torch's default"
        print(f"# {size[0]}x{size[1]} photo, x4, CPU, threads: {threads}; best of {args.rounds}\n")
        print(
            "| model | ours s | ComfyUI s | ours / ComfyUI | CPU s ours | CPU s ComfyUI | CPU ratio |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, model in paths.items():
            best = {"ours": float("inf"), "comfy": float("inf")}
            best_cpu = {"ours": float("inf"), "comfy": float("inf")}
            for _ in range(args.rounds):
                for side in ("ours", "comfy"):
                    spent = {}
                    for which, src in (("photo", photo), ("crop", crop)):
                        out = work / f"{side}-{which}.png"
                        out.unlink(missing_ok=True)
                        if side == "ours":
                            cmd = [sys.executable, "-m", "nexus_upscaler.cli", str(src), "-o",
                                   str(out), "--model", str(model), "--quiet", *args.extra]  # fmt: skip
                        else:
                            cmd = [comfy_python, str(script), str(args.comfyui), str(model),
                                   str(src), str(out)]  # fmt: skip
                        spent[which] = timed(cmd, env)
                    best[side] = min(best[side], spent["photo"][0] - spent["crop"][0])
                    best_cpu[side] = min(best_cpu[side], spent["photo"][1] - spent["crop"][1])
            ratio = best["ours"] / best["comfy"]
            cpu_ratio = best_cpu["ours"] / best_cpu["comfy"]
            print(
                f"| {name} | {best['ours']:.1f} | {best['comfy']:.1f} | {ratio:.2f} | "
                f"{best_cpu['ours']:.1f} | {best_cpu['comfy']:.1f} | {cpu_ratio:.2f} |"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
