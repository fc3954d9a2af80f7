"""Training-step time of the networks in nexus-train configs, to plan a run before starting it.

For each config: the network of ``network_g`` at the config's scale, one AdamW step of L1 on a
random batch of the config's ``batch_size`` and ``lr_patch`` (forward, backward, step; no data
loading, EMA or validation), timed after two warm-up steps; the best of the timed steps is
printed with the iterations per second it allows.

    python bench/train_step.py core/training/configs/ship_*_v2.toml --threads 1
    python bench/train_step.py core/training/configs/nexus_cpu_x4.toml --steps 4

Compare rows of one run only: on a shared CPU absolute times move with the load. With
``--threads 1`` a row is what one of several runs sharing the machine gets (``cpu_threads = 1``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from nexus_upscaler.core.training.config import load_config
from nexus_upscaler.core.training.trainer import build_model


def step_seconds(config: Path, steps: int) -> tuple[str, float, float]:
    """(network summary, parameters in millions, best seconds per training step)."""
    cfg = load_config(config)
    model = build_model({**cfg.network_g, "scale": cfg.scale}, str(config)).train()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    train = cfg.datasets.train
    lr = torch.rand(train.batch_size, 3, train.lr_patch, train.lr_patch)
    hr = torch.rand(train.batch_size, 3, train.lr_patch * cfg.scale, train.lr_patch * cfg.scale)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        loss = (model(lr) - hr).abs().mean()
        aux = getattr(model, "aux_loss", None)  # HyReSR's MoE balance loss, as the trainer adds
        if callable(aux):
            loss = loss + 0.01 * aux()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    summary = f"{cfg.network_g.get('type')} x{cfg.scale}, batch {train.batch_size}, lr_patch {train.lr_patch}"
    return summary, params, min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="+", type=Path, help="nexus-train config files")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per config (default 4)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"| config | network | parameters | step (best of {args.steps}) | it/s |")
    print("|---|---|---|---|---|")
    for config in args.configs:
        summary, params, seconds = step_seconds(config, args.steps)
        print(
            f"| `{config.name}` | {summary} | {params:.2f}M | {seconds * 1000:.0f} ms | "
            f"{1 / seconds:.2f} |",
            flush=True,
        )
    print(f"\n{args.threads} thread(s), torch {torch.__version__}")


if __name__ == "__main__":
    main()
