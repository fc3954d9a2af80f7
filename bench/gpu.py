"""GPU throughput: the engine next to the bare model, and what the large variants achieve.

1. Engine against model only, on a 4K photo-sized image (3840x2160): the shipped nexus-x4 and
   hyresr-x4 and spandrel's Compact x4 (RealESRGAN's compact net, random weights), each at the
   engine's defaults (automatic tile, automatic precision). "model only" runs the bare model on
   the device on inputs of the engine's tile size, already in place (no reading, tiling,
   transfers, blending or conversion); "engine" is ``upscale_array`` on the whole uint8 image,
   the way every face calls it. Their ratio is the share of the model's speed the engine keeps.
2. NEXUS-medium and HyReSR-base (random weights; HyReSR in the fused deploy form the engine
   runs) at x4: latency of one 256x256 input and the achieved FLOP/s in fp16 and bf16, FLOPs
   counted by ``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs; attention included).

    python bench/gpu.py              # CUDA: the whole thing in under 8 minutes on one GPU
    python bench/gpu.py --quick      # any device, tiny sizes and one block per stage of the
                                     # large variants (the CPU: checks that it runs)

Runs from a checkout with ``bench/gpu_check.sh`` (the GPU tests, then this). A section that
would start after ``--budget`` seconds is skipped and said so.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from nexus_upscaler.core import engine
from nexus_upscaler.core.archs import hyresr_base, nexus_medium
from nexus_upscaler.core.archs.reparam import inference_form, reparameterize_model
from nexus_upscaler.core.loading import load_model
from nexus_upscaler.core.model_info import format_count, parameter_count
from nexus_upscaler.core.options import UpscaleOptions
from spandrel import ImageModelDescriptor, ModelLoader
from torch.utils.flop_counter import FlopCounterMode


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device, min_time: float, warmup: int) -> float:
    """Median seconds of one call, over at least ``min_time`` seconds of calls (3 at least)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - started < min_time:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def photo_like(h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8: smooth gradients with texture and noise (speed does not depend on it,
    but MoE routing sees varied tokens, as on a photo)."""
    rng = np.random.default_rng(0)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    base = np.stack([xx + 0 * yy, yy + 0 * xx, 0.5 + 0.5 * np.sin(40 * (xx + yy))], axis=2)
    image = base + rng.normal(0, 0.04, (h, w, 3)).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


# --- 1. engine against model only --------------------------------------------------------------


def engine_models() -> dict[str, ImageModelDescriptor]:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    compact = ModelLoader().load_from_state_dict(Compact(upscale=4).state_dict())
    assert isinstance(compact, ImageModelDescriptor)
    return {
        "nexus-x4": load_model("nexus-x4"),
        "hyresr-x4": load_model("hyresr-x4"),
        "Compact x4 (spandrel)": compact.eval(),
    }


def model_only(
    desc: ImageModelDescriptor, tile: int, device: torch.device, dtype: torch.dtype, min_time: float
) -> float:
    """Seconds of one forward of a ``tile`` x ``tile`` input already on the device."""
    module = copy.deepcopy(inference_form(desc.model)).eval()
    module.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    x = torch.rand(1, desc.input_channels, tile, tile, device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return _time(lambda: module(x), device, min_time, warmup=2)


def engine_vs_model(args: argparse.Namespace, device: torch.device, stop_at: float) -> None:
    h, w = (2160, 3840) if not args.quick else (36, 64)
    image = photo_like(h, w)
    print(f"\n## Engine against model only: {w}x{h} uint8 image, engine defaults on {device}\n")
    print("| model | tile | dtype | model only MP/s | engine MP/s | engine s | engine / model |")
    print("|---|---|---|---|---|---|---|")
    for name, desc in engine_models().items():
        if time.perf_counter() > stop_at:
            print(f"| {name} | skipped: past the --budget | | | | | |")
            continue
        opts = UpscaleOptions(device=str(device))
        tile = engine.choose_tile(desc, opts, h, w)
        dtype = engine.pick_dtype(desc, opts.precision, device)
        per_tile = model_only(desc, min(tile, max(h, w)), device, dtype, args.min_time)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        model_mps = min(tile, max(h, w)) ** 2 / per_tile / 1e6
        engine.upscale_array(desc, image[: h // 4, : w // 4], opts)  # warm up (cuDNN, caches)
        _sync(device)
        t0 = time.perf_counter()
        out = engine.upscale_array(desc, image, opts)
        _sync(device)
        seconds = time.perf_counter() - t0
        assert out.shape == (h * desc.scale, w * desc.scale, 3)
        del out
        engine_mps = h * w / seconds / 1e6
        print(
            f"| {name} | {tile} | {str(dtype)[6:]} | {model_mps:.3g} | {engine_mps:.3g} | "
            f"{seconds:.3g} | {engine_mps / model_mps:.2f} |"
        )
        sys.stdout.flush()


# --- 2. latency and FLOP/s ---------------------------------------------------------------------


def big_models(quick: bool) -> dict[str, torch.nn.Module]:
    """The two variants at x4; ``quick``: one block per stage (same layers, a CPU can run it)."""
    torch.manual_seed(0)
    nexus = dict(depths=(1,)) if quick else {}
    hyresr = dict(depths=(1, 1, 1)) if quick else {}
    suffix = " (1 block per stage)" if quick else ""
    return {
        f"NEXUS-medium x4{suffix}": nexus_medium(scale=4, **nexus),
        f"HyReSR-base x4 (deploy){suffix}": reparameterize_model(hyresr_base(scale=4, **hyresr)),
    }


def count_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())


def latency_and_flops(args: argparse.Namespace, device: torch.device, stop_at: float) -> None:
    size = 256 if not args.quick else 16
    print(f"\n## Latency and achieved FLOP/s: one {size}x{size} input on {device}\n")
    print("| model | params | dtype | GFLOP per forward | latency ms | TFLOP/s |")
    print("|---|---|---|---|---|---|")
    for name, net in big_models(args.quick).items():
        params = format_count(parameter_count(net))
        flops = None
        for dtype in (torch.float16, torch.bfloat16):
            if time.perf_counter() > stop_at:
                print(f"| {name} | {params} | {str(dtype)[6:]} | skipped: past the --budget | | |")
                continue
            module = copy.deepcopy(net).eval()
            module.to(device=device, dtype=dtype, memory_format=torch.channels_last)
            x = torch.rand(1, 3, size, size, device=device, dtype=dtype)
            x = x.contiguous(memory_format=torch.channels_last)
            if flops is None:
                flops = count_flops(module, x)
            with torch.inference_mode():
                seconds = _time(lambda m=module, x=x: m(x), device, args.min_time, warmup=3)
            print(
                f"| {name} | {params} | {str(dtype)[6:]} | {flops / 1e9:.3g} | "
                f"{seconds * 1000:.3g} | {flops / seconds / 1e12:.3g} |"
            )
            sys.stdout.flush()
            del module, x
            if device.type == "cuda":
                torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    p.add_argument(
        "--min-time", type=float, help="seconds of repeated calls per timing (default 2; 0.1 quick)"
    )
    p.add_argument(
        "--budget", type=float, default=420, help="start no section after this many seconds"
    )
    args = p.parse_args()
    if args.min_time is None:
        args.min_time = 0.1 if args.quick else 2.0
    device = torch.device(args.device)
    started = time.perf_counter()
    stop_at = started + args.budget
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# bench/gpu.py on {name}: torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, {torch.get_num_threads()} CPU threads"
    )
    if device.type == "cuda":
        print(
            f"bf16 supported: {torch.cuda.is_bf16_supported()}, "
            f"TF32 convolutions: {torch.backends.cudnn.allow_tf32}"
        )
    engine_vs_model(args, device, stop_at)
    latency_and_flops(args, device, stop_at)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
