"""nexus-train: tiny NEXUS and HyReSR models learn on photo-like crops, resume exactly, scale out
with DDP, and reject bad configs with a message naming the file and the field."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from nexus_upscaler.core.errors import ConfigError
from nexus_upscaler.core.training.augment import cutblur, frequency_band_dropout
from nexus_upscaler.core.training.cli import train_main
from nexus_upscaler.core.training.config import config_from_dict, load_config
from nexus_upscaler.core.training.losses import PerceptualLoss
from nexus_upscaler.core.training.scheduler import CosineAnnealingRestartLR
from nexus_upscaler.core.training.trainer import Trainer, build_model
from pictures import photo_folder
from PIL import Image
from safetensors.torch import load_file

CONFIG_DIR = Path(__file__).resolve().parents[1] / "core" / "training" / "configs"

NEXUS_TINY = {
    "type": "nexus_tiny", "embed_dim": 16, "depths": [1], "num_heads": 2, "window_size": 4,
    "drop_path_rate": 0.0, "num_feat": 16,
}  # fmt: skip
HYRESR_TINY = {"type": "hyresr_tiny", "base": 8, "depths": [1, 1, 1], "num_heads": [1, 1, 1]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hr_folder(tmp_path: Path) -> Path:
    """Eight photo-like HR images (made here: a fresh clone has no data sets)."""
    return photo_folder(tmp_path / "hr", count=8)


def tiny_config(tmp_path: Path, network: dict, **train: object) -> dict:
    return {
        "name": "tiny",
        "scale": 2,
        "output_dir": str(tmp_path / "run"),
        "network_g": dict(network),
        "datasets": {
            "train": {
                "hr_folders": [str(hr_folder(tmp_path))],
                "lr_patch": 12,
                "batch_size": 4,
                "num_workers": 0,
            }
        },
        "train": {"total_iter": 30, "optim_g": {"lr": 2e-3}, "ema_decay": 0.99, **train},
        "logger": {"print_every": 10, "checkpoint_every": 1000, "progress_bar": False},
    }


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("network", [NEXUS_TINY, HYRESR_TINY], ids=["nexus", "hyresr"])
def test_tiny_model_learns(tmp_path: Path, network: dict) -> None:
    cfg = config_from_dict(tiny_config(tmp_path, network))
    trainer = Trainer(cfg)
    trainer.train()
    losses = trainer.history
    assert len(losses) == 30
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10]), losses
    # The EMA weights are a real checkpoint our loader recognises, with the run's metadata.
    from nexus_upscaler.core.loading import load_model, read_metadata

    ema = tmp_path / "run" / "models" / "net_g_ema_30.safetensors"
    descriptor = load_model(ema)
    assert descriptor.scale == 2
    assert read_metadata(ema)["iterations"] == "30"
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("step,lr,loss,l_pix")
    assert [row.split(",")[0] for row in log[1:]] == ["10", "20", "30"]
    if network["type"].startswith("hyresr"):
        moe = log[-1].split(",")[7]  # the MoE balance loss is part of the objective
        assert float(moe) > 0


def test_resume_continues_at_the_same_step_with_the_same_state(tmp_path: Path) -> None:
    straight = config_from_dict(tiny_config(tmp_path / "a", NEXUS_TINY, total_iter=6))
    straight.logger.checkpoint_every = 3
    full = Trainer(straight)
    full.train()

    # A second run stops at 3 (its state is what --resume reads), a third resumes from it.
    interrupted = config_from_dict(tiny_config(tmp_path / "b", NEXUS_TINY, total_iter=6))
    interrupted.logger.checkpoint_every = 3
    first = Trainer(interrupted)
    first.train(stop_after_s=0.0)  # stops after one iteration...
    assert first.step == 1
    first.train()  # ...and a plain continue reaches 6, saving states 3 and 6
    state3 = tmp_path / "b" / "run" / "training_state" / "3.state"
    assert state3.is_file()
    resumed = Trainer(interrupted, resume=state3)
    assert resumed.step == 3
    assert resumed.sched.last_epoch == 3
    resumed.history.clear()
    resumed.train()
    assert resumed.step == 6
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, msg=key)
    for key, value in full.ema.module.state_dict().items():
        torch.testing.assert_close(resumed.ema.module.state_dict()[key], value, msg=key)
    assert resumed.history == pytest.approx(full.history[3:], rel=1e-4)


def test_pretrained_weights_start_a_new_schedule(tmp_path: Path) -> None:
    """``pretrain_network_g`` starts a fresh run (step 0, new optimizer) from saved weights."""
    from nexus_upscaler.core import save_model

    donor = build_model({**NEXUS_TINY, "scale": 2}, "<test>")
    weights = tmp_path / "donor.safetensors"
    save_model(donor, weights)
    cfg = config_from_dict(
        {**tiny_config(tmp_path, NEXUS_TINY), "pretrain_network_g": str(weights)}
    )
    trainer = Trainer(cfg)
    assert trainer.step == 0
    for key, value in donor.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[key], value, msg=key)
        torch.testing.assert_close(trainer.ema.module.state_dict()[key], value, msg=key)

    other = {**NEXUS_TINY, "embed_dim": 8}
    bad = config_from_dict({**tiny_config(tmp_path, other), "pretrain_network_g": str(weights)})
    with pytest.raises(ConfigError, match="pretrain_network_g.*does not fit network_g"):
        Trainer(bad)


def test_non_strict_pretrain_moves_an_x4_body_into_an_x2_model(tmp_path: Path) -> None:
    """``pretrain_strict = false``: the body comes from the donor, the head and the int buffers
    that record the model's own scale stay the new model's; a foreign network is still refused."""
    from nexus_upscaler.core import save_model
    from nexus_upscaler.core.loading import load_model

    network = {**NEXUS_TINY, "upsampler": "pixelshuffledirect"}
    donor = build_model({**network, "scale": 4}, "<test>")
    weights = tmp_path / "x4.safetensors"
    save_model(donor, weights)
    run = {**tiny_config(tmp_path, network), "pretrain_network_g": str(weights)}
    with pytest.raises(ConfigError, match="does not fit network_g"):
        Trainer(config_from_dict(run))  # strict by default: the x4 head does not fit
    trainer = Trainer(config_from_dict({**run, "pretrain_strict": False}))
    got, theirs = trainer.model.state_dict(), donor.state_dict()
    floats = [k for k, v in got.items() if v.is_floating_point()]
    moved = [k for k in floats if got[k].shape == theirs[k].shape]
    assert sorted(set(floats) - set(moved)) == ["upsample.0.bias", "upsample.0.weight"]
    for key in moved:
        torch.testing.assert_close(got[key], theirs[key], msg=key)
    assert got["upsample.0.weight"].shape[0] == 3 * 2 * 2  # the x2 head, freshly initialised
    assert int(got["scale_buf"]) == 2
    trainer.cfg.train.total_iter = 2
    trainer.train()
    assert load_model(tmp_path / "run" / "models" / "net_g_ema_2.safetensors").scale == 2

    foreign = {**run, "pretrain_strict": False, "network_g": HYRESR_TINY}
    with pytest.raises(ConfigError, match=r"only \d+ of the model's \d+ weight tensors"):
        Trainer(config_from_dict(foreign))


def test_cli_resume_auto_and_already_done(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = write_toml(
        tmp_path / "c.toml",
        f"""
scale = 2
output_dir = "{tmp_path / "run"}"
network_g = {{ type = "nexus_tiny", embed_dim = 16, depths = [1], num_heads = 2, window_size = 4, num_feat = 16 }}
[datasets.train]
hr_folders = ["{hr_folder(tmp_path)}"]
lr_patch = 12
batch_size = 2
num_workers = 0
[train]
total_iter = 4
[logger]
progress_bar = false
checkpoint_every = 2
""",
    )
    assert train_main([str(cfg), "--total-iter", "2"]) == 0
    assert train_main([str(cfg), "--resume", "auto"]) == 0
    out = capsys.readouterr().out
    assert "stopped at iteration 4" in out
    assert train_main([str(cfg), "--resume", "auto"]) == 0
    assert "already trained for 4 iterations" in capsys.readouterr().out


def test_config_with_a_wrong_field_names_the_file_and_field(tmp_path: Path) -> None:
    bad = write_toml(tmp_path / "bad.toml", "[train]\ntotl_iter = 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(bad) in str(err.value) and "'train.totl_iter'" in str(err.value)

    wrong_type = write_toml(tmp_path / "type.toml", '[train]\ntotal_iter = "many"\n')
    with pytest.raises(ConfigError, match=r"type\.toml.*'train\.total_iter' must be an integer"):
        load_config(wrong_type)


def test_unknown_model_option_is_a_config_error_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tiny_config(tmp_path, {**NEXUS_TINY, "embed_dimm": 8})
    cfg = config_from_dict(data, file="my.toml")
    with pytest.raises(ConfigError, match=r"my\.toml: field 'network_g\.embed_dimm'"):
        Trainer(cfg)
    path = write_toml(tmp_path / "m.toml", '[network_g]\ntype = "nexus_huge"\n')
    path.write_text(
        path.read_text() + f'[datasets.train]\nhr_folders = ["{hr_folder(tmp_path)}"]\n'
    )
    assert train_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "m.toml" in err and "network_g.type" in err and "nexus_tiny" in err


def test_perceptual_loss_needs_a_named_vgg19_file(tmp_path: Path) -> None:
    data = tiny_config(tmp_path, NEXUS_TINY, perceptual_opt={})
    with pytest.raises(
        ConfigError, match=r"train\.perceptual_opt\.vgg_weights.*nothing is downloaded"
    ):
        config_from_dict(data)
    from torchvision.models.vgg import cfgs, make_layers

    # The convolutional part of torchvision's vgg19, keyed as in its state dict.
    weights = tmp_path / "vgg19.pth"
    features = make_layers(cfgs["E"]).state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, weights)
    loss = PerceptualLoss(weights, {"conv1_2": 0.1, "conv2_2": 1.0})
    x = torch.rand(1, 3, 24, 24, requires_grad=True)
    value = loss(x, torch.rand(1, 3, 24, 24))
    value.backward()
    assert value.item() > 0 and x.grad is not None and x.grad.abs().sum() > 0
    assert loss(x, x.detach()).item() == pytest.approx(0.0, abs=1e-6)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ConfigError, match="not torchvision VGG19 weights"):
        PerceptualLoss(other, {"conv1_2": 1.0})


@pytest.mark.parametrize("disc", ["unet", "vgg"])
def test_gan_training_updates_the_discriminator(tmp_path: Path, disc: str) -> None:
    gan = {"discriminator": disc, "num_feat": 4, "loss_weight": 0.1}
    cfg = config_from_dict(tiny_config(tmp_path, NEXUS_TINY, total_iter=2, gan_opt=gan))
    cfg.datasets.train.batch_size = 2
    cfg.datasets.train.lr_patch = 16  # 32-pixel HR crops: the VGG discriminator's minimum
    trainer = Trainer(cfg)
    before = [p.clone() for p in trainer.d_model.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.d_model.parameters()))
    row = (tmp_path / "run" / "train_log.csv").read_text().splitlines()[-1].split(",")
    assert math.isfinite(float(row[5])) and math.isfinite(float(row[6]))  # l_gan, l_d


def test_ddp_with_two_gloo_processes_matches_one_process(tmp_path: Path) -> None:
    """Two ranks with batch 2 see the samples one process with batch 4 sees, and DDP averages
    their gradients: the weights after 3 steps must agree."""

    def toml(out: Path, batch: int) -> Path:
        return write_toml(
            tmp_path / f"b{batch}.toml",
            f"""
scale = 2
output_dir = "{out}"
network_g = {{ type = "nexus_tiny", embed_dim = 16, depths = [1], num_heads = 2, window_size = 4, num_feat = 16, drop_path_rate = 0.0 }}
[datasets.train]
hr_folders = ["{hr_folder(tmp_path)}"]
lr_patch = 12
batch_size = {batch}
num_workers = 0
[train]
total_iter = 3
ema_decay = 0.0
[logger]
progress_bar = false
""",
        )

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "nexus_upscaler.core.training.cli", str(toml(tmp_path / "ddp", 2)),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert train_main([str(toml(tmp_path / "single", 4))]) == 0
    ddp = load_file(tmp_path / "ddp" / "models" / "net_g_3.safetensors")
    single = load_file(tmp_path / "single" / "models" / "net_g_3.safetensors")
    assert ddp.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)


def test_cosine_annealing_restart_schedule() -> None:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = CosineAnnealingRestartLR(opt, [4, 4], [1.0, 0.5], eta_min=0.0)
    lrs = []
    for _ in range(9):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1.0)
    assert lrs[2] == pytest.approx(0.5)  # halfway down the first cosine
    assert lrs[4] == pytest.approx(0.5)  # restart at half the base rate
    assert lrs[6] == pytest.approx(0.25)
    assert lrs[8] == pytest.approx(0.0)  # past the last period: eta_min


def test_cutblur_and_frequency_dropout(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lr, hr = torch.zeros(2, 3, 16, 16), torch.ones(2, 3, 16, 16)
    mixed = cutblur(lr, hr, prob=1.0, alpha=0.7)
    frac = mixed.mean().item()
    assert 0.0 < frac < 1.0  # part of the input comes from the target, part does not
    assert torch.equal(cutblur(lr, hr, prob=0.0, alpha=0.7), lr)
    with pytest.raises(ConfigError, match=r"'train\.cutblur' needs scale 1"):
        config_from_dict(tiny_config(tmp_path, NEXUS_TINY, cutblur={}))

    x = torch.rand(2, 4, 16, 16)
    y = frequency_band_dropout(x, max_band=0.5)
    assert y.shape == x.shape
    torch.testing.assert_close(y.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)))  # DC kept
    assert not torch.allclose(x, y)


def test_shipped_example_configs_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipped config names its data through {datasets} (one place to change), so it loads
    wherever the data sets are; here, empty stand-ins of them."""
    configs = sorted(CONFIG_DIR.glob("*.toml"))
    assert configs
    for name in ("T91", "BSD200", "Set5"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("NEXUS_DATASETS", str(tmp_path))
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # pretrain_network_g: weights/...
    for path in configs:
        cfg = load_config(path)
        folders = [*cfg.datasets.train.hr_folders, cfg.datasets.val.hr_folder]
        assert all(Path(f).parent == tmp_path for f in folders), (path.name, folders)
        if "medium" not in path.name:  # the GPU recipe's 25M-parameter model is slow to build
            model = build_model({**cfg.network_g, "scale": cfg.scale}, str(path))
            assert model(torch.rand(1, 3, 16, 16)).shape[-1] == 16 * cfg.scale


def test_the_datasets_folder_is_one_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """{datasets} is --datasets, else $NEXUS_DATASETS, else ../shared/datasets; a folder missing
    there says which it was and how to point it elsewhere."""
    photo_folder(tmp_path / "mine" / "T91", count=1)
    photo_folder(tmp_path / "env" / "T91", count=1)
    data = tiny_config(tmp_path, NEXUS_TINY)
    data["datasets"]["train"]["hr_folders"] = ["{datasets}/T91"]
    data["datasets"]["val"] = {"hr_folder": "{datasets}/T91"}
    monkeypatch.delenv("NEXUS_DATASETS", raising=False)
    monkeypatch.chdir(tmp_path / "mine")  # the default is relative to the current folder
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, file="c.toml")
    message = str(err.value)
    assert "'datasets.train.hr_folders[0]' is not a folder: ../shared/datasets/T91" in message
    assert "the default" in message and "--datasets" in message and "NEXUS_DATASETS" in message

    monkeypatch.setenv("NEXUS_DATASETS", str(tmp_path / "env"))
    cfg = config_from_dict(data)
    assert cfg.datasets.train.hr_folders == [str(tmp_path / "env" / "T91")]
    assert cfg.datasets.val.hr_folder == str(tmp_path / "env" / "T91")
    assert data["datasets"]["train"]["hr_folders"] == ["{datasets}/T91"]  # the caller's, as given
    cfg = config_from_dict(data, datasets=tmp_path / "mine")
    assert cfg.datasets.train.hr_folders == [str(tmp_path / "mine" / "T91")]
    with pytest.raises(ConfigError, match=r"\{datasets\} is .*nowhere, given by --datasets"):
        config_from_dict(data, datasets=tmp_path / "nowhere")

    toml = write_toml(
        tmp_path / "c.toml",
        f"""
scale = 2
output_dir = "{tmp_path / "run"}"
network_g = {{ type = "nexus_tiny", embed_dim = 16, depths = [1], num_heads = 2, window_size = 4, num_feat = 16 }}
[datasets.train]
hr_folders = ["{{datasets}}/T91"]
lr_patch = 12
batch_size = 2
num_workers = 0
[train]
total_iter = 1
[logger]
progress_bar = false
""",
    )
    assert train_main([str(toml), "--datasets", str(tmp_path / "nowhere")]) == 2
    assert "given by --datasets" in capsys.readouterr().err
    assert train_main([str(toml), "--datasets", str(tmp_path / "mine")]) == 0


def test_degraded_pairs_for_restoration(tmp_path: Path) -> None:
    from nexus_upscaler.core.training.config import Degradations
    from nexus_upscaler.core.training.data import PairDataset

    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    deg = Degradations(blur_prob=1.0, noise_prob=1.0, jpeg_prob=1.0)
    clean = PairDataset([folder], 1, 32, 4, seed=1)
    noisy = PairDataset([folder], 1, 32, 4, seed=1, degradations=deg)
    lr_c, hr_c = clean[0]
    lr_n, hr_n = noisy[0]
    assert torch.equal(lr_c, hr_c)  # scale 1 without degradations: identity
    assert torch.equal(hr_n, hr_c)  # same crop; only the input is degraded
    assert not torch.equal(lr_n, hr_n)
    assert torch.equal(noisy[0][0], lr_n)  # a sample is a pure function of (seed, index)


def test_register_architectures_in_a_basicsr_style_registry() -> None:
    from nexus_upscaler.core.training.registration import register_architectures

    class Registry:  # the interface traiNNer-redux and neosr registries share
        def __init__(self) -> None:
            self.objects: dict[str, object] = {}

        def register(self, obj=None, suffix=None):
            assert obj.__name__ not in self.objects
            self.objects[obj.__name__] = obj

        def keys(self):
            return self.objects.keys()

    registry = Registry()
    names = register_architectures(registry)
    assert "nexus_tiny" in names and "nexus_extreme" in names
    assert register_architectures(registry) == []  # idempotent
    build = registry.objects["nexus_tiny"]
    options = {"embed_dim": 16, "depths": [1], "num_heads": 2, "window_size": 4, "num_feat": 16}
    model = build(scale=2, **options)  # as traiNNer-redux calls it, YAML lists included
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
    assert build(upscale=3, **options).scale == 3  # neosr-style
