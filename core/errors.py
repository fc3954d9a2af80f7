"""Exception types of the package.

Every error a user can cause (a bad checkpoint, an unreadable image, a wrong preset) is one of
these, and its message names the file or field and what is wrong with it.
"""

from __future__ import annotations

from os import PathLike


class NexusError(Exception):
    """Base class of every error this package raises on purpose."""


# --- checkpoints -------------------------------------------------------------------------------


class CheckpointError(NexusError):
    """A checkpoint file cannot be used. ``path`` is the file, ``reason`` what is wrong."""

    def __init__(self, path: str | PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{reason}")


class CheckpointFormatError(CheckpointError):
    """Empty, truncated, corrupt, or not a checkpoint at all (e.g. a PNG renamed to .pth)."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that would import or run code outside the tensor allow-list."""


class UnknownArchitectureError(CheckpointError):
    """A readable state dict that no registered architecture recognises."""


class InconsistentCheckpointError(CheckpointError):
    """A state dict of a known architecture whose tensor shapes contradict each other."""


# --- images ------------------------------------------------------------------------------------


class ImageError(NexusError):
    """An image cannot be read or written. ``path`` is the file, ``reason`` what is wrong."""

    def __init__(self, path: str | PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{reason}")


class ImageReadError(ImageError):
    """Unreadable, truncated, unsupported, or a decompression bomb."""


class ImageWriteError(ImageError):
    """The output could not be written (the input is never touched)."""


class OutputExistsError(ImageWriteError):
    """The output path exists (or is an input) and overwriting was not allowed."""


# --- engine ------------------------------------------------------------------------------------


class UpscaleCancelled(NexusError):
    """The user cancelled; nothing was written."""


class TileTooSmallError(NexusError):
    """Out of memory even at the smallest tile size the engine allows."""


class PresetError(NexusError):
    """A preset (shipped or user) is invalid; the message names the preset and the field."""


class ModelNotFoundError(NexusError):
    """A model name is neither a shipped model nor an existing file."""


# --- training ----------------------------------------------------------------------------------


class ConfigError(NexusError):
    """A training configuration is invalid; the message names the file and the field."""
