"""The user's choices and their persistence in ``QSettings``.

``Choices`` is plain data (no Qt widgets), so the controller and the tests can reason about it;
``AppSettings`` reads and writes it. Tests pass an explicit ini path so they never touch the
user's real settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from ..core.imageio import DEFAULT_MAX_PIXELS

ORGANIZATION = "NEXUS Upscaler"
APPLICATION = "nexus-upscaler-gui"
MAX_RECENT_MODELS = 8
DEFAULT_MAX_MEGAPIXELS = DEFAULT_MAX_PIXELS // 1_000_000

# "same": the input's own format where it can be written (PNG, JPEG, WebP, TIFF), else PNG
FORMATS = ("png", "jpeg", "webp", "tiff", "same")
LOSSY_FORMATS = ("jpeg", "webp", "same")  # where the quality setting can matter
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
ALPHA_MODES = ("model", "resize")
# What to do when the planned output file already exists. Inputs are never overwritten,
# whatever the policy: the pipeline refuses, and the planner never picks an input's path.
OVERWRITE_POLICIES = ("rename", "overwrite", "fail")


@dataclass
class Choices:
    """Everything the user picks in the side panel; one field per persisted setting."""

    model: str = ""  # a shipped model's name or a checkpoint path; "" = none yet
    recent_models: list[str] = field(default_factory=list)
    preset: str = "balanced"
    tile: int = 0  # 0 = automatic
    overlap: int = 32
    precision: str = "auto"
    device: str = "auto"  # "auto" = the first CUDA GPU if there is one, else the CPU
    tta: bool = False
    target_scale: float = 0.0  # 0 = the model's own scale
    alpha_mode: str = "model"
    max_megapixels: int = DEFAULT_MAX_MEGAPIXELS  # larger inputs are refused; 0 = no limit
    threads: int = 0  # CPU threads for the model; 0 = automatic (what torch picks)
    show_advanced: bool = False
    output_dir: str = ""  # "" = an ``upscaled`` folder beside each input
    format: str = "png"
    quality: int = 95
    suffix: str = "_upscaled"
    name_with_model: bool = False  # add the model's name to output names
    overwrite: str = "rename"

    def remember_model(self, model: str) -> None:
        """Make ``model`` current and move it to the front of the recent list."""
        self.model = model
        self.recent_models = [model, *(m for m in self.recent_models if m != model)][
            :MAX_RECENT_MODELS
        ]


def _coerce(value: object, like: object) -> object:
    """QSettings' ini backend returns strings; turn them back into the default's type."""
    if isinstance(like, bool):
        if isinstance(value, str):
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if isinstance(like, int):
        return int(value)  # type: ignore[arg-type]
    if isinstance(like, float):
        return float(value)  # type: ignore[arg-type]
    if isinstance(like, list):
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value]  # type: ignore[union-attr]
    return str(value)


class AppSettings:
    """Persists ``Choices`` and the window layout.

    ``path`` names an ini file (tests, portable installs); without it the per-user ini file
    of the platform's config location is used.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            self._qs = QSettings(
                QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
            )
        else:
            self._qs = QSettings(str(path), QSettings.Format.IniFormat)

    @property
    def file_name(self) -> str:
        return self._qs.fileName()

    def load_choices(self) -> Choices:
        defaults = Choices()
        values = {}
        self._qs.beginGroup("choices")
        try:
            for f in fields(Choices):
                like = getattr(defaults, f.name)
                if not self._qs.contains(f.name):
                    continue
                try:
                    values[f.name] = _coerce(self._qs.value(f.name), like)
                except (TypeError, ValueError):
                    continue  # a hand-edited, unreadable value falls back to the default
        finally:
            self._qs.endGroup()
        choices = Choices(**values)
        # Options outside the known sets (an older version, a hand edit) fall back too.
        for name, allowed in (
            ("format", FORMATS),
            ("precision", PRECISIONS),
            ("alpha_mode", ALPHA_MODES),
            ("overwrite", OVERWRITE_POLICIES),
        ):
            if getattr(choices, name) not in allowed:
                setattr(choices, name, getattr(defaults, name))
        return choices

    def save_choices(self, choices: Choices) -> None:
        self._qs.beginGroup("choices")
        try:
            for name, value in asdict(choices).items():
                self._qs.setValue(name, value)
        finally:
            self._qs.endGroup()

    def load_bytes(self, key: str) -> QByteArray | None:
        value = self._qs.value(f"window/{key}")
        return value if isinstance(value, QByteArray) else None

    def save_bytes(self, key: str, value: QByteArray) -> None:
        self._qs.setValue(f"window/{key}", value)

    def sync(self) -> None:
        self._qs.sync()
