"""nexus-eval: the paper protocol reproduces the published bicubic figures on Set5, and a
trained model file is evaluated next to bicubic in one Markdown table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from nexus_upscaler.core.training.cli import eval_main
from nexus_upscaler.core.training.imresize import imresize
from nexus_upscaler.core.training.metrics import psnr, ssim
from pictures import dataset, sample

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def table_rows(text: str) -> dict[str, list[float]]:
    rows = {}
    for line in text.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = [float(x) for c in cells[2:] for x in c.split(" / ")]
    return rows


@pytest.mark.parametrize(("scale", "published"), [(4, 28.42), (2, 33.66)])
def test_bicubic_on_set5_matches_the_published_figures(
    scale: int, published: float, capsys: pytest.CaptureFixture
) -> None:
    set5 = dataset("Set5")
    assert eval_main(["--bicubic-only", "--data", str(set5), "--scale", str(scale)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("| Method | Scale | Set5 PSNR / SSIM |")
    value, ssim_value = table_rows(out)["Bicubic"]
    assert value == pytest.approx(published, abs=0.05)
    assert ssim_value == pytest.approx({4: 0.8104, 2: 0.9299}[scale], abs=0.002)


def test_model_row_next_to_bicubic(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nexus_upscaler.core.archs import nexus_tiny
    from nexus_upscaler.core.loading import save_model

    torch.manual_seed(0)
    model = nexus_tiny(scale=4, embed_dim=16, depths=(1,), num_heads=2, window_size=4, num_feat=16)
    path = tmp_path / "tiny.safetensors"
    save_model(model, path)
    data = tmp_path / "hr"
    data.mkdir()
    from PIL import Image

    # Two small HR images keep the untrained model's forward cheap.
    Image.fromarray(sample(66, 98)).save(data / "shapes.png")
    Image.fromarray(sample(66, 98, top=150, left=150)).save(data / "texture.png")
    assert eval_main(["--model", str(path), "--data", str(data), "--name", "tiny"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == {"Bicubic", "tiny"}
    assert all(np.isfinite(rows["tiny"]))
    # An untrained network adds its (nearly random) residual to a bilinear upscale: worse.
    assert rows["tiny"][0] < rows["Bicubic"][0]
    # The model's scale is read from the file; contradicting it is an error.
    with pytest.raises(SystemExit):
        eval_main(["--model", str(path), "--data", str(data), "--scale", "2"])


def test_a_model_with_a_size_multiple_scores_images_smaller_than_its_padding(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A 24x32 HR image is a 6x8 input at x4: HyReSR pads it to 16x16, more than reflection can
    reach; nexus-eval pads as the engine does (reflect, then replicate) instead of failing."""
    from nexus_upscaler.core.archs import hyresr_tiny
    from nexus_upscaler.core.loading import load_model, save_model
    from PIL import Image

    torch.manual_seed(0)
    path = tmp_path / "tiny-hyresr.safetensors"
    save_model(hyresr_tiny(scale=4, base=8, depths=(1, 1, 1)), path)
    assert load_model(path).size_requirements.multiple_of == 16
    data = tmp_path / "hr"
    data.mkdir()
    Image.fromarray(sample(24, 32)).save(data / "small.png")
    assert eval_main(["--model", str(path), "--data", str(data), "--name", "tiny"]) == 0
    assert all(np.isfinite(table_rows(capsys.readouterr().out)["tiny"]))


def test_metrics_and_imresize_basics() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert psnr(img, img) == float("inf")
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + 5, 0, 255).astype(np.uint8)
    assert 30 < psnr(noisy, img) < 40
    # A constant image stays constant through the antialiased kernel and its mirrored borders.
    flat = np.full((20, 24, 3), 77, np.uint8)
    assert np.array_equal(imresize(flat, 0.25), np.full((5, 6, 3), 77, np.uint8))
    assert imresize(img, size=(7, 9)).shape == (7, 9, 3)
    assert imresize(img.astype(np.float32) / 255, 2.0).dtype == np.float32


def test_eval_needs_a_model_or_bicubic_only(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        eval_main(["--data", str(tmp_path), "--scale", "4"])
    with pytest.raises(SystemExit):
        eval_main(["--bicubic-only", "--data", str(tmp_path / "missing"), "--scale", "4"])
