"""Images for tests that a fresh clone has: made here, or the committed ``examples/sample.png``;
and the benchmark data sets, for the few tests that need real ones (they skip without them).

The data sets are where training configs find them (``{datasets}``): ``$NEXUS_DATASETS``, else
``../shared/datasets`` beside the repository. docs/training.md, "Data sets", says where to get them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from nexus_upscaler.core.training.config import DATASETS_ENV, DEFAULT_DATASETS
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample.png"
"""256x256 RGB, rendered by ``examples/make_sample.py``: gradients, shapes, text, fine texture."""


def datasets_folder() -> Path:
    """``$NEXUS_DATASETS``, else ``../shared/datasets`` beside the repository."""
    return Path(os.environ.get(DATASETS_ENV) or REPO / DEFAULT_DATASETS).expanduser()


def dataset(name: str) -> Path:
    """The folder of benchmark set ``name`` (``Set5``, ``T91``, ...), or skip the test saying
    how to get it."""
    folder = datasets_folder() / name
    if not folder.is_dir():
        pytest.skip(
            f"needs the {name} benchmark images in {folder}: get them as docs/training.md "
            f'"Data sets" says, or set {DATASETS_ENV} to the folder that holds {name}'
        )
    return folder


def sample(h: int = 256, w: int = 256, top: int = 0, left: int = 0) -> np.ndarray:
    """A ``(h, w, 3)`` uint8 crop of ``examples/sample.png``, mirrored past its edges when larger."""
    with Image.open(SAMPLE) as im:
        image = np.asarray(im.convert("RGB"))
    size = image.shape[0]
    if top + h > size or left + w > size:
        reps = (-(-(top + h) // size), -(-(left + w) // size))
        flipped = [image, image[::-1]], [image[:, ::-1], image[::-1, ::-1]]
        rows = [
            np.concatenate([flipped[j % 2][i % 2] for j in range(reps[1])], axis=1)
            for i in range(reps[0])
        ]
        image = np.concatenate(rows, axis=0)
    return image[top : top + h, left : left + w].copy()


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like uint8 image: smooth shading, hard-edged shapes and fine texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([80 + 120 * xx, 60 + 100 * yy, 150 - 90 * xx * yy], axis=-1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(h / 10, h / 3)
        disc = (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r * r
        img[disc] = rng.uniform(0, 255, 3)
    img += (
        12
        * np.sin(xx * rng.uniform(40, 90))[..., None]
        * np.cos(yy * rng.uniform(40, 90))[..., None]
    )
    return np.clip(img, 0, 255).round().astype(np.uint8)


def photo_folder(folder: Path, count: int = 4, size: tuple[int, int] = (96, 128)) -> Path:
    """``folder`` filled with ``count`` photo-like PNGs of ``size`` (h, w): training data."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(photo(*size, seed=i)).save(folder / f"photo_{i}.png")
    return folder
