"""spandrel detectors for NEXUS and HyReSR-MoE, and ``register_with_spandrel()``.

Each detector reads every hyperparameter back from the state dict alone (shapes, counts of
repeated keys, which keys exist, the small int64 buffers the architectures keep for choices that
leave no weight behind), so a file written by anyone's ``torch.save(model.state_dict())`` loads
in ComfyUI, chaiNNer or spandrel without a config. The tables in the docstrings of
``archs/nexus.py`` and ``archs/hyresr.py`` say where each value lives.

A state dict whose values contradict each other raises ``InconsistentCheckpointError`` (spandrel
passes it through; ``core.loading`` adds the file name).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import spandrel
import torch
from spandrel import ImageModelDescriptor, ModelTiling, SizeRequirements, StateDict
from spandrel.util import KeyCondition

from .errors import InconsistentCheckpointError

__all__ = [
    "ARCHITECTURES",
    "HyReSRArch",
    "NEXUSArch",
    "declare_window_grid",
    "register_with_spandrel",
    "variant_of",
]


# --- reading helpers -----------------------------------------------------------------------------


def _count(state_dict: StateDict, prefix: str) -> int:
    """Number of consecutive ``{prefix}{i}.`` indices present (0 if none)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    n = 0
    while n in indices:
        n += 1
    if len(indices) != n:
        raise InconsistentCheckpointError(
            None, f"indices under {prefix!r} are not consecutive: {sorted(indices)}"
        )
    return n


def _int(state_dict: StateDict, key: str) -> int:
    """An int64 scalar buffer, or an explanation of what is missing."""
    if key not in state_dict:
        raise InconsistentCheckpointError(None, f"the buffer {key!r} is missing")
    t = state_dict[key]
    if t.numel() != 1 or t.is_floating_point():
        raise InconsistentCheckpointError(None, f"{key!r} must be an integer scalar, got {t}")
    return int(t.item())


def _shape(state_dict: StateDict, key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise InconsistentCheckpointError(None, f"the tensor {key!r} is missing")
    return tuple(state_dict[key].shape)


def _ratio(pairs: Iterable[tuple[int, int]], hidden_of: Callable[[int, float], int]) -> float:
    """A ratio r with ``hidden_of(dim, r) == hidden`` for every (dim, hidden) observed.

    Hidden widths are rounded, so each observation only bounds r; the midpoint of the bounds all
    observations agree on is returned (it rebuilds exactly the same shapes).
    """
    pairs = list(pairs)
    lo, hi = 0.0, float("inf")
    for dim, hidden in pairs:
        # hidden_of is monotonic in r: bisect the interval of r that gives this hidden width
        lo = max(lo, _edge(dim, hidden, hidden_of, lower=True))
        hi = min(hi, _edge(dim, hidden, hidden_of, lower=False))
    r = (lo + hi) / 2 if hi != float("inf") else lo
    if not all(hidden_of(d, r) == h for d, h in pairs):
        raise InconsistentCheckpointError(
            None, f"hidden widths {pairs} (dim, hidden) do not follow one ratio"
        )
    return round(r, 6) if all(hidden_of(d, round(r, 6)) == h for d, h in pairs) else r


def _edge(dim: int, hidden: int, hidden_of: Callable[[int, float], int], *, lower: bool) -> float:
    lo, hi = 0.0, 64.0
    if not lower and hidden_of(dim, hi) == hidden:
        return hi
    for _ in range(60):
        mid = (lo + hi) / 2
        value = hidden_of(dim, mid)
        if value < hidden or (not lower and value == hidden):
            lo = mid
        else:
            hi = mid
    return hi if lower else lo


def _descriptor(
    arch: spandrel.Architecture,
    model: torch.nn.Module,
    state_dict: StateDict,
    *,
    tags: list[str],
    scale: int,
    in_ch: int,
    out_ch: int,
    tiling: ModelTiling,
    multiple_of: int,
) -> ImageModelDescriptor:
    return ImageModelDescriptor(
        model,
        state_dict,
        architecture=arch,
        purpose="Restoration" if scale == 1 else "SR",
        tags=tags,
        # Checked on CPU by tests/test_detection.py: attention masks are finite (-1e4), softmax,
        # routing, GlobalMix and the Fourier unit run in fp32 internally.
        supports_half=True,
        supports_bfloat16=True,
        scale=scale,
        input_channels=in_ch,
        output_channels=out_ch,
        # Any size works (both models pad internally and crop), but a model computes on a grid:
        # declared, spandrel pads to it as the model would, and a tiler that starts tiles on
        # it gives every tile the windows a whole-image pass would see.
        size_requirements=SizeRequirements(multiple_of=multiple_of),
        tiling=tiling,
    )


# --- NEXUS ---------------------------------------------------------------------------------------


class NEXUSArch(spandrel.Architecture[torch.nn.Module]):
    """Detector for NEXUS (``archs/nexus.py``); id ``"NEXUS"``."""

    def __init__(self) -> None:
        super().__init__(
            id="NEXUS",
            name="NEXUS",
            # nexus_version_buf exists in no other architecture; the rest confirms the layout.
            detect=KeyCondition.has_all(
                "nexus_version_buf",
                "scale_buf",
                "upsampler_buf",
                "conv_first.weight",
                "layers.0.blocks.0.attn.qkv.weight",
                "conv_after_body.weight",
                "conv_last.weight",
            ),
        )

    def config(self, state_dict: StateDict) -> dict[str, Any]:
        """Every constructor argument of ``NEXUS``, read from the state dict."""
        from .archs.nexus import NEXUS_VERSION, UPSAMPLER_CODES

        # defaults (of NEXUS.__init__); each is replaced by what the state dict says
        scale = 4
        in_chans = 3
        out_chans = 3
        embed_dim = 256
        depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
        num_heads: int | tuple[int, ...] = 8
        window_size = 16
        mlp_ratio = 3.0
        upsampler = "pixelshuffle"
        resi_connection = "1conv"
        use_freq = True
        qkv_bias = True
        cab_compress = 3
        se_reduction = 16
        num_feat = 64
        drop_path_rate = 0.0  # training only: not stored, no effect at inference

        sd = state_dict
        version = _int(sd, "nexus_version_buf")
        if version > NEXUS_VERSION:
            raise InconsistentCheckpointError(
                None, f"NEXUS checkpoint version {version} is newer than this package supports"
            )
        embed_dim, in_chans = _shape(sd, "conv_first.weight")[:2]
        out_chans = _shape(sd, "conv_last.weight")[0]
        scale = _int(sd, "scale_buf")
        codes = {v: k for k, v in UPSAMPLER_CODES.items()}
        code = _int(sd, "upsampler_buf")
        if code not in codes:
            raise InconsistentCheckpointError(None, f"unknown upsampler code {code}")
        upsampler = codes[code]
        keyed = (
            "nearest+conv"
            if "conv_hr.weight" in sd
            else "pixelshuffle"
            if "conv_before_upsample.0.weight" in sd
            else "pixelshuffledirect"
        )
        if keyed != upsampler:
            raise InconsistentCheckpointError(
                None, f"upsampler_buf says {upsampler!r} but the weights are those of {keyed!r}"
            )
        if upsampler != "pixelshuffledirect":
            num_feat = _shape(sd, "conv_before_upsample.0.weight")[0]

        window_size = _int(sd, "window_size_buf")
        use_freq = bool(_int(sd, "use_freq_buf"))
        groups = _count(sd, "layers.")
        depths = tuple(_count(sd, f"layers.{i}.blocks.") for i in range(groups))
        if not groups or 0 in depths:
            raise InconsistentCheckpointError(None, "NEXUS checkpoint without residual blocks")
        heads = []
        for i, depth in enumerate(depths):
            group_heads = set()
            for j in range(depth):
                b = f"layers.{i}.blocks.{j}."
                group_heads.add(_int(sd, b + "attn.num_heads_buf"))
                if _int(sd, b + "attn.window_size_buf") != window_size:
                    raise InconsistentCheckpointError(None, f"{b}attn has another window size")
                expected_shift = 0 if j % 2 == 0 else window_size // 2
                if _int(sd, b + "shift_buf") != expected_shift:
                    raise InconsistentCheckpointError(None, f"{b}shift_buf is not {expected_shift}")
                if (b + "freq.alpha" in sd) != use_freq:
                    raise InconsistentCheckpointError(
                        None,
                        f"use_freq_buf={int(use_freq)} but {b}freq is {'absent' if use_freq else 'present'}",
                    )
            if len(group_heads) != 1:
                raise InconsistentCheckpointError(None, f"group {i} mixes head counts")
            heads.append(group_heads.pop())
        num_heads = heads[0] if len(set(heads)) == 1 else tuple(heads)

        b0 = "layers.0.blocks.0."
        hidden = _shape(sd, b0 + "ffn.fc1.weight")[0]
        mlp_ratio = hidden / embed_dim
        qkv_bias = b0 + "attn.qkv.bias" in sd
        cab_compress = embed_dim // _shape(sd, b0 + "cab.pw1.weight")[0]
        squeezed = _shape(sd, b0 + "cab.se.fc.0.weight")[0]
        se_reduction = embed_dim // squeezed
        if "layers.0.conv.weight" in sd:
            resi_connection = "1conv"
        elif "layers.0.conv.0.weight" in sd:
            resi_connection = "3conv"
        else:
            raise InconsistentCheckpointError(None, "layers.0.conv has neither form")

        return dict(
            scale=scale,
            in_chans=in_chans,
            out_chans=out_chans,
            embed_dim=embed_dim,
            depths=depths,
            num_heads=num_heads,
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            upsampler=upsampler,
            resi_connection=resi_connection,
            drop_path_rate=drop_path_rate,
            use_freq=use_freq,
            qkv_bias=qkv_bias,
            cab_compress=cab_compress,
            se_reduction=se_reduction,
            num_feat=num_feat,
        )

    def load(self, state_dict: StateDict) -> ImageModelDescriptor:
        from .archs.nexus import NEXUS

        cfg = self.config(state_dict)
        try:
            model = NEXUS(**cfg)
        except ValueError as e:
            raise InconsistentCheckpointError(None, f"not a valid NEXUS configuration: {e}") from e
        variant = _variant_name(_NEXUS_VARIANTS, state_dict)
        heads = cfg["num_heads"]
        tags = [
            variant,
            f"{cfg['embed_dim']}dim",
            f"{sum(cfg['depths'])}blocks",
            f"{heads if isinstance(heads, int) else max(heads)}heads",
            f"w{cfg['window_size']}",
        ]
        return _descriptor(
            self,
            model,
            state_dict,
            tags=tags,
            scale=cfg["scale"],
            in_ch=cfg["in_chans"],
            out_ch=cfg["out_chans"],
            tiling=ModelTiling.SUPPORTED,  # window attention only: tiles see local context
            multiple_of=model.window_size,
        )


_NEXUS_VARIANTS = ("nexus_tiny", "nexus_small", "nexus_medium", "nexus_large", "nexus_extreme")


# --- HyReSR --------------------------------------------------------------------------------------


_STAGES = ("enc1", "enc2", "mid", "dec2", "dec1")


class HyReSRArch(spandrel.Architecture[torch.nn.Module]):
    """Detector for HyReSR-MoE (``archs/hyresr.py``), training or deploy form; id ``"HyReSR"``."""

    def __init__(self) -> None:
        super().__init__(
            id="HyReSR",
            name="HyReSR-MoE",
            detect=KeyCondition.has_all(
                KeyCondition.has_any("stem.conv3x3.weight", "stem.conv_fused.weight"),
                "enc1.blocks.0.split.low_conv.weight",
                "enc1.blocks.0.split.mix",
                "enc1.blocks.0.high.layers.0.attn.window_size_buf",
                "down1.1.weight",
                "msg1.weight",
                "msg2.weight",
                "dec1.blocks.0.fuse.weight",
                "head.scale_buf",
                "head.conv_before.weight",
            ),
        )

    def config(self, state_dict: StateDict) -> dict[str, Any]:
        """Every constructor argument of ``HyReSR``, read from the state dict."""
        # defaults (of HyReSR.__init__); each is replaced by what the state dict says
        in_ch = 3
        out_ch = 3
        base = 48
        depths = (4, 6, 8)
        win = 8
        experts = 4
        scale = 2
        num_heads = (2, 4, 8)
        ffn_ratio = 2.0
        expert_ratio = 1.0
        moe_every = 1
        high_depth = 1
        low_depth = 1
        overlap = False
        overlap_ratio = 0.5
        plk = True
        plk_kernel = 13
        fourier = False
        noise = False
        global_mix = True
        upsampler = "pixelshuffle"
        deploy = False

        sd = state_dict
        deploy = "stem.conv_fused.weight" in sd
        if deploy == ("stem.conv3x3.weight" in sd) or (
            deploy and any(".conv3x3." in k or ".conv_large." in k for k in sd)
        ):
            raise InconsistentCheckpointError(
                None,
                "mixes the training form (conv3x3/conv_large) and the deploy form (conv_fused)",
            )
        base, in_ch = _shape(sd, "stem.conv_fused.weight" if deploy else "stem.conv3x3.weight")[:2]
        dims = {"enc1": base, "enc2": 2 * base, "mid": 4 * base, "dec2": 2 * base, "dec1": base}
        scale = _int(sd, "head.scale_buf")
        if "head.offset.weight" in sd:
            upsampler = "dysample"
            out_ch = _shape(sd, "head.to_img.weight")[0]
        else:
            upsampler = "pixelshuffle"
            up = _shape(sd, "head.conv_up.weight")[0]
            if up % (scale * scale):
                raise InconsistentCheckpointError(
                    None, f"head.conv_up has {up} channels, not a multiple of scale^2 = {scale**2}"
                )
            out_ch = up // (scale * scale)

        counts = {s: _count(sd, f"{s}.blocks.") for s in _STAGES}
        depths = (counts["enc1"], counts["enc2"], counts["mid"])
        if (counts["dec2"], counts["dec1"]) != (depths[1], depths[0]) or 0 in depths:
            raise InconsistentCheckpointError(
                None, f"stage depths {counts} are not a mirrored U-Net with non-empty stages"
            )
        first = "enc1.blocks.0."
        win = _int(sd, first + "high.layers.0.attn.window_size_buf")
        num_heads = tuple(
            _int(sd, f"{s}.blocks.0.high.layers.0.attn.num_heads_buf") for s in _STAGES[:3]
        )
        high_depth = _count(sd, first + "high.layers.")
        low_depth = _count(sd, first + "low.blocks.")
        fourier = first + "split.fourier_low.conv1.weight" in sd
        noise = first + "noise.strength" in sd
        plk_key = first + ("low.plk.conv_fused.weight" if deploy else "low.plk.conv_large.weight")
        plk = plk_key in sd
        if plk:
            plk_kernel = _shape(sd, plk_key)[2]
        global_mix = "mid.blocks.0.mix.qkv.weight" in sd
        overlap = f"enc1.blocks.{depths[0] - 1}.high.ocab.q.weight" in sd
        if overlap:
            ow = _int(sd, f"enc1.blocks.{depths[0] - 1}.high.ocab.overlap_size_buf")
            overlap_ratio = (ow - win) / win

        # Per-block facts every block must agree on; MoE placement follows moe_every.
        ffn_pairs, moe_at, expert_pairs, expert_counts = [], [], [], set()
        for s in _STAGES:
            for i in range(counts[s]):
                p = f"{s}.blocks.{i}."
                if _count(sd, p + "high.layers.") != high_depth:
                    raise InconsistentCheckpointError(None, f"{p}high has another layer count")
                if _count(sd, p + "low.blocks.") != low_depth:
                    raise InconsistentCheckpointError(None, f"{p}low has another block count")
                for j in range(high_depth):
                    layer = f"{p}high.layers.{j}."
                    if _int(sd, layer + "attn.window_size_buf") != win:
                        raise InconsistentCheckpointError(None, f"{layer}attn has another window")
                    shift = (win // 2) if (i * high_depth + j) % 2 else 0
                    if _int(sd, layer + "shift_buf") != shift:
                        raise InconsistentCheckpointError(None, f"{layer}shift_buf is not {shift}")
                    ffn_pairs.append((dims[s], _shape(sd, layer + "ffn.fc1.weight")[0]))
                if p + "moe.router.weight" in sd:
                    moe_at.append(i + 1)
                    expert_counts.add(_shape(sd, p + "moe.router.weight")[0])
                    expert_pairs.append((dims[s], _shape(sd, p + "moe.experts.0.fc1.weight")[0]))
        ffn_ratio = _ratio(ffn_pairs, lambda d, r: 2 * max(1, round(d * r / 2)))
        if moe_at:
            if len(expert_counts) != 1:
                raise InconsistentCheckpointError(None, f"MoE layers disagree: {expert_counts}")
            experts = expert_counts.pop()
            expert_ratio = _ratio(expert_pairs, lambda d, r: max(1, round(d * r)))
            # the smallest block position with experts is moe_every itself
            moe_every = min(moe_at)
        else:
            moe_every = 0  # no block has experts; the expert count is then irrelevant
        expected = [
            i + 1
            for s in _STAGES
            for i in range(counts[s])
            if moe_every > 0 and (i + 1) % moe_every == 0
        ]
        if sorted(expected) != sorted(moe_at):
            raise InconsistentCheckpointError(
                None, f"MoE layers sit at block positions {moe_at}, not every {moe_every}th"
            )

        return dict(
            in_ch=in_ch,
            out_ch=out_ch,
            base=base,
            depths=depths,
            win=win,
            experts=experts,
            scale=scale,
            num_heads=num_heads,
            ffn_ratio=ffn_ratio,
            expert_ratio=expert_ratio,
            moe_every=moe_every,
            high_depth=high_depth,
            low_depth=low_depth,
            overlap=overlap,
            overlap_ratio=overlap_ratio,
            plk=plk,
            plk_kernel=plk_kernel,
            fourier=fourier,
            noise=noise,
            global_mix=global_mix,
            upsampler=upsampler,
            deploy=deploy,
        )

    def load(self, state_dict: StateDict) -> ImageModelDescriptor:
        from .archs.hyresr import HyReSR

        cfg = self.config(state_dict)
        try:
            model = HyReSR(**cfg)
        except ValueError as e:
            raise InconsistentCheckpointError(None, f"not a valid HyReSR configuration: {e}") from e
        variant = _variant_name(_HYRESR_VARIANTS, state_dict, cfg["deploy"])
        tags = [
            variant,
            f"{cfg['base']}base",
            "x".join(map(str, cfg["depths"])),
            f"w{cfg['win']}",
            f"{cfg['experts'] if cfg['moe_every'] else 0}experts",
            "deploy" if cfg["deploy"] else "train",
        ]
        # GlobalMix (linear attention over the whole bottleneck) and the Fourier unit see the
        # whole input: a tile sees less than the image, so tiling changes the result.
        whole_image = cfg["global_mix"] or cfg["fourier"]
        return _descriptor(
            self,
            model,
            state_dict,
            tags=tags,
            scale=cfg["scale"],
            in_ch=cfg["in_ch"],
            out_ch=cfg["out_ch"],
            tiling=ModelTiling.DISCOURAGED if whole_image else ModelTiling.SUPPORTED,
            multiple_of=model.pad_multiple,  # both downsamplings, then windows at 1/4
        )


_HYRESR_VARIANTS = ("hyresr_tiny", "hyresr_base", "hyresr_sr_heavy", "hyresr_restoration_heavy")


# --- variants --------------------------------------------------------------------------------------


def _variant_name(names: tuple[str, ...], state_dict: StateDict, deploy: bool = False) -> str:
    """The variant whose body (all but stem, head and channels) this checkpoint has.

    Each variant is built once on the meta device (no memory, no init); it matches when the body
    keys and shapes are the same and so are the integer buffers its modules expose (heads,
    windows, shifts). "custom" otherwise.
    """
    shapes = tuple((k, tuple(v.shape)) for k, v in sorted(state_dict.items()) if _is_body(k))
    for name in names:
        built_shapes, values = _variant_body(name, deploy)
        if built_shapes == shapes and all(
            k in state_dict and int(state_dict[k].item()) == v for k, v in values.items()
        ):
            return name
    return "custom"


# Keys of the parts a user may change on top of a named variant: channels, scale, upsampler.
_HEAD_PREFIXES = (
    "stem.", "head.", "conv_first.", "conv_last.", "conv_before_upsample.", "upsample.",
    "conv_up", "conv_hr.", "scale_buf", "upsampler_buf",
)  # fmt: skip


def _is_body(key: str) -> bool:
    return not key.startswith(_HEAD_PREFIXES)


@functools.lru_cache(maxsize=32)
def _variant_body(name: str, deploy: bool) -> tuple[tuple, dict[str, int]]:
    """(sorted body keys and shapes, known integer buffer values) of a variant built on meta."""
    from .archs import hyresr, nexus

    kwargs = {"deploy": True} if deploy else {}
    build = getattr(nexus, name, None) or getattr(hyresr, name)
    with torch.device("meta"):
        model = build(**kwargs)
    shapes = tuple(
        (k, tuple(v.shape)) for k, v in sorted(model.state_dict().items()) if _is_body(k)
    )
    values = {k: v for k, v in _int_buffer_values(model).items() if _is_body(k)}
    return shapes, values


def _int_buffer_values(model: torch.nn.Module) -> dict[str, int]:
    """Values of int64 scalar buffers of a meta-device model (meta tensors hold no values),
    read from the attributes of the modules that own them."""
    from .archs.blocks import WindowAttention

    out: dict[str, int] = {}
    for name, module in model.named_modules():
        p = f"{name}." if name else ""
        if isinstance(module, WindowAttention):
            out[p + "num_heads_buf"] = module.num_heads
            out[p + "window_size_buf"] = module.window_size
        for attr, buf in (
            ("shift", "shift_buf"),
            ("heads", "num_heads_buf"),
            ("overlap_size", "overlap_size_buf"),
        ):
            value = getattr(module, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                out[p + buf] = value
    if isinstance(getattr(model, "window_size", None), int):
        out["window_size_buf"] = model.window_size  # NEXUS keeps it at model level too
    keys = model.state_dict().keys()
    return {k: v for k, v in out.items() if k in keys}


# --- spandrel's own window transformers -------------------------------------------------------

# spandrel architectures whose forward reflect-pads the input to a multiple of the window
# (``check_image_size`` in spandrel 0.4's SwinIR, Swin2SR and HAT) but whose descriptor does not
# declare it. Declaring it changes nothing in their output (spandrel's padding is the same
# reflect padding) and lets a tiler start tiles on the window grid.
_WINDOW_PADDED = ("SwinIR", "Swin2SR", "HAT")


def declare_window_grid(descriptor: spandrel.ModelDescriptor) -> spandrel.ModelDescriptor:
    """Add the window grid to the size requirements of a spandrel window transformer that pads
    to its window internally without saying so (see ``_WINDOW_PADDED``). Returns ``descriptor``;
    other models are left as they are."""
    if descriptor.architecture.id not in _WINDOW_PADDED:
        return descriptor
    window = getattr(descriptor.model, "window_size", None)
    req = descriptor.size_requirements
    if isinstance(window, int) and window > 1 and req.multiple_of % window:
        descriptor.size_requirements = SizeRequirements(
            minimum=req.minimum, multiple_of=math.lcm(req.multiple_of, window), square=req.square
        )
    return descriptor


# --- registration ------------------------------------------------------------------------------


#: our ``spandrel.Architecture`` instances, in the order they are registered
ARCHITECTURES: tuple[spandrel.Architecture, ...] = (NEXUSArch(), HyReSRArch())


def register_with_spandrel(registry: spandrel.ArchRegistry | None = None) -> None:
    """Add our architectures to ``spandrel.MAIN_REGISTRY`` (or ``registry``).

    Harmless when called again, or after another copy of this package registered the same ids:
    an id already present is left as it is.
    """
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    registry.add(
        *(spandrel.ArchSupport.from_architecture(a) for a in ARCHITECTURES),
        ignore_duplicates=True,
    )


def variant_of(descriptor: spandrel.ModelDescriptor) -> str:
    """The variant name of a loaded model (e.g. ``"nexus_tiny"``, ``"custom"``), else ``""``.

    Our detectors put the variant name first in ``tags``; other architectures' tags are sizes.
    """
    if descriptor.architecture.id in ("NEXUS", "HyReSR") and descriptor.tags:
        return descriptor.tags[0]
    return ""
