"""What the real-world degradation chain costs next to the training step it feeds.

For each config with ``degradation = "real"``: the chain (``realworld.degrade_real``) on a batch of
the config's HR crops, and one training step of its network (forward, backward, AdamW; as
``train_step.py`` times it), alternated in one process so both see the same machine. Prints the
best time of each and their ratio; the chain should cost at most a fifth of a step.

    python bench/degradation.py core/training/configs/real_hyresr_x4_l1.toml --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from nexus_upscaler.core.training.config import load_config
from nexus_upscaler.core.training.data import PairDataset
from nexus_upscaler.core.training.realworld import degrade_real
from nexus_upscaler.core.training.trainer import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="+", type=Path, help="nexus-train configs (degradation = real)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print("| config | batch x HR crop | chain (best) | train step (best) | chain / step |")
    print("|---|---|---|---|---|")
    for config in args.configs:
        cfg = load_config(config)
        t = cfg.datasets.train
        data = PairDataset(t.hr_folders, cfg.scale, t.lr_patch, 10**6, seed=cfg.seed, hr_only=True)
        model = build_model({**cfg.network_g, "scale": cfg.scale}, str(config)).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        chain, step = [], []
        for i in range(args.repeats + 1):
            hr = torch.stack([data[i * t.batch_size + j][1] for j in range(t.batch_size)])
            hr = hr.float() / 255
            start = time.perf_counter()
            lr = degrade_real(hr, cfg.scale, t.real, (cfg.seed, i))
            middle = time.perf_counter()
            loss = (model(lr) - hr).abs().mean()
            aux = getattr(model, "aux_loss", None)
            if callable(aux):
                loss = loss + 0.01 * aux()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            end = time.perf_counter()
            if i:  # the first round warms both up
                chain.append(middle - start)
                step.append(end - middle)
        c, s = min(chain), min(step)
        crop = t.lr_patch * cfg.scale
        print(
            f"| `{config.name}` | {t.batch_size} x {crop}px | {c * 1000:.0f} ms | "
            f"{s * 1000:.0f} ms | {c / s:.3f} |",
            flush=True,
        )
    print(f"\n{args.threads} thread(s), torch {torch.__version__}")


if __name__ == "__main__":
    main()
