"""The real-world degradation chain, the quality figures and the evaluation protocols built on it:
inputs like the pictures people bring (blur, resize, noise, JPEG blocks), the same every time
under a seed, and figures that tell a model that cleans JPEG blocks from one that sharpens them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from nexus_upscaler.core.errors import ConfigError
from nexus_upscaler.core.training.cli import eval_main
from nexus_upscaler.core.training.config import RealDegradation, RealRound, config_from_dict
from nexus_upscaler.core.training.evaluate import make_degrader
from nexus_upscaler.core.training.metrics import blockiness, gmsd, haarpsi
from nexus_upscaler.core.training.realworld import (
    degrade_real,
    filter2d,
    jpeg,
    random_kernels,
    sinc_kernels,
    usm_sharpen,
)
from nexus_upscaler.core.training.trainer import Trainer
from pictures import photo, photo_folder
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def batch(n: int = 4, size: int = 64) -> torch.Tensor:
    arrays = [photo(size, size, seed=10 + i) for i in range(n)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


# --- kernels and filters ---


def test_random_kernels_are_normalised_blurs_of_their_own_size() -> None:
    gen = torch.Generator().manual_seed(3)
    # wide sigmas, so no tap inside a kernel's own square underflows to zero
    kernels = random_kernels(64, RealRound(sinc_prob=0.0, blur_sigma=(2.5, 3.5)), 21, gen)
    assert kernels.shape == (64, 21, 21)
    torch.testing.assert_close(kernels.sum(dim=(1, 2)), torch.ones(64, dtype=torch.float64))
    assert (kernels >= 0).all(), "Gaussian-family kernels have no negative taps"
    # each kernel is zero outside a centred odd square of side 7..21, and not all sides are equal
    sides = [int((k.abs().sum(0) > 0).sum()) for k in kernels]
    assert all(7 <= s <= 21 and s % 2 == 1 for s in sides)
    assert len(set(sides)) > 3
    # isotropic kernels are symmetric under transposition; some drawn kernels are not (aniso)
    symmetric = [bool(torch.allclose(k, k.T, atol=1e-12)) for k in kernels]
    assert any(symmetric) and not all(symmetric)


def test_sinc_kernels_ring() -> None:
    k = sinc_kernels(torch.tensor([math.pi / 3]), torch.tensor([21]), 21)[0]
    assert float(k.sum()) == pytest.approx(1.0)
    assert float(k.min()) < 0, "a sinc kernel has negative lobes: the ringing it adds"
    step = torch.zeros(1, 1, 40, 40)
    step[..., 20:] = 1.0
    out = filter2d(step, k[None].float())
    assert float(out.max()) > 1.02 and float(out.min()) < -0.02  # overshoot both sides of an edge


def test_filter2d_uses_each_samples_own_kernel() -> None:
    x = batch(2)
    identity = torch.zeros(2, 7, 7, dtype=torch.float64)
    identity[:, 3, 3] = 1
    box = identity.clone()
    box[1] = 1 / 49
    out = filter2d(x, box)
    torch.testing.assert_close(out[0], x[0])
    assert not torch.allclose(out[1], x[1])


# --- the chain ---


def test_degrade_real_makes_quantised_lr_of_the_right_size_and_is_seeded() -> None:
    hr = batch(4, 64)
    opt = RealDegradation()
    lr = degrade_real(hr, 4, opt, (7, 0))
    assert lr.shape == (4, 3, 16, 16)
    assert float(lr.min()) >= 0 and float(lr.max()) <= 1
    torch.testing.assert_close(lr * 255, (lr * 255).round(), atol=1e-4, rtol=0)
    torch.testing.assert_close(degrade_real(hr, 4, opt, (7, 0)), lr, atol=0, rtol=0)
    assert not torch.equal(degrade_real(hr, 4, opt, (7, 1)), lr)


def test_degrade_real_scale_one_is_a_restoration_input() -> None:
    hr = batch(2, 48)
    lr = degrade_real(hr, 1, RealDegradation(), (1, 2))
    assert lr.shape == hr.shape
    assert float((lr - hr).abs().mean()) > 0.005


def test_jpeg_is_a_real_encoder_and_leaves_an_8x8_grid() -> None:
    x = batch(1, 128)
    low = jpeg(x, [10])
    high = jpeg(x, [95])
    assert float((high - x).abs().mean()) < float((low - x).abs().mean())
    as_image = lambda t: (t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    assert blockiness(as_image(low), 8) > 1.3
    assert blockiness(as_image(x), 8) == pytest.approx(1.0, abs=0.15)


def test_usm_sharpen_adds_contrast_at_edges_and_leaves_flat_areas() -> None:
    x = torch.full((1, 3, 64, 64), 0.4)
    x[..., 32:] = 0.6
    sharp = usm_sharpen(x)
    assert float(sharp[..., 10, 5].sub(0.4).abs().max()) < 1e-6, "flat areas stay as they were"
    assert float(sharp[0, 0, 20, 31]) < 0.4 - 0.01 and float(sharp[0, 0, 20, 32]) > 0.6 + 0.01


# --- configuration ---


def real_config(tmp_path: Path, **real: object) -> dict:
    folder = photo_folder(tmp_path / "hr")
    return {
        "name": "real",
        "scale": 2,
        "output_dir": str(tmp_path / "run"),
        "network_g": {"type": "hyresr_tiny", "base": 8, "depths": [1, 1, 1], "num_heads": [1, 1, 1]},
        "datasets": {
            "train": {
                "hr_folders": [str(folder)], "lr_patch": 16, "batch_size": 3, "num_workers": 0,
                "degradation": "real", "real": real,
            },
            "val": {"hr_folder": str(folder), "every": 1000, "max_images": 2},
        },
        "train": {"total_iter": 6, "optim_g": {"lr": 2e-3}},
        "logger": {"print_every": 3, "checkpoint_every": 1000, "progress_bar": False},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("real", "field"),
    [
        ({"first": {"jpeg_range": [0, 90]}}, "datasets.train.real.first.jpeg_range"),
        ({"second": {"kernel_probs": [1, 1]}}, "datasets.train.real.second.kernel_probs"),
        ({"kernel_size": 20}, "datasets.train.real.kernel_size"),
        ({"final_sinc_prob": 1.5}, "datasets.train.real.final_sinc_prob"),
        ({"first": {"blur_sigma": [3.0, 1.0]}}, "datasets.train.real.first.blur_sigma"),
        ({"first": {"noise": 3}}, "datasets.train.real.first.noise"),
    ],
)
def test_bad_real_degradation_fields_are_named(tmp_path: Path, real: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}"):
        config_from_dict(real_config(tmp_path, **real), "cfg.toml")


def test_training_in_real_mode_degrades_batches_and_validates_on_fixed_inputs(
    tmp_path: Path,
) -> None:
    cfg = config_from_dict(real_config(tmp_path, sharpen_target=True))
    trainer = Trainer(cfg)
    hr = trainer.val_images[0]
    first = trainer.val_input(hr, 0)
    assert first.shape == (hr.shape[0] // 2, hr.shape[1] // 2, 3)
    np.testing.assert_array_equal(trainer.val_input(hr, 0), first)
    trainer.train()
    assert len(trainer.history) == 6 and all(np.isfinite(trainer.history))
    psnr_value, _ = trainer.validate()
    assert np.isfinite(psnr_value)


# --- figures and evaluation ---


def test_perceptual_figures_rank_a_cleaner_image_higher() -> None:
    ref = photo(96, 96, seed=1)
    noisy = np.clip(ref + np.random.default_rng(0).normal(0, 12, ref.shape), 0, 255).astype(
        np.uint8
    )
    mild = np.clip(ref + np.random.default_rng(0).normal(0, 3, ref.shape), 0, 255).astype(np.uint8)
    assert haarpsi(ref, ref) == pytest.approx(1.0, abs=1e-4)
    assert haarpsi(mild, ref) > haarpsi(noisy, ref)
    assert gmsd(ref, ref) == pytest.approx(0.0, abs=1e-6)
    assert gmsd(mild, ref) < gmsd(noisy, ref)


def test_web_and_real_inputs_are_the_same_for_every_run() -> None:
    hr = photo(64, 96, seed=4)
    for kind in ("web", "real"):
        degrade = make_degrader(kind, 4)
        a = degrade(hr, "a.png")
        assert a.shape == (16, 24, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(degrade(hr, "a.png"), a)
        assert not np.array_equal(degrade(hr, "b.png"), a), "seeded per image name"


def test_nexus_eval_web_reports_perceptual_figures_and_writes_a_sheet(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from nexus_upscaler.core.archs import hyresr_tiny
    from nexus_upscaler.core.loading import save_model

    folder = photo_folder(tmp_path / "hr", count=2, size=(64, 80))
    model = tmp_path / "tiny.safetensors"
    save_model(hyresr_tiny(scale=2, base=8, depths=(1, 1, 1), num_heads=(1, 1, 1)), model)
    sheet = tmp_path / "sheet.png"
    argv = ["--model", str(model), "--data", str(folder), "--degradation", "web"]
    assert eval_main([*argv, "--sheet", str(sheet), "--sheet-crop", "16"]) == 0
    out = capsys.readouterr().out
    assert "| Method | Scale | hr PSNR / SSIM / HaarPSI / GMSD / blockiness |" in out
    rows = {
        line.split("|")[1].strip(): [float(v) for v in line.split("|")[3].split(" / ")]
        for line in out.splitlines()
        if line.startswith("| ") and " x2 " in line
    }
    assert set(rows) == {"Bicubic", "tiny.safetensors"}
    assert all(len(v) == 5 for v in rows.values())
    assert rows["Bicubic"][4] > 1.05, "a JPEG input's blocks show after bicubic"
    with Image.open(sheet) as im:
        # input, bicubic, the model, the original: four 32-pixel columns; two image rows
        assert im.width == 4 * 32 + 3 * 4 and im.height > 2 * 32


# --- perceptual signals without downloaded weights ---


def test_fft_loss_weighs_lost_detail_more_than_a_brightness_shift() -> None:
    from nexus_upscaler.core.training.losses import FFTLoss

    x = batch(2, 48)
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    shifted = (x + 0.05).clamp(0, 1)
    loss = FFTLoss()
    assert float(loss(x, x)) == 0.0
    l1 = lambda a: float((a - x).abs().mean())  # noqa: E731
    # per unit of pixel L1, a blur costs far more than a flat shift (which lives in one bin)
    assert float(loss(blurred, x)) / l1(blurred) > 5 * float(loss(shifted, x)) / l1(shifted)


def test_random_feature_loss_is_a_fixed_network_from_its_seed() -> None:
    from nexus_upscaler.core.training.losses import RandomFeatureLoss

    x = batch(2, 48)
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    a, b, other = RandomFeatureLoss(seed=0), RandomFeatureLoss(seed=0), RandomFeatureLoss(seed=1)
    assert float(a(noisy, x)) == float(b(noisy, x)) > 0
    assert float(other(noisy, x)) != float(a(noisy, x))
    assert float(a(x, x)) == 0.0
    assert not any(p.requires_grad for p in a.parameters())
    pred = noisy.clone().requires_grad_(True)
    a(pred, x).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0


def test_artifact_loss_targets_what_the_ema_model_does_not_do() -> None:
    from nexus_upscaler.core.training.losses import ArtifactLoss

    x = batch(1, 48)
    smooth = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    speckled = smooth + 0.1 * (torch.rand_like(x) > 0.9)  # artefacts the EMA output lacks
    loss = ArtifactLoss()
    assert float(loss(speckled, smooth, x)) > 0
    # the same speckles, but where the EMA output is further from the target: they are kept
    # as detail, not penalised
    mild = x + 0.01 * (torch.rand_like(x) > 0.9)
    far_ema = x + 0.2
    assert float(loss(mild, x, x)) > 0
    assert float(loss(mild, far_ema, x)) == 0.0


def test_gan_training_with_weight_free_losses_and_feature_matching(tmp_path: Path) -> None:
    data = real_config(tmp_path)
    data["datasets"]["train"]["lr_patch"] = 16
    data["train"].update(
        total_iter=4,
        fft_opt={"loss_weight": 0.1},
        random_feature_opt={"loss_weight": 0.5, "widths": [8, 16]},
        artifact_opt={"loss_weight": 1.0},
        gan_opt={"loss_weight": 0.1, "num_feat": 8, "feature_matching_weight": 0.5},
    )
    trainer = Trainer(config_from_dict(data))
    trainer.train()
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    header, last = log[0].split(","), dict(zip(log[0].split(","), log[-1].split(",")))
    for column in ("l_fft", "l_randfeat", "l_artifact", "l_fm", "l_gan", "l_d"):
        assert column in header and float(last[column]) > 0, column


def test_artifact_loss_needs_the_ema(tmp_path: Path) -> None:
    data = real_config(tmp_path)
    data["train"].update(artifact_opt={}, ema_decay=0.0)
    with pytest.raises(ConfigError, match="train.artifact_opt"):
        config_from_dict(data, "cfg.toml")


def test_light_path_is_a_plain_downscale_and_jpeg() -> None:
    """A share of the samples skips the heavy chain: an antialiased downscale (and a JPEG), so a
    model also sees mildly degraded pictures and keeps their texture."""
    hr = batch(3, 64)
    plain = degrade_real(hr, 4, RealDegradation(light_prob=1.0, light_jpeg_prob=0.0), (3, 3))
    q = lambda t: (t.clamp(0, 1) * 255).round() / 255  # noqa: E731
    candidates = [
        q(torch.nn.functional.interpolate(hr, size=(16, 16), mode="area")),
        *(
            q(torch.nn.functional.interpolate(hr, size=(16, 16), mode=m, antialias=True))
            for m in ("bicubic", "bilinear")
        ),
    ]
    assert any(torch.equal(plain, c) for c in candidates)
    compressed = degrade_real(hr, 4, RealDegradation(light_prob=1.0, light_jpeg_prob=1.0), (3, 3))
    assert not torch.equal(compressed, plain)
    mixed = degrade_real(hr, 4, RealDegradation(light_prob=0.5), (3, 3))
    assert mixed.shape == plain.shape
