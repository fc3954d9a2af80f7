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


class ImageTooLargeError(ImageReadError):
    """More pixels than the reader allows (a guard against decompression bombs).

    ``pixels`` is the image's size, ``limit`` the allowance it broke; a genuine image is read by
    raising the limit (``read_image(..., max_pixels=)``, ``nexus-upscale --max-pixels``).
    """

    def __init__(self, path: str | PathLike[str] | None, pixels: int, limit: int) -> None:
        self.pixels, self.limit = pixels, limit
        super().__init__(
            path,
            f"{pixels / 1e6:.1f} megapixels, more than the limit of {limit / 1e6:.1f} megapixels "
            "that guards against decompression bombs; if the image is genuine, raise the limit "
            "(nexus-upscale --max-pixels, or Max pixels in the app's advanced options)",
        )


class ImageWriteError(ImageError):
    """The output could not be written (the input is never touched)."""


class OutputExistsError(ImageWriteError):
    """The output path exists (or is an input) and overwriting was not allowed."""


class OutputPlanError(NexusError):
    """The outputs asked for cannot be planned: one file named for several inputs, or a file
    name whose extension contradicts the format asked for."""


# --- engine ------------------------------------------------------------------------------------


class UpscaleCancelled(NexusError):
    """The user cancelled; nothing was written."""


class TileTooSmallError(NexusError):
    """Out of memory even at the smallest tile size the engine allows."""


class PresetError(NexusError):
    """A preset (shipped or user) is invalid; the message names the preset and the field."""


class OptionError(PresetError, ValueError):
    """One setting given for a single run (not in a presets file) is invalid.

    ``field`` is the setting's name (an ``UpscaleOptions`` field such as ``target_scale``),
    ``value`` what was given and ``expected`` what it must be, worded to follow the setting's
    name: a face that calls the setting something else (``--scale``) words the message with
    :meth:`for_setting`.
    """

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field} {expected}, got {value!r}")

    def for_setting(self, name: str) -> str:
        """The message with the setting called ``name``: "--scale must be positive, got 0"."""
        return f"{name} {self.expected}, got {self.value!r}"


class ModelNotFoundError(NexusError):
    """A model name is neither a shipped model nor an existing file."""


# --- cluster -----------------------------------------------------------------------------------


class ClusterError(NexusError):
    """A cluster job cannot start or go on: Ray is not installed, the cluster cannot be reached,
    it lacks what was asked (a GPU), or its workers cannot start."""


# --- training ----------------------------------------------------------------------------------


class ConfigError(NexusError):
    """A training configuration is invalid; the message names the file and the field."""


# --- messages ----------------------------------------------------------------------------------


def error_reason(exc: BaseException) -> str:
    """What went wrong, without the file (for a place that already names it: a queue row).

    The first line of the message; an error that is not ours keeps its type, since "KeyError: 3"
    says more than "3".
    """
    reason = getattr(exc, "reason", None)
    if isinstance(exc, NexusError) and isinstance(reason, str) and reason:
        return reason.strip().splitlines()[0]
    return one_line(exc)


def one_line(exc: BaseException) -> str:
    """The error as one line a user can read: ours as worded, others prefixed with their type."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, NexusError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
