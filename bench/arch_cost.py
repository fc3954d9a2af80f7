"""Cost of every NEXUS variant next to published transformer SR models, as a Markdown table.

For each row: parameters, FLOPs of one forward pass on a 1x3x64x64 input at x4
(``torch.utils.flop_counter``; 1 multiply-add = 2 FLOPs, so GMACs = GFLOPs / 2), and the CPU
latency of one forward pass on a small input (median of a few runs after one warm-up).

    python bench/arch_cost.py                         # every row
    python bench/arch_cost.py --only nexus_tiny HAT-L # some rows
    python bench/arch_cost.py --latency-size 32 --iters 3 --no-latency

CPU latency on a small shared machine is noisy: treat it as an order of magnitude, compare rows
of one run only, and note the thread count printed with the table.

The comparison models are spandrel's own architecture classes with the hyperparameters their
authors published for x4 classical SR. Other architectures (e.g. HyReSR-MoE in training and
deploy form) are added by appending ``(name, builder, seed_estimate)`` entries to ``ROWS``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from nexus_upscaler.core.archs import VARIANTS, reparameterize_model
from torch import nn
from torch.utils.flop_counter import (
    FlopCounterMode,
    flop_registry,
    register_flop_formula,
    sdpa_flop,
)

# torch has no FLOP formula for the CPU kernel of scaled_dot_product_attention; without this the
# attention of NEXUS would count as 0 on the CPU while HAT's explicit matmuls count in full.
_CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
if _CPU_SDPA not in flop_registry:
    register_flop_formula(_CPU_SDPA, get_raw=True)(sdpa_flop)  # sdpa_flop is already wrapped


@dataclass(frozen=True)
class Row:
    name: str
    build: Callable[[], nn.Module]
    estimate: str = ""  # what the architecture's seed or paper claims, shown for comparison


def _hat_l() -> nn.Module:
    from spandrel.architectures.HAT import HAT

    return HAT(
        upscale=4, in_chans=3, img_size=64, window_size=16, compress_ratio=3, squeeze_factor=30,
        conv_scale=0.01, overlap_ratio=0.5, img_range=1.0, depths=[6] * 12, embed_dim=180,
        num_heads=[6] * 12, mlp_ratio=2.0, upsampler="pixelshuffle", resi_connection="1conv",
    )  # fmt: skip


def _dat() -> nn.Module:
    from spandrel.architectures.DAT import DAT

    return DAT(
        upscale=4, in_chans=3, img_size=64, img_range=1.0, split_size=[8, 32], depth=[6] * 6,
        embed_dim=180, num_heads=[6] * 6, expansion_factor=4.0, resi_connection="1conv",
    )  # fmt: skip


def _drct_l() -> nn.Module:
    from spandrel.architectures.DRCT import DRCT

    return DRCT(
        upscale=4, in_chans=3, img_size=64, window_size=16, img_range=1.0, depths=[6] * 12,
        embed_dim=180, num_heads=[6] * 12, mlp_ratio=2.0, gc=32, upsampler="pixelshuffle",
        resi_connection="1conv",
    )  # fmt: skip


def _swinir() -> nn.Module:
    from spandrel.architectures.SwinIR import SwinIR

    # SwinIR-M, classical SR x4
    return SwinIR(
        upscale=4, in_chans=3, img_size=64, window_size=8, img_range=1.0, depths=[6] * 6,
        embed_dim=180, num_heads=[6] * 6, mlp_ratio=2.0, upsampler="pixelshuffle",
        resi_connection="1conv",
    )  # fmt: skip


SEED_ESTIMATES = {
    "nexus_tiny": "~8M",
    "nexus_small": "~15M",
    "nexus_medium": "~25M, ~100G",
    "nexus_large": "~45M",
    "nexus_extreme": "~70M",
}

ROWS: list[Row] = [
    *(
        Row(name, lambda fn=fn: fn(scale=4), SEED_ESTIMATES.get(name, ""))
        for name, fn in VARIANTS.items()
    ),
    # HyReSR in deploy form (RepConv/PLK branches fused): the training-form rows come from VARIANTS
    *(
        Row(f"{name}-deploy", lambda fn=fn: reparameterize_model(fn(scale=4)))
        for name, fn in VARIANTS.items()
        if name.startswith("hyresr_")
    ),
    Row("HAT-L", _hat_l, "40.8M"),
    Row("DAT", _dat, "14.8M"),
    Row("DRCT-L", _drct_l, "27.6M"),
    Row("SwinIR", _swinir, "11.9M"),
]


def count_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on an input of ``shape``; moves ``model`` to the meta device.

    The count depends only on shapes, so it runs on meta tensors: no arithmetic is done, which
    keeps the whole table cheap on a loaded CPU (checked: same totals as a real CPU run).
    """
    model.to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops()


def latency_s(model: nn.Module, x: torch.Tensor, iters: int) -> float:
    """Median wall time of ``iters`` forward passes after one warm-up."""
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(iters):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="row names to run (default: all)")
    parser.add_argument("--flops-size", type=int, default=64, help="input side for FLOPs")
    parser.add_argument("--latency-size", type=int, default=32, help="input side for latency")
    parser.add_argument("--iters", type=int, default=2, help="timed runs per row")
    parser.add_argument("--no-latency", action="store_true", help="skip the timing")
    args = parser.parse_args(argv)

    rows = [r for r in ROWS if not args.only or r.name in args.only]
    unknown = set(args.only or ()) - {r.name for r in ROWS}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; known: {[r.name for r in ROWS]}")
    torch.manual_seed(0)
    fs, ls = args.flops_size, args.latency_size
    lat_head = "" if args.no_latency else f" CPU latency {ls}x{ls} (s) |"
    print(f"| model | params (M) | GFLOPs {fs}x{fs} x4 | GMACs |{lat_head} claimed |")
    print("|---|---:|---:|---:|" + ("" if args.no_latency else "---:|") + "---|")
    for row in rows:
        model = row.build().eval()
        params = sum(p.numel() for p in model.parameters())
        latency = (
            ""
            if args.no_latency
            else f" {latency_s(model, torch.rand(1, 3, ls, ls), args.iters):.2f} |"
        )
        flops = count_flops(model, (1, 3, fs, fs))  # last: it leaves the model on meta
        line = f"| {row.name} | {params / 1e6:.2f} | {flops / 1e9:.1f} | {flops / 2e9:.1f} |"
        print(line + latency + f" {row.estimate} |", flush=True)
        del model
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
        f"latency = median of {args.iters} runs after 1 warm-up"
    )


if __name__ == "__main__":
    main()
