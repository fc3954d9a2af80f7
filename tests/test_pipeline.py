"""One file in, one file out, with a real (tiny) spandrel model; and finding shipped models."""

from __future__ import annotations

import os

import numpy as np
import pytest
from nexus_upscaler.core.engine import CancelToken, UpscaleOptions, upscale_array
from nexus_upscaler.core.errors import ModelNotFoundError, OutputExistsError, UpscaleCancelled
from nexus_upscaler.core.loading import load_model, save_model
from nexus_upscaler.core.pipeline import plan_output_path, upscale_file
from nexus_upscaler.core.zoo import (
    default_model_name,
    list_shipped_models,
    resolve_model,
)
from PIL import Image, ImageCms
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

OPTIONS = UpscaleOptions(tile=32, overlap=4, device="cpu")


@pytest.fixture(scope="module")
def model(model_path):
    return load_model(model_path)


def picture(h: int = 24, w: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 6 % 256, y * 10 % 256, (x + y) * 4 % 256], axis=2).astype(np.uint8)


# --- output paths ------------------------------------------------------------------------------


def test_plan_output_path(tmp_path):
    src = tmp_path / "in" / "photo.jpeg"
    assert plan_output_path(src, None, "_x2") == tmp_path / "in" / "photo_x2.jpeg"
    assert plan_output_path(src, tmp_path / "out", "_x2") == tmp_path / "out" / "photo_x2.jpeg"
    assert plan_output_path(src, f"{tmp_path}/new/", "", "png") == tmp_path / "new" / "photo.png"
    assert plan_output_path(src, tmp_path / "big.webp", "_x2") == tmp_path / "big.webp"
    assert plan_output_path(tmp_path / "scan.bmp", None, "_x2") == tmp_path / "scan_x2.png"
    assert plan_output_path(src, None, "", "jpg") == src  # same name: upscale_file refuses it


# --- upscale_file ------------------------------------------------------------------------------


def test_writes_exactly_what_the_engine_returns(tmp_path, model):
    src, dst = tmp_path / "a.png", tmp_path / "out" / "a_x2.png"
    Image.fromarray(picture()).save(src)
    result = upscale_file(model, src, dst, OPTIONS)
    assert result.output_path == dst and result.output_size == (80, 48)
    expected = upscale_array(model, picture(), OPTIONS)
    np.testing.assert_array_equal(np.asarray(Image.open(dst)), expected)


def test_png_compression_level_trades_size_for_time(tmp_path, model):
    """Level 4 by default (as ComfyUI's Save Image: fast); 9 for the smallest file."""
    src = tmp_path / "a.png"
    rng = np.random.default_rng(0)
    noisy = np.clip(picture(96, 128) + rng.integers(0, 8, (96, 128, 3)), 0, 255)
    Image.fromarray(noisy.astype(np.uint8)).save(src)
    files = {}
    for level in (None, 4, 9, 1):
        dst = tmp_path / f"out_{level}.png"
        upscale_file(model, src, dst, OPTIONS, compress_level=level)
        files[level] = dst.read_bytes()
    assert files[None] == files[4]
    assert len(files[9]) < len(files[4])
    same = [np.asarray(Image.open(tmp_path / f"out_{k}.png")) for k in (4, 9, 1)]
    assert all(np.array_equal(same[0], other) for other in same[1:])


def test_never_overwrites_the_input_or_an_existing_output(tmp_path, model):
    src = tmp_path / "a.png"
    Image.fromarray(picture()).save(src)
    before = src.read_bytes()
    with pytest.raises(OutputExistsError, match="input"):
        upscale_file(model, src, tmp_path / "." / "a.png", OPTIONS, overwrite=True)
    os.link(src, tmp_path / "hardlink.png")
    with pytest.raises(OutputExistsError, match="input"):
        upscale_file(model, src, tmp_path / "hardlink.png", OPTIONS, overwrite=True)
    assert src.read_bytes() == before

    dst = tmp_path / "done.png"
    dst.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        upscale_file(model, src, dst, OPTIONS)
    assert dst.read_bytes() == b"keep me"
    upscale_file(model, src, dst, OPTIONS, overwrite=True)
    assert Image.open(dst).size == (80, 48)


def test_cancel_writes_nothing(tmp_path, model):
    src, dst = tmp_path / "a.png", tmp_path / "a_x2.png"
    Image.fromarray(picture(100, 100)).save(src)
    token = CancelToken()
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        token.cancel()  # the user presses Cancel after the first tile

    with pytest.raises(UpscaleCancelled):
        upscale_file(model, src, dst, OPTIONS, progress=progress, cancel=token)
    assert calls and calls[0][1] > 1
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


def test_gray_16_bit_and_metadata_are_kept(tmp_path, model):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "camera"
    exif[0x0112] = 6  # stored sideways: upright is 24 wide, 40 high
    src = tmp_path / "g.png"
    gray16 = (picture()[:, :, 0].astype(np.uint16) * 257) // 3
    Image.fromarray(gray16).save(src, icc_profile=icc, exif=exif.tobytes(), dpi=(300, 300))
    dst = tmp_path / "g_x2.tiff"
    upscale_file(model, src, dst, OPTIONS, format="tiff")
    with Image.open(dst) as out:
        assert out.mode == "I;16"  # gray and 16-bit
        assert out.size == (48, 80)  # orientation applied before upscaling
        assert out.info["icc_profile"] == icc
        assert round(out.info["dpi"][0]) == 300
        assert out.getexif().get(0x010F) == "camera" and out.getexif().get(0x0112, 1) == 1
        assert np.asarray(out).max() > 255  # really 16-bit values, not 8-bit ones widened


def test_jpeg_output_of_rgba_says_alpha_was_flattened(tmp_path, model):
    src = tmp_path / "a.png"
    rgba = np.dstack([picture(), np.full((24, 40), 128, np.uint8)])
    Image.fromarray(rgba).save(src)
    result = upscale_file(model, src, tmp_path / "a.jpg", OPTIONS)
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    assert any("alpha" in note for note in result.notes)


# --- shipped models (the zoo) ------------------------------------------------------------------


def test_empty_weights_folder_says_no_weights_ship_yet(tmp_path):
    assert list_shipped_models(tmp_path) == []
    assert default_model_name(tmp_path) is None
    with pytest.raises(ModelNotFoundError, match="no trained weights ship"):
        resolve_model(None, tmp_path)
    with pytest.raises(ModelNotFoundError, match="no trained weights ship"):
        resolve_model("nexus-x4", tmp_path)


def test_shipped_models_are_listed_from_their_metadata(tmp_path, model, model_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    save_model(model, weights / "nexus-x4.safetensors", description="the default")
    (weights / "other.safetensors").write_bytes(model_path.read_bytes())
    models = {m.name: m for m in list_shipped_models(weights)}
    assert set(models) == {"nexus-x4", "other"}
    assert models["nexus-x4"].scale == 2 and models["nexus-x4"].description == "the default"
    assert "Compact" in models["nexus-x4"].architecture
    assert default_model_name(weights) == "nexus-x4"
    assert resolve_model(None, weights) == weights / "nexus-x4.safetensors"
    assert resolve_model("other", weights) == weights / "other.safetensors"
    assert resolve_model(str(model_path), weights) == model_path
    with pytest.raises(ModelNotFoundError, match="nexus-x4, other"):
        resolve_model("missing", weights)


def test_a_requested_scale_picks_the_shipped_model_of_that_scale(tmp_path):
    """Asking for x2 with no model named runs a native x2 model, not x4 and a downscale;
    ``nexus-x<scale>`` wins over other models of that scale, and a scale nothing ships at
    falls back to the default."""
    weights = tmp_path / "weights"
    weights.mkdir()
    for name, scale in [("nexus-x4", 4), ("a-x2", 2), ("nexus-x2", 2), ("b-x3", 3)]:
        path = tmp_path / f"{name}.pth"
        save_file(Compact(num_feat=8, num_conv=1, upscale=scale).state_dict(), str(path))
        save_model(load_model(path), weights / f"{name}.safetensors")
    assert default_model_name(weights) == "nexus-x4"
    assert default_model_name(weights, scale=4) == "nexus-x4"
    assert default_model_name(weights, scale=2) == "nexus-x2"
    assert default_model_name(weights, scale=3) == "b-x3"
    assert default_model_name(weights, scale=8) == "nexus-x4"
    assert resolve_model(None, weights, scale=2) == weights / "nexus-x2.safetensors"
    assert resolve_model("nexus-x4", weights, scale=2) == weights / "nexus-x4.safetensors"


def test_models_are_offered_recommended_first_and_the_real_world_model_is_the_default(tmp_path):
    """Every face lists the zoo's models in one order: the real-world models first (they clean
    JPEG blocks and noise), then the faithful ones, then unknown files by name."""
    weights = tmp_path / "weights"
    weights.mkdir()
    names = [
        ("aaa-x4", 4),
        ("nexus-x4", 4),
        ("hyresr-x4", 4),
        ("hyresr-real-x4", 4),
        ("nexus-x2", 2),
    ]
    for name, scale in names:
        path = tmp_path / f"{name}.pth"
        save_file(Compact(num_feat=8, num_conv=1, upscale=scale).state_dict(), str(path))
        save_model(load_model(path), weights / f"{name}.safetensors")
    order = [m.name for m in list_shipped_models(weights)]
    assert order == ["hyresr-real-x4", "hyresr-x4", "nexus-x4", "nexus-x2", "aaa-x4"]
    assert default_model_name(weights) == "hyresr-real-x4"
    assert default_model_name(weights, scale=2) == "nexus-x2"
