"""`nexus-upscale` run as a user runs it, on real PNGs with a tiny spandrel model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from nexus_upscaler.cli import main
from nexus_upscaler.core.loading import save_model
from PIL import Image, ImageCms
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXUS_UPSCALER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NEXUS_UPSCALER_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)


def picture(h: int = 20, w: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def run(*argv: str) -> int:
    return main(["--quiet", "--device", "cpu", *argv])


def test_folder_with_a_bad_file_goes_on_and_fails_at_the_end(tmp_path, model_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(picture()).save(src / "a.png")
    Image.fromarray(picture(16, 12)).save(src / "sub" / "b.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = run(str(src), "-r", "-o", "out", "--model", str(model_path))
    captured = capsys.readouterr()
    assert code == 1
    assert Image.open(tmp_path / "out" / "a_x2.png").size == (60, 40)
    assert Image.open(tmp_path / "out" / "sub" / "b_x2.png").size == (24, 32)  # tree kept
    assert not (tmp_path / "out" / "broken_x2.png").exists()
    assert "2 written, 1 failed" in captured.err
    assert "broken.png" in captured.err and "Traceback" not in captured.err


def test_single_file_to_a_named_output_with_format_and_scale(tmp_path, model_path):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    assert run("a.png", "-o", "big.jpg", "--model", str(model_path), "--quality", "80") == 0
    with Image.open(tmp_path / "big.jpg") as im:
        assert im.format == "JPEG" and im.size == (60, 40)
    assert (
        run("a.png", "--model", str(model_path), "--scale", "1", "-f", "webp", "--threads", "1")
        == 0
    )
    assert Image.open(tmp_path / "a_x1.webp").size == (30, 20)


def test_glob_and_refusing_to_overwrite(tmp_path, model_path, capsys):
    for i in range(2):
        Image.fromarray(picture(seed=i)).save(tmp_path / f"p{i}.png")
    assert run("p*.png", "--model", str(model_path)) == 0
    first = (tmp_path / "p0_x2.png").read_bytes()
    (tmp_path / "p1_x2.png").write_bytes(b"user's file")
    capsys.readouterr()
    assert run("p0.png", "p1.png", "--model", str(model_path), "--tile", "64") == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "p1_x2.png").read_bytes() == b"user's file"
    assert run("p0.png", "p1.png", "-o", "one.png", "--model", str(model_path)) == 2
    assert "several inputs" in capsys.readouterr().err and not (tmp_path / "one.png").exists()
    assert run("p1.png", "--model", str(model_path), "--overwrite") == 0
    assert Image.open(tmp_path / "p1_x2.png").size == (60, 40)
    # an output named like the input is refused even with --overwrite
    assert run("p0.png", "-o", "p0.png", "--model", str(model_path), "--overwrite") == 1
    assert Image.open(tmp_path / "p0.png").size == (30, 20)
    assert (tmp_path / "p0_x2.png").read_bytes() == first


def test_skip_existing_resumes_a_batch(tmp_path, model_path, capsys):
    """--skip-existing re-runs a batch without touching outputs already there."""
    for i in range(3):
        Image.fromarray(picture(seed=i)).save(tmp_path / f"p{i}.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p1_x2.png").write_bytes(b"done earlier")
    assert run("p*.png", "-o", "out/", "--model", str(model_path), "--skip-existing") == 0
    assert "2 written, 1 skipped (output exists), 0 failed" in capsys.readouterr().out
    assert (tmp_path / "out" / "p1_x2.png").read_bytes() == b"done earlier"
    assert Image.open(tmp_path / "out" / "p2_x2.png").size == (60, 40)
    with pytest.raises(SystemExit):  # one or the other
        run("p0.png", "--model", str(model_path), "--skip-existing", "--overwrite")
    # an output named like its input is still refused, not silently skipped
    assert run("p0.png", "-o", "p0.png", "--model", str(model_path), "--skip-existing") == 1


def test_interrupt_leaves_no_partial_file(tmp_path, model_path, monkeypatch):
    Image.fromarray(picture(100, 100)).save(tmp_path / "a.png")

    def interrupted_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    assert run("a.png", "-o", "out/", "--model", str(model_path)) == 130
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == []


def test_metadata_16_bit_gray_and_orientation_survive(tmp_path, model_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "camera"
    exif[0x0112] = 8  # stored rotated: upright it is 20 wide, 30 high
    Image.fromarray(picture()).save(
        tmp_path / "photo.png", icc_profile=icc, exif=exif.tobytes(), dpi=(300, 300)
    )
    deep = (np.random.default_rng(3).integers(0, 65536, (20, 30, 3))).astype(np.uint16)
    from nexus_upscaler.core.imageio import write_image

    write_image(tmp_path / "deep.png", deep)
    Image.fromarray(picture()[:, :, 1]).save(tmp_path / "gray.png")
    assert run("photo.png", "deep.png", "gray.png", "-o", "out", "--model", str(model_path)) == 0
    with Image.open(tmp_path / "out" / "photo_x2.png") as im:
        assert im.size == (40, 60)
        assert im.info["icc_profile"] == icc and round(im.info["dpi"][0]) == 300
        assert im.getexif().get(0x010F) == "camera" and im.getexif().get(0x0112, 1) == 1
    from nexus_upscaler.core.imageio import read_image

    out = read_image(tmp_path / "out" / "deep_x2.png")
    assert out.array.dtype == np.uint16 and out.array.shape == (40, 60, 3)
    assert len(np.unique(out.array % 257)) > 1  # not 8-bit values scaled up
    assert Image.open(tmp_path / "out" / "gray_x2.png").mode == "L"


def test_model_errors_are_one_line(tmp_path, capsys):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    assert run("a.png") == 2  # no --model and no shipped weights
    err = capsys.readouterr().err
    assert "no trained weights ship" in err and "Traceback" not in err
    (tmp_path / "fake.pth").write_bytes(b"\x89PNG\r\n\x1a\nnot a model")
    assert run("a.png", "--model", "fake.pth") == 2
    err = capsys.readouterr().err
    assert "fake.pth" in err and len(err.strip().splitlines()) == 1
    assert run("a.png", "--model", "fake.pth", "--debug") == 2
    assert "Traceback" in capsys.readouterr().err


def test_shipped_default_model_is_used_and_listed(tmp_path, model_path, capsys):
    from nexus_upscaler.core.loading import load_model

    (tmp_path / "weights").mkdir()
    save_model(
        load_model(model_path), tmp_path / "weights" / "nexus-x4.safetensors", description="test"
    )
    Image.fromarray(picture()).save(tmp_path / "a.png")
    assert run("a.png") == 0
    assert Image.open(tmp_path / "a_x2.png").size == (60, 40)
    assert main(["--list-models"]) == 0
    listing = capsys.readouterr().out
    assert "nexus-x4" in listing and "x2" in listing and "(default)" in listing


def test_scale_without_a_model_runs_the_shipped_model_of_that_scale(tmp_path):
    """``--scale 2`` with no ``--model`` runs the shipped x2 model, not the x4 default and a
    downscale. Here the x2 model is the identity up to nearest upscaling (all weights zero) and
    the x4 one brightens everything, so the output shows which one ran."""
    from nexus_upscaler.core.loading import load_model

    weights = tmp_path / "weights"
    weights.mkdir()
    for name, scale, bias in [("nexus-x4", 4, 0.5), ("nexus-x2", 2, 0.0)]:
        net = Compact(num_feat=8, num_conv=1, upscale=scale)
        state = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
        last = [k for k in state if k.endswith(".bias")][-1]
        state[last] += bias
        save_file(state, str(tmp_path / f"{name}.pth"))
        save_model(load_model(tmp_path / f"{name}.pth"), weights / f"{name}.safetensors")
    src = picture()
    Image.fromarray(src).save(tmp_path / "a.png")
    assert run("a.png", "--scale", "2") == 0
    out = np.asarray(Image.open(tmp_path / "a_x2.png")).astype(int)
    assert np.abs(out - src.repeat(2, 0).repeat(2, 1)).max() <= 1
    assert run("a.png") == 0  # the default is still the x4 model
    assert np.asarray(Image.open(tmp_path / "a_x4.png")).mean() > src.mean() + 60


def test_list_presets_and_bad_preset(tmp_path, capsys):
    assert main(["--list-presets"]) == 0
    out = capsys.readouterr().out
    for name in ("fast", "balanced", "quality", "low-memory", "cpu"):
        assert name in out
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "presets.toml").write_text("[mine]\ntile = -1\n")
    Image.fromarray(picture()).save(tmp_path / "a.png")
    assert main(["a.png", "--preset", "mine"]) == 2
    err = capsys.readouterr().err
    assert "'mine'" in err and "'tile'" in err and "Traceback" not in err


def test_installed_console_script(tmp_path, model_path):
    """The entry point pip installs, run as a separate process, as a user runs it."""
    script = Path(sys.executable).with_name("nexus-upscale")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "nexus_upscaler.cli"]
    shutil.copy(REPO / "examples" / "sample.png", tmp_path / "sample.png")
    env = {**os.environ, "NEXUS_UPSCALER_WEIGHTS_DIR": str(tmp_path / "weights")}
    done = subprocess.run(
        [*command, "sample.png", "-o", "upscaled/", "--model", str(model_path), "--tile", "128"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a guard against a hang, not a speed check: on a starved CPU 120 s ran out
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "upscaled" / "sample_x2.png").size == (512, 512)
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300)
    assert (
        helped.returncode == 0 and "--overwrite" in helped.stdout and "examples:" in helped.stdout
    )


def test_rerunning_on_a_folder_leaves_our_outputs_alone(tmp_path, model_path, capsys):
    """The default output lands beside its input; a second run must not take it as an input."""
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(picture()).save(src / "photo.png")
    assert run(str(src), "--model", str(model_path)) == 0
    assert run(str(src), "--model", str(model_path), "--overwrite", "--suffix", "_again") == 0
    assert sorted(p.name for p in src.iterdir()) == ["photo.png", "photo_again.png", "photo_x2.png"]
    assert "left out 1 image this tool wrote earlier" in capsys.readouterr().err
    # a glob is a scan too; naming the output itself upscales it again
    assert run(str(src / "*.png"), "--model", str(model_path), "--suffix", "_glob") == 0
    assert not (src / "photo_x2_glob.png").exists() and (src / "photo_glob.png").exists()
    assert run(str(src / "photo_x2.png"), "--model", str(model_path)) == 0
    assert Image.open(src / "photo_x2_x2.png").size == (120, 80)


def test_a_folder_of_earlier_outputs_is_nothing_to_do_not_a_missing_folder(
    tmp_path, model_path, capsys
):
    Image.fromarray(picture()).save(tmp_path / "photo.png")
    assert run("photo.png", "-o", "out/", "--model", str(model_path)) == 0
    capsys.readouterr()
    assert run("out/", "--model", str(model_path)) == 0
    err = capsys.readouterr().err
    assert "no such file" not in err and "left out 1 image this tool wrote earlier" in err
    assert "nothing to upscale" in err


def test_an_output_never_lands_on_an_input_or_another_output(tmp_path, model_path, capsys):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    Image.fromarray(picture(seed=1)).save(tmp_path / "a.jpg")
    user_file = picture(seed=2)
    Image.fromarray(user_file).save(tmp_path / "a_x2.png")  # the user's own, named like ours
    # a.png's output would be a_x2.png, an input of this run: refused even with --overwrite
    assert run("a.png", "a_x2.png", "--model", str(model_path), "--overwrite") == 1
    err = capsys.readouterr().err
    assert "a_x2.png: is an input file; refusing to overwrite an input" in err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a_x2.png")), user_file)
    assert Image.open(tmp_path / "a_x2_x2.png").size == (60, 40)  # the other input was done
    # two inputs of one run that would write one file: the second is refused
    assert run("a.png", "a.jpg", "-f", "png", "-o", "out", "--model", str(model_path)) == 1
    assert "another input of this run writes this file too" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png"]


def test_a_named_output_decides_the_format(tmp_path, model_path, capsys):
    """`-o named.png -f jpg` would put JPEG bytes in a .png file: the name decides, or it is an
    error before any work is done."""
    Image.fromarray(picture()).save(tmp_path / "a.png")
    assert run("a.png", "-o", "named.png", "-f", "jpg", "--model", "missing.pth") == 2
    err = capsys.readouterr().err
    assert "named.png names a PNG file but the format asked for is JPG" in err
    assert "missing.pth" not in err  # refused before the model is loaded
    assert not (tmp_path / "named.png").exists()
    assert run("a.png", "-o", "named.jpeg", "-f", "jpg", "--model", str(model_path)) == 0
    assert Image.open(tmp_path / "named.jpeg").format == "JPEG"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--scale", "0"], "--scale must be positive, got 0.0"),
        (
            ["--tile", "8"],
            '--tile must be "auto" or a whole number of pixels of at least 16, got 8',
        ),
        (["--overlap", "-1"], "--overlap must be a whole number of pixels, 0 or more, got -1"),
        (["--batch", "0"], "--batch must be a whole number, at least 1, got 0"),
        (
            ["--threads", "0"],
            '--threads must be "auto" or a whole number of threads, at least 1, got 0',
        ),
    ],
)
def test_bad_settings_are_said_with_the_option_the_user_typed(tmp_path, argv, said, capsys):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    assert main(["a.png", *argv]) == 2
    err = capsys.readouterr().err
    assert f"nexus-upscale: error: {said}" in err
    assert "preset" not in err and "override" not in err and "target_scale" not in err


def test_an_unknown_device_lists_the_choices(tmp_path, capsys):
    Image.fromarray(picture()).save(tmp_path / "a.png")
    assert main(["a.png", "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "nexus-upscale: error: --device must be one of auto, cpu, cuda, cuda:N (the N-th GPU), "
        "mps, got 'gpu'"
    )
    if not torch.cuda.is_available():
        assert main(["a.png", "--device", "cuda:0"]) == 2
        assert "--device must be a device this machine has: auto, cpu" in capsys.readouterr().err


def test_max_pixels_refuses_and_admits(tmp_path, model_path, capsys):
    Image.fromarray(picture(40, 50)).save(tmp_path / "a.png")
    assert run("a.png", "--model", str(model_path), "--max-pixels", "1k") == 1
    err = capsys.readouterr().err
    assert "a.png: 0.0 megapixels, more than the limit of 0.0 megapixels" in err
    assert "--max-pixels" in err and "PIL" not in err
    assert run("a.png", "--model", str(model_path), "--max-pixels", "0.002M") == 0
    assert run("a.png", "--model", str(model_path), "--max-pixels", "0", "--overwrite") == 0
    with pytest.raises(SystemExit):
        run("a.png", "--max-pixels", "lots")


def test_progress_shows_steps_from_the_first_line(tmp_path, model_path, capsys):
    """No bare "0tile" line before the total is known; a bar with a count of the total."""
    Image.fromarray(picture(64, 64)).save(tmp_path / "a.png")
    assert main(["--device", "cpu", "a.png", "--model", str(model_path), "--tile", "32"]) == 0
    err = capsys.readouterr().err
    frames = [f for f in err.replace("\r", "\n").splitlines() if f.strip()]
    assert frames and "0tile" not in err and "it/s" not in err
    assert all("%|" in f for f in frames), frames
    assert any(f.rstrip().split("|")[-1].strip().startswith("1/") for f in frames), frames


SIGTERM_SCRIPT = """
import sys, time
from pathlib import Path
from PIL import Image
from nexus_upscaler.cli import main

def slow_save(self, fp, *args, **kwargs):
    fp.write(b"\\x89PNG half")
    fp.flush()
    Path("writing").write_text("now")
    time.sleep(60)

Image.Image.save = slow_save
sys.exit(main(["--quiet", "--device", "cpu", "a.png", "-o", "out/", "--model", sys.argv[1]]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is not a signal on Windows")
def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path, model_path):
    import signal
    import time

    Image.fromarray(picture()).save(tmp_path / "a.png")
    (tmp_path / "term.py").write_text(SIGTERM_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "term.py", str(model_path)], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "writing").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [p.name for p in (tmp_path / "out").iterdir()][0].endswith(".tmp")  # mid-write
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in proc.stderr.read().decode()
    assert list((tmp_path / "out").iterdir()) == []
