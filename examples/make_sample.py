"""Render examples/sample.png (256x256): shapes, gradients, text and fine texture, all made here.

The README's first command upscales it; run this file to make it again.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

size = 256
y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
sky = np.stack([40 + 120 * x, 90 + 100 * y, 200 - 80 * x * y], axis=2)
img = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
d = ImageDraw.Draw(img)
# fine texture: a woven checker and thin lines (where upscalers show their detail)
rng = np.random.default_rng(7)
tex = (((np.indices((96, 96)).sum(0) // 3) % 2) * 60 + rng.integers(0, 40, (96, 96))).astype(
    np.uint8
)
img.paste(Image.fromarray(np.dstack([tex + 120, tex + 80, tex + 30])), (148, 148))
for i in range(0, 96, 4):
    d.line([(8 + i, 150), (8 + i // 2, 244)], fill=(250, 240, 220), width=1)
# shapes with hard and soft edges
d.ellipse([20, 18, 120, 118], fill=(235, 80, 60), outline=(30, 20, 20), width=3)
d.polygon([(150, 20), (236, 40), (200, 120), (140, 96)], fill=(60, 170, 90), outline=(10, 40, 20))
d.rectangle([110, 100, 170, 140], fill=(250, 210, 60))
for r in range(6, 60, 6):
    d.arc([40 - r // 2, 180 - r // 2, 40 + r // 2 + 50, 180 + r // 2], 200, 340, fill=(20, 30, 70))
font = ImageFont.load_default(size=22) if hasattr(ImageFont, "load_default") else None
d.text(
    (12, 124), "NEXUS x4", fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0)
)
d.text((150, 126), "small text 0123", fill=(20, 20, 20), font=ImageFont.load_default(size=10))
img.save(Path(__file__).with_name("sample.png"), optimize=True)
