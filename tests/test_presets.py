"""Presets: the shipped five, user presets from the config folder, overrides, clear errors."""

from __future__ import annotations

import pytest
import torch
from nexus_upscaler.core.devices import available_devices, parse_device, resolve_device
from nexus_upscaler.core.errors import OptionError, PresetError
from nexus_upscaler.core.presets import (
    build_options,
    get_preset,
    list_presets,
    preset_settings,
    user_config_dir,
)


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    monkeypatch.setenv("NEXUS_UPSCALER_CONFIG_DIR", str(folder))
    return folder


def write_user(config_dir, text: str):
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "presets.toml"
    path.write_text(text)
    return path


def test_shipped_presets_exist_and_differ():
    names = [p.name for p in list_presets()]
    assert names == ["fast", "balanced", "quality", "low-memory", "cpu"]
    quality = preset_settings("quality")
    assert quality["tta"] is True and quality["precision"] == "fp32"
    assert preset_settings("low-memory")["tile"] == 192
    assert preset_settings("cpu")["device"] == "cpu"
    assert preset_settings("fast")["batch"] > preset_settings("balanced")["batch"]


def test_default_is_balanced_with_automatic_tiles():
    options = get_preset()
    assert options.tile is None  # "auto" in the file means automatic in the engine
    assert options.overlap == preset_settings("balanced")["overlap"]
    assert options.tta is False
    assert options.device in ("cpu", "cuda", "mps")  # "auto" resolved for this machine


def test_overrides_win_and_are_validated():
    options = get_preset("quality", tile=256, tta=False, device="cpu", target_scale=2)
    assert (options.tile, options.tta, options.device, options.target_scale) == (
        256,
        False,
        "cpu",
        2.0,
    )
    assert options.overlap == preset_settings("quality")["overlap"]
    with pytest.raises(OptionError, match="^overlap must be a whole number of pixels") as info:
        get_preset("balanced", overlap=-3)
    assert (info.value.field, info.value.value) == ("overlap", -3)
    with pytest.raises(OptionError, match="tiles is not a setting"):
        get_preset("balanced", tiles=256)


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("target_scale", 0, "--scale must be positive, got 0"),
        ("target_scale", -2.0, "--scale must be positive, got -2.0"),
        ("tile", 8, '--scale must be "auto" or a whole number of pixels of at least 16, got 8'),
        ("batch", 0, "--scale must be a whole number, at least 1, got 0"),
        ("precision", "fp8", "--scale must be one of auto, fp32, fp16, bf16, got 'fp8'"),
    ],
)
def test_a_bad_setting_is_said_in_the_faces_words(field, value, said):
    """Not "override: preset 'balanced', field 'target_scale'": a face names its own control."""
    with pytest.raises(OptionError) as info:
        get_preset(None, **{field: value})
    assert info.value.for_setting("--scale") == said
    assert "preset" not in str(info.value) and "override" not in str(info.value)


def test_device_names_are_checked_and_the_choices_listed():
    with pytest.raises(OptionError) as info:
        get_preset(None, device="gpu")
    message = info.value.for_setting("--device")
    assert message.startswith("--device must be one of auto, cpu, cuda, cuda:N")
    assert message.endswith("got 'gpu'")
    assert get_preset(None, device="CPU").device == "cpu"
    assert parse_device(" cuda:1 ") == "cuda:1" and parse_device("gpu") is None
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="a device this machine has: auto, cpu"):
            resolve_device("cuda")
    assert [value for value, _ in available_devices()][:2] == ["auto", "cpu"]


def test_build_options_keeps_the_preset_for_missing_controls_and_a_hosts_device():
    """None keeps the preset's value; a host's device is used unless the preset names one."""
    options = build_options("quality", tile=None, overlap=None, tta=None, batch=2)
    quality = preset_settings("quality")
    assert (options.tile, options.overlap, options.tta, options.batch) == (
        quality["tile"],
        quality["overlap"],
        quality["tta"],
        2,
    )
    assert build_options("balanced", fallback_device="cpu").device == "cpu"
    assert build_options("cpu", fallback_device="cpu").device == "cpu"
    assert build_options("balanced", fallback_device="cpu", device="cpu").device == "cpu"
    assert build_options("balanced", fallback_device="cuda:3").device == "cuda:3"
    assert build_options("cpu", fallback_device="cuda:3").device == "cpu"  # the preset's wins


def test_threads_come_from_a_preset_or_a_control(config_dir):
    """CPU threads: "auto" (torch's own choice) unless a preset or a face's control says."""
    assert preset_settings("balanced").get("threads") is None
    write_user(config_dir, "[background]\nthreads = 2\n")
    assert build_options("background").threads == 2
    assert build_options("background", threads=3).threads == 3
    assert build_options("background", threads="auto").threads is None
    assert build_options(None, threads=None).threads is None


def test_a_cluster_job_leaves_the_device_for_its_workers_to_resolve():
    """A cluster's workers resolve "auto" on their own nodes (GPUs the driver may lack)."""
    assert build_options("balanced", resolve=False).device == "auto"
    assert build_options("balanced", device="CUDA:1", resolve=False).device == "cuda:1"
    assert build_options("cpu", resolve=False).device == "cpu"
    with pytest.raises(OptionError, match="must be one of auto, cpu"):
        build_options(None, device="gpu", resolve=False)


def test_user_preset_adds_and_changes(config_dir):
    path = write_user(
        config_dir,
        """
        [print]
        description = "Large prints"
        tile = 384
        tta = true

        [fast]
        overlap = 24
        """,
    )
    presets = {p.name: p for p in list_presets()}
    assert presets["print"].user and presets["print"].source == path
    assert presets["print"].description == "Large prints"
    printing = preset_settings("print")
    assert printing["tile"] == 384 and printing["tta"] is True
    assert (
        printing["overlap"] == preset_settings("balanced")["overlap"]
    )  # new presets start from balanced
    fast = preset_settings("fast")
    assert fast["overlap"] == 24 and fast["batch"] == 4  # other shipped fields stay


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ("tile = -64", "tile", "pixels"),
        ('tile = "big"', "tile", "auto"),
        ('precision = "fp8"', "precision", "fp32"),
        ('tta = "yes"', "tta", "true or false"),
        ("batch = 0", "batch", ">= 1"),
        ("batch = 1.5", "batch", ">= 1"),
        ("threads = 0", "threads", "threads >= 1"),
        ("tiles = 256", "tiles", "unknown field"),
        ("tile = 64\noverlap = 40", "overlap", "half the tile"),
    ],
)
def test_invalid_user_preset_names_preset_file_and_field(config_dir, body, field, problem):
    path = write_user(config_dir, f"[mine]\n{body}\n")
    with pytest.raises(PresetError) as info:
        preset_settings("mine")
    message = str(info.value)
    assert "'mine'" in message and str(path) in message and f"'{field}'" in message
    assert problem in message


def test_broken_toml_names_the_file(config_dir):
    path = write_user(config_dir, "[mine\ntile = 3")
    with pytest.raises(PresetError, match="not valid TOML") as info:
        list_presets()
    assert str(path) in str(info.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(PresetError, match="unknown preset 'turbo'.*balanced"):
        get_preset("turbo")


def test_config_dir_follows_the_platform_convention(monkeypatch, tmp_path):
    monkeypatch.delenv("NEXUS_UPSCALER_CONFIG_DIR")
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_config_dir() == tmp_path / "xdg" / "nexus-upscaler"
    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "roaming"))
    assert user_config_dir() == tmp_path / "roaming" / "nexus-upscaler"
