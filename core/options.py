"""What one upscale should do (``UpscaleOptions``) and how to stop it (``CancelToken``).

Both are part of the engine's public contract and are re-exported by ``core.engine``; they live
here so that the model runner (``core.runner``) and the tile loop (``core.engine``) share them
without importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .errors import UpscaleCancelled

Precision = Literal["auto", "fp32", "fp16", "bf16"]
ProgressFn = Callable[[int, int], None]


@dataclass
class UpscaleOptions:
    """How to upscale. Every field can come from a preset and be overridden per call."""

    tile: int | None = None
    """Tile size in input pixels; None = automatic from free memory and measured cost."""
    overlap: int = 32
    """Input pixels shared by neighbouring tiles (at most half a tile)."""
    precision: Precision = "auto"
    tta: bool = False
    """x8 self-ensemble: average the model over the 8 flips/rotations (8x slower)."""
    batch: int = 1
    """Tiles per forward pass."""
    device: str = "cpu"
    target_scale: float | None = None
    """Final scale; None = the model's. Below it: high-quality downscale; above: more passes."""
    alpha_mode: Literal["model", "resize"] = "model"
    """Alpha of RGBA/LA images: through the model as a gray image, or resized (bicubic)."""
    compile: bool = False
    """torch.compile the model (CUDA only; ignored on the CPU)."""
    threads: int | None = None
    """CPU threads the model's operations use during the call; None = what torch picks (the
    machine's cores). Fewer leaves cores to other work; on the CPU it sets the speed."""

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < 1:
            raise ValueError(f"tile must be a positive number of pixels or None, got {self.tile}")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {self.precision!r}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.target_scale is not None and not self.target_scale > 0:
            raise ValueError(f"target_scale must be > 0, got {self.target_scale}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be a positive number or None, got {self.threads}")
        if self.alpha_mode not in ("model", "resize"):
            raise ValueError(f"alpha_mode must be 'model' or 'resize', got {self.alpha_mode!r}")


class CancelToken:
    """Thread-safe cancel flag; the engine calls ``check()`` before every tile."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``UpscaleCancelled`` if ``cancel()`` was called."""
        if self._event.is_set():
            raise UpscaleCancelled("upscaling was cancelled")
