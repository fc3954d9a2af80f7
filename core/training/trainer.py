"""The training loop behind ``nexus-train``: single process or DDP under ``torchrun``.

One optimizer step per iteration: forward (autocast when asked), pixel / perceptual / GAN / MoE
balance losses, backward, optional gradient clipping, AdamW, scheduler, EMA; then the
discriminator step when the GAN loss is on. Validation, the CSV log and checkpoints happen on
rank 0 every N iterations.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import CheckpointError, ConfigError
from .augment import attach_frequency_dropout, cutblur
from .checkpoint import copy_latest, latest_state, load_state, save_state, save_weights
from .config import TrainConfig
from .data import PairDataset, StepSampler, list_images, load_rgb
from .degradations import make_lr
from .discriminators import build_discriminator
from .ema import ModelEMA
from .evaluate import module_upscaler
from .losses import (
    ArtifactLoss,
    CharbonnierLoss,
    FFTLoss,
    L1Loss,
    PerceptualLoss,
    RandomFeatureLoss,
    VanillaGANLoss,
)
from .metrics import mod_crop, psnr, ssim
from .realworld import degrade_real, usm_sharpen
from .scheduler import CosineAnnealingRestartLR

__all__ = ["Trainer", "build_model", "DistInfo", "init_distributed"]

LOG_COLUMNS = [
    "step",
    "lr",
    "loss",
    "l_pix",
    "l_percep",
    "l_gan",
    "l_d",
    "l_moe",
    "it_per_s",
    "val_psnr",
    "val_ssim",
    "elapsed_s",
    "l_fft",
    "l_randfeat",
    "l_artifact",
    "l_fm",
]  # fmt: skip (new columns go last: older logs keep their order when a run resumes)


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (gloo without CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(spec: str, local_rank: int) -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def build_model(network_g: dict[str, Any], file: str = "<config>") -> nn.Module:
    """Build the variant ``network_g["type"]`` with the other keys as overrides."""
    from ..archs import VARIANTS

    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in network_g.items()}
    name = opts.pop("type", None)
    if name not in VARIANTS:
        raise ConfigError(
            f"{file}: field 'network_g.type': unknown variant {name!r} "
            f"(known: {', '.join(sorted(VARIANTS))})"
        )
    try:
        return VARIANTS[name](**opts)
    except TypeError as exc:
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        field = f"network_g.{bad.group(1)}" if bad else "network_g"
        raise ConfigError(f"{file}: field '{field}' is not an option of {name} ({exc})") from exc
    except ValueError as exc:
        raise ConfigError(f"{file}: field 'network_g': {exc}") from exc


class Trainer:
    """Train ``cfg`` from scratch or from a saved training state (``resume``)."""

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None) -> None:
        self.cfg = cfg
        self.dist = init_distributed()
        self.device = pick_device(cfg.device, self.dist.local_rank)
        if cfg.cpu_threads > 0:
            torch.set_num_threads(cfg.cpu_threads)
        self.out_dir = Path(cfg.output_dir or Path("runs") / cfg.name)
        tr = cfg.train
        file = cfg.source or "<config>"

        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = build_model({**cfg.network_g, "scale": cfg.scale}, file)
        if cfg.pretrain_network_g:
            self._load_pretrained(cfg.pretrain_network_g, file)
        self.model = self.model.to(self.device)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            # MoE experts that got no token in a step have no gradient: tell DDP to expect it.
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DDP(self.model, device_ids=ids, find_unused_parameters=True)
        torch.manual_seed(cfg.seed + 7919 * (self.dist.rank + 1))  # per-rank stochastic layers

        self.ema = ModelEMA(self.model, tr.ema_decay) if tr.ema_decay > 0 else None
        o = tr.optim_g
        self.opt_g = torch.optim.AdamW(
            self.model.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
        )
        self.sched = self._scheduler(self.opt_g)

        self.pixel_loss: nn.Module | None = None
        if tr.pixel_opt is not None:
            p = tr.pixel_opt
            self.pixel_loss = L1Loss() if p.type == "L1Loss" else CharbonnierLoss(p.eps)
        self.percep_loss: PerceptualLoss | None = None
        if tr.perceptual_opt is not None:
            p = tr.perceptual_opt
            self.percep_loss = PerceptualLoss(
                p.vgg_weights, p.layer_weights, p.perceptual_weight, p.criterion, p.use_input_norm
            ).to(self.device)
        self.fft_loss = FFTLoss() if tr.fft_opt is not None else None
        self.random_feature_loss: RandomFeatureLoss | None = None
        if tr.random_feature_opt is not None:
            r = tr.random_feature_opt
            self.random_feature_loss = RandomFeatureLoss(tuple(r.widths), r.seed).to(self.device)
        self.artifact_loss = ArtifactLoss() if tr.artifact_opt is not None else None
        self.net_d: nn.Module | None = None
        self.d_model: nn.Module | None = None
        self.gan_loss = VanillaGANLoss()
        if tr.gan_opt is not None:
            g = tr.gan_opt
            self.d_model = build_discriminator(g.discriminator, 3, g.num_feat).to(self.device)
            self.net_d = self.d_model
            if self.dist.enabled:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.net_d = DDP(self.d_model, device_ids=ids)
            self.opt_d = torch.optim.AdamW(self.d_model.parameters(), lr=g.lr, betas=g.betas)

        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tr.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=tr.amp == "fp16")
        if tr.freq_dropout is not None:
            f = tr.freq_dropout
            try:
                attach_frequency_dropout(self.model, f.module, f.prob, f.max_band)
            except KeyError as exc:
                raise ConfigError(
                    f"{file}: field 'train.freq_dropout.module': the model has no submodule {exc}"
                ) from exc

        self.step = 0
        self.history: list[float] = []  # total loss per iteration of this process's run
        self.val_images: list[np.ndarray] = []
        v = cfg.datasets.val
        if v is not None and self.dist.main:
            paths = list_images(v.hr_folder)
            paths = paths[: v.max_images] if v.max_images else paths
            self.val_images = [mod_crop(load_rgb(p), max(1, cfg.scale)) for p in paths]
        if resume is not None:
            self.load(resume)

    # --- setup helpers ---

    def _load_pretrained(self, path: str, file: str) -> None:
        """Initialise the model from a weights file (read safely).

        Strict (the default): the file must fit ``network_g`` exactly. Not strict: tensors whose
        name and shape fit are taken, the rest keep their fresh initialisation, and the run says
        which ones; a file that fits less than half the model is still refused (wrong network).
        """
        from ..loading import read_state_dict

        state = read_state_dict(path)
        if not self.cfg.pretrain_strict:
            # Only weights move: integer buffers record this model's own hyperparameters (an x4
            # donor's scale_buf must not turn an x2 model into one that says it is x4).
            own = self.model.state_dict()
            weights = {k for k, v in own.items() if v.is_floating_point()}
            fits = {
                k: v
                for k, v in state.items()
                if k in weights and v.is_floating_point() and v.shape == own[k].shape
            }
            if len(fits) * 2 < len(weights):
                raise ConfigError(
                    f"{file}: field 'pretrain_network_g': {path} does not fit network_g: only "
                    f"{len(fits)} of the model's {len(weights)} weight tensors match by name "
                    "and shape"
                )
            fresh = sorted(weights - set(fits))
            if self.dist.main and fresh:
                shown = ", ".join(fresh[:6]) + (", ..." if len(fresh) > 6 else "")
                tqdm.write(
                    f"pretrain_network_g: {len(fits)} tensors loaded, {len(fresh)} fresh: {shown}"
                )
            state = {**own, **fits}
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(
                f"{file}: field 'pretrain_network_g': {path} does not fit network_g: {first}"
            ) from exc

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        s = self.cfg.train.scheduler
        if s.type == "constant":
            return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        periods = s.periods or [self.cfg.train.total_iter]
        return CosineAnnealingRestartLR(opt, periods, s.restart_weights, s.eta_min)

    def _loader(self) -> DataLoader:
        t = self.cfg.datasets.train
        total = self.cfg.train.total_iter
        ds = PairDataset(
            t.hr_folders,
            self.cfg.scale,
            t.lr_patch,
            length=total * t.batch_size * self.dist.world,
            seed=self.cfg.seed,
            flip=t.flip,
            rot90=t.rot90,
            degradations=t.degradations,
            cache=t.cache,
            hr_only=t.degradation == "real",
        )
        if ds.skipped and self.dist.main:
            tqdm.write(
                f"skipping {len(ds.skipped)} image(s) smaller than the "
                f"{ds.hr_patch}-pixel HR crop; {len(ds.paths)} used"
            )
        sampler = StepSampler(self.step, total, t.batch_size, self.dist.rank, self.dist.world)
        return DataLoader(
            ds,
            batch_size=t.batch_size,
            sampler=sampler,
            num_workers=t.num_workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if t.num_workers > 0 else None,
        )

    # --- one iteration ---

    def train_step(self, lr: Tensor, hr: Tensor) -> dict[str, float]:
        """One optimizer step on a batch ``lr`` (B, 3, h, w), ``hr`` (B, 3, h*s, w*s) in [0, 1]."""
        tr = self.cfg.train
        self.net.train()
        if tr.cutblur is not None:
            lr = cutblur(lr, hr, tr.cutblur.prob, tr.cutblur.alpha)
        if hasattr(self.model, "set_moe_warmup"):
            self.model.set_moe_warmup(self.step < tr.moe_warmup_iter)
        with torch.autocast(self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None):
            sr = self.net(lr)
        sr = sr.float()
        logs: dict[str, float] = {}
        total = sr.new_zeros(())
        if self.pixel_loss is not None:
            l_pix = tr.pixel_opt.loss_weight * self.pixel_loss(sr, hr)  # type: ignore[union-attr]
            total = total + l_pix
            logs["l_pix"] = l_pix.item()
        if self.percep_loss is not None:
            l_percep = self.percep_loss(sr, hr)
            total = total + l_percep
            logs["l_percep"] = l_percep.item()
        if self.fft_loss is not None:
            l_fft = tr.fft_opt.loss_weight * self.fft_loss(sr, hr)  # type: ignore[union-attr]
            total = total + l_fft
            logs["l_fft"] = l_fft.item()
        if self.random_feature_loss is not None:
            w = tr.random_feature_opt.loss_weight  # type: ignore[union-attr]
            l_rf = w * self.random_feature_loss(sr, hr)
            total = total + l_rf
            logs["l_randfeat"] = l_rf.item()
        gan_on = self.net_d is not None and self.step >= tr.gan_opt.start_iter  # type: ignore[union-attr]
        if self.artifact_loss is not None and self.ema is not None:
            with torch.no_grad():
                sr_ema = self.ema.module(lr).float()
            l_art = tr.artifact_opt.loss_weight * self.artifact_loss(sr, sr_ema, hr)  # type: ignore[union-attr]
            total = total + l_art
            logs["l_artifact"] = l_art.item()
        if gan_on:
            for p in self.d_model.parameters():  # type: ignore[union-attr]
                p.requires_grad_(False)
            g = tr.gan_opt
            if g.feature_matching_weight > 0:  # type: ignore[union-attr]
                logits, feats = self.net_d(sr, return_features=True)  # type: ignore[misc]
                with torch.no_grad():
                    _, real_feats = self.net_d(hr, return_features=True)  # type: ignore[misc]
                l_fm = sum(F.l1_loss(a, b) for a, b in zip(feats, real_feats)) / len(feats)
                l_fm = g.feature_matching_weight * l_fm  # type: ignore[union-attr]
                total = total + l_fm
                logs["l_fm"] = l_fm.item()
            else:
                logits = self.net_d(sr)  # type: ignore[misc]
            l_gan = g.loss_weight * self.gan_loss(logits, True)  # type: ignore[union-attr]
            total = total + l_gan
            logs["l_gan"] = l_gan.item()
        aux = getattr(self.model, "aux_loss", None)
        if callable(aux) and tr.moe_balance_weight > 0:
            l_moe = tr.moe_balance_weight * aux()
            total = total + l_moe
            logs["l_moe"] = l_moe.item()
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss is {float(total)} at iteration {self.step}")

        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if tr.grad_clip > 0:
            self.scaler.unscale_(self.opt_g)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tr.grad_clip)
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(self.model)

        if gan_on:
            for p in self.d_model.parameters():  # type: ignore[union-attr]
                p.requires_grad_(True)
            self.opt_d.zero_grad(set_to_none=True)
            l_d = self.gan_loss(self.net_d(hr), True) + self.gan_loss(  # type: ignore[misc]
                self.net_d(sr.detach()),
                False,  # type: ignore[misc]
            )
            l_d.backward()
            self.opt_d.step()
            logs["l_d"] = l_d.item()
        logs["loss"] = total.item()
        return logs

    # --- the loop ---

    def train(self, stop_after_s: float | None = None) -> dict[str, Any]:
        """Run from ``self.step`` to ``total_iter`` (or until ``stop_after_s`` seconds passed,
        then save a resumable state). Returns the last logged values."""
        cfg, total = self.cfg, self.cfg.train.total_iter
        loader = self._loader()
        train_data = cfg.datasets.train
        real = train_data.real if train_data.degradation == "real" else None
        main = self.dist.main
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if cfg.source and Path(cfg.source).is_file():
                shutil.copyfile(cfg.source, self.out_dir / ("config" + Path(cfg.source).suffix))
        log_path = self.out_dir / "train_log.csv"
        log_file = None
        writer = None
        if main:
            new = not log_path.exists()
            log_file = open(log_path, "a", newline="")  # noqa: SIM115 - closed in finally
            writer = csv.DictWriter(log_file, LOG_COLUMNS)
            if new:
                writer.writeheader()
        bar = tqdm(
            total=total, initial=self.step, disable=not (main and cfg.logger.progress_bar),
            desc=cfg.name, unit="it", dynamic_ncols=True,
        )  # fmt: skip
        start = time.perf_counter()
        window: dict[str, list[float]] = {}
        window_start, window_steps = start, 0
        last: dict[str, Any] = {}
        try:
            for lr_u8, hr_u8 in loader:
                hr = hr_u8.to(self.device, non_blocking=True).float().div_(255.0)
                if real is not None:
                    lr = degrade_real(hr, cfg.scale, real, (cfg.seed, self.step, self.dist.rank))
                    if real.sharpen_target:
                        hr = usm_sharpen(hr)
                else:
                    lr = lr_u8.to(self.device, non_blocking=True).float().div_(255.0)
                logs = self.train_step(lr, hr)
                self.step += 1
                self.history.append(logs["loss"])
                for k, v in logs.items():
                    window.setdefault(k, []).append(v)
                window_steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{self.sched.get_last_lr()[0]:.2e}")
                done = self.step >= total
                timed_out = stop_after_s is not None and time.perf_counter() - start >= stop_after_s
                row: dict[str, Any] = {}
                if self.step % cfg.logger.print_every == 0 or done or timed_out:
                    now = time.perf_counter()
                    row.update({k: f"{np.mean(v):.6g}" for k, v in window.items()})
                    row["it_per_s"] = f"{window_steps / max(now - window_start, 1e-9):.4g}"
                    window, window_start, window_steps = {}, now, 0
                v = cfg.datasets.val
                if v is not None and (self.step % v.every == 0 or done):
                    if main:
                        vp, vs = self.validate()
                        row.update(val_psnr=f"{vp:.4f}", val_ssim=f"{vs:.5f}")
                        bar.write(f"iter {self.step}: val PSNR {vp:.2f} dB, SSIM {vs:.4f}")
                    if self.dist.enabled:
                        dist.barrier()
                if row and writer is not None:
                    row.update(
                        step=self.step,
                        lr=f"{self.sched.get_last_lr()[0]:.6g}",
                        elapsed_s=f"{time.perf_counter() - start:.1f}",
                    )
                    writer.writerow(row)
                    log_file.flush()  # type: ignore[union-attr]
                    last = row
                if self.step % cfg.logger.checkpoint_every == 0 or done or timed_out:
                    self.save()
                if timed_out:
                    break
        finally:
            bar.close()
            if log_file is not None:
                log_file.close()
        return last

    # --- validation ---

    @torch.no_grad()
    def validate(self) -> tuple[float, float]:
        """Mean PSNR / SSIM (Y, border = scale) of the EMA model (raw without EMA) on the val
        folder; the LR inputs are made like the training inputs, with a fixed seed."""
        model = self.ema.module if self.ema is not None else self.model
        was_training = model.training
        model.eval()
        s = self.cfg.scale
        upscale = module_upscaler(model, s, self.device)
        scores = []
        for i, hr in enumerate(self.val_images):
            lr = self.val_input(hr, i)
            sr = upscale(lr)
            scores.append((psnr(sr, hr, s), ssim(sr, hr, s)))
        model.train(was_training)
        arr = np.array(scores) if scores else np.full((1, 2), math.nan)
        return float(arr[:, 0].mean()), float(arr[:, 1].mean())

    def val_input(self, hr: np.ndarray, index: int) -> np.ndarray:
        """The network input for validation image ``index``, degraded like the training inputs
        with a fixed seed, so every validation sees the same inputs."""
        t, s = self.cfg.datasets.train, self.cfg.scale
        seed = (self.cfg.seed, 2**31 + index)
        if t.degradation == "real":
            x = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1)))[None]
            lr = degrade_real(x.float().div(255.0), s, t.real, seed)
            return (lr[0] * 255.0).round().byte().permute(1, 2, 0).numpy()
        return make_lr(hr, s, t.degradations, np.random.default_rng(seed))

    # --- checkpoints ---

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": self.step,
            "model_g": self.model.state_dict(),
            "optimizer_g": self.opt_g.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.d_model is not None:
            state["model_d"] = self.d_model.state_dict()
            state["optimizer_d"] = self.opt_d.state_dict()
        return state

    def save(self) -> None:
        """Weights (raw and EMA) as safetensors and the training state; rank 0 writes."""
        if self.dist.main:
            models = self.out_dir / "models"
            raw = models / f"net_g_{self.step}.safetensors"
            save_weights(self.model, raw, self.cfg.name, self.step)
            copy_latest(raw, models / "net_g_latest.safetensors")
            if self.ema is not None:
                ema = models / f"net_g_ema_{self.step}.safetensors"
                save_weights(self.ema.module, ema, self.cfg.name, self.step)
                copy_latest(ema, models / "net_g_ema_latest.safetensors")
            save_state(
                self.state_dict(),
                self.out_dir / "training_state",
                self.step,
                self.cfg.logger.keep_states,
            )
        if self.dist.enabled:
            dist.barrier()

    def load(self, path: str | Path) -> None:
        """Restore a training state; ``"auto"`` takes the newest one of this run."""
        if str(path) == "auto":
            found = latest_state(self.out_dir / "training_state")
            if found is None:
                return  # nothing saved yet: start from scratch
            path = found
        state = load_state(path)
        try:
            self.model.load_state_dict(state["model_g"])
            self.opt_g.load_state_dict(state["optimizer_g"])
            self.sched.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None and "ema" in state:
                self.ema.load_state_dict(state["ema"])
            if self.d_model is not None and "model_d" in state:
                self.d_model.load_state_dict(state["model_d"])
                self.opt_d.load_state_dict(state["optimizer_d"])
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            raise CheckpointError(path, f"does not match this config's model: {first}") from exc
        torch.set_rng_state(state["rng_torch"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step = int(state["step"])
