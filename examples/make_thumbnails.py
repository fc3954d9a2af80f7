"""Render the template thumbnails: example_workflows/<name>.jpg for every <name>.json.

ComfyUI's template browser shows ``<name>.jpg`` beside each custom-node template. Each
thumbnail is a real result: a crop of examples/sample.png enlarged without interpolation (left)
next to the shipped model the workflow names (right), with the workflow's caption. Run it from a
checkout: ``PYTHONPATH=<folder holding nexus_upscaler> python examples/make_thumbnails.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from nexus_upscaler.comfy_nodes import logic
from nexus_upscaler.core import engine, load_model
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
SIZE = 512
CAPTIONS = {
    "nexus_upscale_alpha": "alpha kept",
    "nexus_upscale_by_factor": "x2 from a x4 model",
    "nexus_model_in_builtin_node": "NEXUS model, built-in node",
}


def _model_name(workflow: dict) -> str:
    loader = next(n for n in workflow["nodes"] if n["type"] == "NEXUSUpscaleModelLoader")
    return loader["widgets_values"][0]


def _checker(size: int, cell: int = 16) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size] // cell
    board = np.where((yy + xx) % 2 == 0, 205, 150).astype(np.uint8)
    return Image.fromarray(board).convert("RGB")


def render(name: str, workflow: dict) -> Image.Image:
    choice = _model_name(workflow)
    model = load_model(logic.shipped_model_path(choice), device="cpu")
    crop = Image.open(ROOT / "examples" / "sample.png").convert("RGB").crop((96, 96, 224, 224))
    rgba = np.array(crop.convert("RGBA"))
    if name == "nexus_upscale_alpha":  # a soft round cut-out, so the alpha shows
        yy, xx = np.mgrid[0:128, 0:128]
        distance = np.hypot(yy - 64, xx - 64)
        rgba[..., 3] = np.clip((46 - distance) * 24, 0, 255).astype(np.uint8)
    options = engine.UpscaleOptions(tile=None, overlap=16, precision="fp32", device="cpu")
    out = engine.upscale_array(model, rgba, options)  # (512, 512, 4) at x4
    half = SIZE // 2
    before = Image.fromarray(rgba).crop((32, 0, 96, 128)).resize((half, SIZE), Image.NEAREST)
    after = Image.fromarray(out).crop((128, 0, 384, 512))
    canvas = _checker(SIZE)
    canvas.paste(before, (0, 0), before)
    canvas.paste(after, (half, 0), after)
    draw = ImageDraw.Draw(canvas)
    draw.line([(half, 0), (half, SIZE)], fill=(255, 255, 255), width=3)
    font = ImageFont.load_default(size=24)
    caption = f"{choice}: {CAPTIONS.get(name, name)}"
    draw.rectangle([0, SIZE - 44, SIZE, SIZE], fill=(20, 20, 28))
    draw.text((12, SIZE - 36), caption, fill=(255, 255, 255), font=font)
    draw.text((10, 8), "input", fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=0)
    draw.text(
        (half + 10, 8), "NEXUS", fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=0
    )
    return canvas


def main() -> None:
    for path in sorted((ROOT / "example_workflows").glob("*.json")):
        image = render(path.stem, json.loads(path.read_text(encoding="utf-8")))
        image.save(path.with_suffix(".jpg"), quality=88, optimize=True)
        print(path.with_suffix(".jpg"))


if __name__ == "__main__":
    main()
