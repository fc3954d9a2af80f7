"""Training pairs made on the fly from folders of HR images.

Images are decoded once and kept in memory as uint8 arrays (``cache = true``), so an epoch costs
crops and resizes, not PNG decoding. DataLoader workers are forked after the cache is filled
and share it copy-on-write.

Every sample is a pure function of ``(seed, global sample index)``: ``StepSampler`` hands out
consecutive indices starting at ``start_step * batch * world_size``, so a resumed run (and every
DDP rank) sees exactly the data an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .config import Degradations
from .degradations import make_lr

__all__ = [
    "IMAGE_SUFFIXES",
    "list_images",
    "load_rgb",
    "PairDataset",
    "StepSampler",
]

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode ``path`` to ``(H, W, 3)`` uint8 RGB (greyscale is replicated, alpha dropped)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 array -> contiguous ``(3, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class PairDataset(Dataset):
    """``(lr, hr)`` uint8 tensors ``(3, p, p)`` and ``(3, p*s, p*s)``.

    Index ``i`` selects a random image, a random crop, a random flip/rot90 and the degradations,
    all drawn from ``np.random.default_rng((seed, i))``. Images smaller than the HR crop are
    skipped (with their names in ``skipped``). With ``hr_only`` the LR item is an empty tensor:
    the caller degrades whole batches itself (the real-world chain).
    """

    def __init__(
        self,
        folders: Sequence[str | Path],
        scale: int,
        lr_patch: int,
        length: int,
        seed: int = 0,
        flip: bool = True,
        rot90: bool = True,
        degradations: Degradations | None = None,
        cache: bool = True,
        hr_only: bool = False,
    ) -> None:
        self.scale = scale
        self.hr_only = hr_only
        self.lr_patch = lr_patch
        self.hr_patch = lr_patch * scale
        self.length = length
        self.seed = seed
        self.flip = flip
        self.rot90 = rot90
        self.degradations = degradations
        self.cache = cache
        self.paths: list[Path] = []
        self.images: list[np.ndarray] = []
        self.skipped: list[str] = []
        for folder in folders:
            for path in list_images(folder):
                if cache:
                    img = load_rgb(path)
                    h, w = img.shape[:2]
                else:
                    with Image.open(path) as im:
                        w, h = im.size
                if min(h, w) < self.hr_patch:
                    self.skipped.append(path.name)
                    continue
                self.paths.append(path)
                if cache:
                    self.images.append(img)
        if not self.paths:
            raise ValueError(
                f"no image in {', '.join(map(str, folders))} is at least "
                f"{self.hr_patch}x{self.hr_patch} (lr_patch {lr_patch} x scale {scale})"
            )

    def __len__(self) -> int:
        return self.length

    def _image(self, k: int) -> np.ndarray:
        return self.images[k] if self.cache else load_rgb(self.paths[k])

    def hr_crop(self, index: int) -> tuple[np.ndarray, np.random.Generator]:
        """The augmented HR crop of sample ``index`` and the generator that drew it (which then
        draws the sample's degradations)."""
        rng = np.random.default_rng((self.seed, index))
        img = self._image(int(rng.integers(len(self.paths))))
        h, w = img.shape[:2]
        p = self.hr_patch
        # Crop on the LR grid so the HR crop is aligned to whole LR pixels.
        top = int(rng.integers((h - p) // self.scale + 1)) * self.scale
        left = int(rng.integers((w - p) // self.scale + 1)) * self.scale
        hr = img[top : top + p, left : left + p]
        if self.flip and rng.random() < 0.5:
            hr = hr[:, ::-1]
        if self.rot90:
            hr = np.rot90(hr, int(rng.integers(4)))
        return np.ascontiguousarray(hr), rng

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr, rng = self.hr_crop(index)
        if self.hr_only:
            # The real-world chain runs on whole batches on the training device (trainer).
            return torch.empty(0, dtype=torch.uint8), to_chw_uint8(hr)
        lr = make_lr(hr, self.scale, self.degradations, rng)
        # uint8 crosses the worker pipe 4x smaller than float; the trainer converts batches.
        return to_chw_uint8(lr), to_chw_uint8(hr)


class StepSampler(Sampler[int]):
    """Indices for steps ``start_step .. total_steps-1``; rank ``r`` of ``world`` takes its slice.

    Step ``t`` of rank ``r`` uses indices ``(t*world + r)*batch + [0, batch)``.
    """

    def __init__(
        self, start_step: int, total_steps: int, batch: int, rank: int = 0, world: int = 1
    ):
        self.start_step = start_step
        self.total_steps = total_steps
        self.batch = batch
        self.rank = rank
        self.world = world

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.total_steps):
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)
