"""Time per pixel of the shipped models next to spandrel's SPAN, measured side by side.

SPAN (48 feature channels, the efficient-SR reference that ComfyUI and chaiNNer users run) and
RealESRGAN Compact are built from spandrel's own classes (timing does not depend on the weights);
our models are the shipped files, loaded the way every face loads them, HyReSR also in its fused
deploy form. Each round runs every model once on the same random image, in turn, so all of them
see the same machine; the best round of each is printed as milliseconds per input megapixel and
as a ratio to SPAN at the same scale.

    python bench/model_speed.py --threads 1 --size 128
    python bench/model_speed.py --threads 1 --size 128 --models hyresr-real-x4 nexus-x4

Ratios are the figure to read: on a shared CPU absolute times move with the load.
"""

from __future__ import annotations

import argparse
import time

import torch
from nexus_upscaler.core.archs.reparam import reparameterize_model
from nexus_upscaler.core.loading import load_model
from nexus_upscaler.core.zoo import list_shipped_models
from torch import nn


def references(scale: int) -> dict[str, nn.Module]:
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.SPAN import SPAN

    return {
        f"SPAN 48ch x{scale} (spandrel)": SPAN(
            num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=scale
        ),
        f"Compact x{scale} (spandrel)": Compact(num_in_ch=3, num_out_ch=3, upscale=scale),
    }


def candidates(names: list[str] | None) -> dict[str, tuple[int, nn.Module]]:
    """``{row name: (scale, model)}`` of the shipped models (HyReSR also fused)."""
    out = {}
    for shipped in list_shipped_models():
        if names and shipped.name not in names:
            continue
        d = load_model(shipped.path)
        out[shipped.name] = (int(d.scale), d.model)
        if d.architecture.id == "HyReSR":
            out[f"{shipped.name} (deploy)"] = (int(d.scale), reparameterize_model(d.model))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=128, help="input side in pixels (default 128)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", nargs="*", help="shipped model names (default: all)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = candidates(args.models)
    scales = sorted({s for s, _ in ours.values()})
    models: dict[str, tuple[int, nn.Module]] = {}
    for scale in scales:
        models.update({n: (scale, m) for n, m in references(scale).items()})
    models.update(ours)
    x = torch.rand(1, 3, args.size, args.size)
    best = {name: float("inf") for name in models}
    with torch.inference_mode():
        for _ in range(args.rounds + 1):  # the first round warms every model up
            for name, (_, model) in models.items():
                model.eval()
                start = time.perf_counter()
                model(x)
                best[name] = min(best[name], time.perf_counter() - start)
    mp = args.size * args.size / 1e6
    print("| model | scale | ms per input MP | x SPAN (same scale) |")
    print("|---|---|---|---|")
    for name, (scale, _) in models.items():
        span = best[f"SPAN 48ch x{scale} (spandrel)"]
        print(f"| {name} | x{scale} | {best[name] / mp * 1000:.0f} | {best[name] / span:.2f} |")
    print(
        f"\n{args.threads} thread(s), {args.size}x{args.size} input, best of {args.rounds} rounds, "
        f"torch {torch.__version__}"
    )


if __name__ == "__main__":
    main()
