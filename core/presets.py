"""Named presets of engine settings: shipped ones in ``presets.toml``, the user's own on top.

A preset sets tile ("auto" or pixels), overlap, precision, tta, batch and optionally device and
threads (CPU threads, "auto" = what torch picks).
Users add presets, or change shipped ones field by field, in
``<config dir>/nexus-upscaler/presets.toml``; a preset there with a new name starts from
``balanced``. ``get_preset(name, **overrides)`` turns a preset plus per-call overrides into the
engine's ``UpscaleOptions``; anything invalid raises ``PresetError`` naming the preset, the file
and the field.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import OptionError, PresetError

if TYPE_CHECKING:
    from .engine import UpscaleOptions

__all__ = [
    "DEFAULT_PRESET",
    "build_options",
    "PRECISIONS",
    "Preset",
    "get_preset",
    "list_presets",
    "preset_settings",
    "user_config_dir",
    "user_presets_path",
]

DEFAULT_PRESET = "balanced"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
ALPHA_MODES = ("model", "resize")
SHIPPED_PATH = Path(__file__).with_name("presets.toml")
CONFIG_DIR_ENV = "NEXUS_UPSCALER_CONFIG_DIR"

# the fields a preset may set; overrides may also set target_scale, alpha_mode and compile
PRESET_FIELDS = ("tile", "overlap", "precision", "tta", "batch", "device", "threads")
OVERRIDE_FIELDS = (*PRESET_FIELDS, "target_scale", "alpha_mode", "compile")
_MIN_TILE = 16


@dataclass(frozen=True)
class Preset:
    """One named preset: where it came from and the fields it sets (after inheritance)."""

    name: str
    settings: dict[str, Any]
    source: Path
    description: str = ""
    user: bool = False  # defined or changed by the user's presets.toml
    fields_set: tuple[str, ...] = field(default=())


def user_config_dir() -> Path:
    """The folder of the user's ``presets.toml``.

    ``$NEXUS_UPSCALER_CONFIG_DIR`` if set; else ``%APPDATA%\\nexus-upscaler`` on Windows,
    ``~/Library/Application Support/nexus-upscaler`` on macOS and
    ``$XDG_CONFIG_HOME/nexus-upscaler`` (default ``~/.config``) elsewhere.
    """
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "nexus-upscaler"


def user_presets_path() -> Path:
    return user_config_dir() / "presets.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML ({exc})") from exc
    except OSError as exc:
        raise PresetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    for name, table in data.items():
        if not isinstance(table, dict):
            raise PresetError(
                f"{path}: preset {name!r} must be a table ([{name}] followed by fields), "
                f"got {type(table).__name__}"
            )
    return data


class _Invalid(Exception):
    """A field's value is wrong: ``noun`` is what a file entry must hold ("a whole number >= 1"),
    ``must`` the same said of a setting ("be at least 1")."""

    def __init__(self, noun: str, must: str) -> None:
        super().__init__(noun)
        self.noun, self.must = noun, must


def _check_field(key: str, value: Any) -> Any:
    """Validate one field and return it normalised (tile "auto" -> None); raises ``_Invalid``."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if key == "tile":
        if value is None or (isinstance(value, str) and value.lower() == "auto"):
            return None
        if not is_int(value) or value < _MIN_TILE:
            raise _Invalid(
                f'"auto" or a whole number of pixels >= {_MIN_TILE}',
                f'be "auto" or a whole number of pixels of at least {_MIN_TILE}',
            )
        return value
    if key == "overlap":
        if not is_int(value) or value < 0:
            raise _Invalid(
                "a whole number of pixels >= 0", "be a whole number of pixels, 0 or more"
            )
        return value
    if key == "batch":
        if not is_int(value) or value < 1:
            raise _Invalid("a whole number >= 1", "be a whole number, at least 1")
        return value
    if key == "threads":
        if value is None or (isinstance(value, str) and value.lower() == "auto"):
            return None
        if not is_int(value) or value < 1:
            raise _Invalid(
                '"auto" or a whole number of threads >= 1',
                'be "auto" or a whole number of threads, at least 1',
            )
        return value
    if key in ("tta", "compile"):
        if not isinstance(value, bool):
            raise _Invalid("true or false", "be true or false")
        return value
    if key == "precision":
        if value not in PRECISIONS:
            raise _Invalid("one of " + ", ".join(PRECISIONS), "be one of " + ", ".join(PRECISIONS))
        return value
    if key == "alpha_mode":
        if value not in ALPHA_MODES:
            raise _Invalid(
                "one of " + ", ".join(ALPHA_MODES), "be one of " + ", ".join(ALPHA_MODES)
            )
        return value
    if key == "device":
        from .devices import DEVICE_FORMS, parse_device

        if not isinstance(value, str) or parse_device(value) is None:
            raise _Invalid(f"a device name: {DEVICE_FORMS}", f"be one of {DEVICE_FORMS}")
        return parse_device(value)
    if key == "target_scale":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise _Invalid("a positive number (or none for the model's own scale)", "be positive")
        return float(value)
    raise AssertionError(f"no rule for field {key!r}")  # callers check the name first


def _check_file_field(name: str, key: str, value: Any, where: str) -> Any:
    try:
        return _check_field(key, value)
    except _Invalid as bad:
        raise PresetError(
            f"{where}: preset {name!r}, field {key!r}: expected {bad.noun}, got {value!r}"
        ) from None


def _validate(name: str, table: dict[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    settings: dict[str, Any] = {}
    description = ""
    for key, value in table.items():
        if key == "description":
            if not isinstance(value, str):
                raise PresetError(
                    f"{path}: preset {name!r}, field 'description': expected text, got {value!r}"
                )
            description = value
            continue
        if key not in PRESET_FIELDS:
            raise PresetError(
                f"{path}: preset {name!r}: unknown field {key!r} "
                f"(known: {', '.join(PRESET_FIELDS)}, description)"
            )
        settings[key] = _check_file_field(name, key, value, str(path))
    _check_overlap(name, settings, str(path))
    return settings, description


def _check_overlap(name: str, settings: dict[str, Any], where: str) -> None:
    tile, overlap = settings.get("tile"), settings.get("overlap")
    if tile is not None and overlap is not None and 2 * overlap > tile:
        raise PresetError(
            f"{where}: preset {name!r}, field 'overlap': {overlap} is more than half of its "
            f"{tile}-pixel tile (overlap must be at most half the tile)"
        )


def _load_presets() -> dict[str, Preset]:
    shipped = _read_toml(SHIPPED_PATH)
    presets: dict[str, Preset] = {}
    for name, table in shipped.items():
        settings, description = _validate(name, table, SHIPPED_PATH)
        presets[name] = Preset(name, settings, SHIPPED_PATH, description, False, tuple(settings))
    user_path = user_presets_path()
    if not user_path.is_file():
        return presets
    for name, table in _read_toml(user_path).items():
        settings, description = _validate(name, table, user_path)
        base = presets.get(name) or presets[DEFAULT_PRESET]
        merged = {**base.settings, **settings}
        presets[name] = Preset(
            name,
            merged,
            user_path,
            description or (base.description if name in presets else ""),
            True,
            tuple(settings),
        )
    return presets


def list_presets() -> list[Preset]:
    """Every preset, shipped ones first in file order, then the user's new ones."""
    return list(_load_presets().values())


def preset_settings(
    name: str | None = None, *, resolve: bool = True, **overrides: Any
) -> dict[str, Any]:
    """The validated settings of preset ``name`` (default ``balanced``) with ``overrides`` applied.

    Keys are ``UpscaleOptions`` fields; tile ``None`` means automatic; device "auto" is resolved
    on this machine, unless ``resolve`` is False: a cluster job leaves the device as asked
    ("auto", "cuda") for each worker to resolve on its own node.
    Raises PresetError for an unknown preset or a broken presets file, OptionError (a
    PresetError) naming the field for an invalid override.
    """
    name = name or DEFAULT_PRESET
    presets = _load_presets()
    preset = presets.get(name)
    if preset is None:
        raise PresetError(
            f"unknown preset {name!r}; available: {', '.join(presets)} "
            f"(add your own in {user_presets_path()})"
        )
    settings = dict(preset.settings)
    for key, value in overrides.items():
        if key not in OVERRIDE_FIELDS:
            raise OptionError(key, value, f"is not a setting (known: {', '.join(OVERRIDE_FIELDS)})")
        try:
            settings[key] = _check_field(key, value)
        except _Invalid as bad:
            raise OptionError(key, value, f"must {bad.must}") from None
    # an overridden tile smaller than twice the preset's overlap is fine: the engine caps the
    # overlap at half a tile
    device = settings.get("device", "auto")
    settings["device"] = resolve_device(device) if resolve else device
    return settings


def get_preset(
    name: str | None = None, *, resolve: bool = True, **overrides: Any
) -> UpscaleOptions:
    """``UpscaleOptions`` for preset ``name`` (default ``balanced``) with per-call overrides.

    >>> get_preset("quality", tile=256).tile
    256
    """
    from .engine import UpscaleOptions

    return UpscaleOptions(**preset_settings(name, resolve=resolve, **overrides))


def build_options(
    preset: str | None = None,
    *,
    fallback_device: str | None = None,
    resolve: bool = True,
    **overrides: Any,
) -> UpscaleOptions:
    """What every face does to turn its controls into engine options.

    ``preset`` (None: the default) with ``overrides`` on top; an override that is None keeps the
    preset's value. ``fallback_device`` is the device to use when neither the preset nor an
    override names one (a host application's own device, e.g. ComfyUI's): a preset that names
    a device (the "cpu" preset) is the user's explicit choice and wins over it. ``resolve``
    False leaves the device as asked ("auto"), for a cluster's workers to resolve.

    Raises PresetError for an unknown preset, OptionError naming the field of a bad override.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    options = get_preset(preset, resolve=resolve, **given)
    if fallback_device is not None and "device" not in given:
        named = _load_presets().get(preset or DEFAULT_PRESET)
        if named is not None and named.settings.get("device", "auto") == "auto":
            # the host's own device: it exists, whatever torch reports to this process
            options = dataclasses.replace(options, device=str(fallback_device))
    return options


def resolve_device(device: str) -> str:
    """The device to run on; "auto" -> the first CUDA GPU, else Apple's MPS, else the CPU."""
    from .devices import resolve_device as resolve

    return resolve(device)
