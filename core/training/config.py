"""Training configuration: TOML (or YAML when PyYAML is installed) read into typed dataclasses.

Every field is checked on load: an unknown field, a wrong type or an impossible value raises
``ConfigError`` with the file and the dotted field name (``train.pixel_opt.loss_weight``), so a
typo fails in the first second instead of silently training with a default for hours.
``network_g`` is free-form apart from ``type`` (a name in ``core.archs.VARIANTS``); its other keys
are the variant's keyword overrides and are checked when the model is built.

Dataset folders are named in one place a user can change: ``{datasets}`` in
``datasets.train.hr_folders`` and ``datasets.val.hr_folder`` stands for the datasets folder, which
is ``nexus-train --datasets DIR``, else the ``NEXUS_DATASETS`` environment variable, else
``../shared/datasets`` (relative paths relative to the current folder, as every path of a config).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DATASETS_ENV",
    "DEFAULT_DATASETS",
    "datasets_dir",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
]


DATASETS_ENV = "NEXUS_DATASETS"
"""The environment variable that says where the datasets are (``{datasets}`` in a config)."""
DEFAULT_DATASETS = "../shared/datasets"
"""Where the datasets are when neither ``--datasets`` nor ``NEXUS_DATASETS`` says."""
_PLACEHOLDER = "{datasets}"


def datasets_dir(datasets: str | os.PathLike[str] | None = None) -> Path:
    """The datasets folder: ``datasets`` when given, else ``$NEXUS_DATASETS``, else
    ``../shared/datasets``; ``~`` expanded, a relative path left relative (to the current folder).
    """
    chosen = datasets if datasets is not None else os.environ.get(DATASETS_ENV) or DEFAULT_DATASETS
    return Path(chosen).expanduser()


def _datasets_hint(datasets: str | os.PathLike[str] | None) -> str:
    """How the user can point ``{datasets}`` elsewhere, for a message about a missing folder."""
    if datasets is not None:
        where = "given by --datasets"
    elif os.environ.get(DATASETS_ENV):
        where = f"from ${DATASETS_ENV}"
    else:
        where = "the default"
    return (
        f" ({_PLACEHOLDER} is {datasets_dir(datasets)}, {where}; pass --datasets DIR or set "
        f"{DATASETS_ENV} to the folder that holds the data sets)"
    )


@dataclass
class Degradations:
    """Optional degradations of the LR input (restoration and real-world models).

    Applied in this order: Gaussian blur of the HR crop, the bicubic downscale, Gaussian noise,
    JPEG. Each stage runs with its probability and a value drawn uniformly from its range.
    """

    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.2, 2.0)
    noise_prob: float = 0.0
    noise_sigma: tuple[float, float] = (1.0, 15.0)  # in 0..255 units
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (40, 95)


@dataclass
class RealRound:
    """One round of the real-world chain: blur, resize, noise, JPEG (see ``realworld``).

    Probabilities are in [0, 1]; ``*_probs`` lists are relative weights. Noise sigmas are in
    0..255 units; a resize factor is drawn from ``resize_range`` (up: 1..max, down: min..1).
    """

    blur_prob: float = 1.0
    kernel_probs: list[float] = field(
        default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    )  # iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)  # generalised Gaussian shape
    betap_range: tuple[float, float] = (1.0, 2.0)  # plateau shape
    resize_probs: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_mode_probs: list[float] = field(
        default_factory=lambda: [1.0, 1.0, 1.0]
    )  # area, bilinear, bicubic
    gaussian_noise_prob: float = 0.5  # else Poisson noise
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_prob: float = 1.0
    jpeg_range: tuple[int, int] = (30, 95)


def _second_round() -> RealRound:
    return RealRound(
        blur_prob=0.8,
        blur_sigma=(0.2, 1.5),
        resize_probs=[0.3, 0.4, 0.3],
        resize_range=(0.3, 1.2),
        noise_range=(1.0, 25.0),
        poisson_scale_range=(0.05, 2.5),
        jpeg_prob=0.0,  # the chain's final JPEG follows the second round
    )


@dataclass
class RealDegradation:
    """The second-order real-world chain (``degradation = "real"``): ``first`` round, then
    ``second`` round with ``second_prob``, then the resize to 1/scale with a sinc filter
    (``final_sinc_prob``) and JPEG (``final_jpeg_range``) in random order."""

    kernel_size: int = 21  # largest blur kernel; sizes are drawn from the odd numbers 7..this
    first: RealRound = field(default_factory=RealRound)
    second: RealRound = field(default_factory=_second_round)
    second_prob: float = 1.0
    final_sinc_prob: float = 0.8
    final_jpeg_range: tuple[int, int] = (30, 95)
    # a share of the samples only downscaled and (with light_jpeg_prob) saved as JPEG: without
    # it a model trained on the full chain over-smooths the textures of mildly degraded pictures
    light_prob: float = 0.0
    light_jpeg_prob: float = 0.9
    light_jpeg_range: tuple[int, int] = (30, 95)
    sharpen_target: bool = False  # train towards unsharp-masked HR crops (crisper results)


@dataclass
class TrainData:
    hr_folders: list[str] = field(default_factory=list)
    lr_patch: int = 48
    batch_size: int = 16
    num_workers: int = 1
    cache: bool = True
    flip: bool = True
    rot90: bool = True
    # "bicubic": MATLAB bicubic LR with the optional simple ``degradations``; "real": the
    # second-order real-world chain of ``real``, made on the training device per batch
    degradation: Literal["bicubic", "real"] = "bicubic"
    degradations: Degradations = field(default_factory=Degradations)
    real: RealDegradation = field(default_factory=RealDegradation)


@dataclass
class ValData:
    hr_folder: str = ""
    every: int = 1000
    max_images: int = 0  # 0 means all


@dataclass
class Datasets:
    train: TrainData = field(default_factory=TrainData)
    val: ValData | None = None


@dataclass
class Optimizer:
    type: Literal["AdamW"] = "AdamW"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0


@dataclass
class Scheduler:
    type: Literal["CosineAnnealingRestartLR", "constant"] = "CosineAnnealingRestartLR"
    periods: list[int] = field(default_factory=list)  # empty: one period of total_iter
    restart_weights: list[float] = field(default_factory=list)  # empty: all 1
    eta_min: float = 1e-7


@dataclass
class PixelLoss:
    type: Literal["L1Loss", "CharbonnierLoss"] = "L1Loss"
    loss_weight: float = 1.0
    eps: float = 1e-6  # Charbonnier only


@dataclass
class PerceptualLoss:
    vgg_weights: str = ""
    layer_weights: dict[str, float] = field(
        default_factory=lambda: {
            "conv1_2": 0.1,
            "conv2_2": 0.1,
            "conv3_4": 1.0,
            "conv4_4": 1.0,
            "conv5_4": 1.0,
        }
    )
    perceptual_weight: float = 1.0
    criterion: Literal["l1", "l2"] = "l1"
    use_input_norm: bool = True


@dataclass
class WeightFreeLoss:
    """A perceptual signal that needs no downloaded weights (see ``losses``)."""

    loss_weight: float = 1.0


@dataclass
class RandomFeatureLossConfig:
    """Distances of a fixed random VGG-style network's features (``losses.RandomFeatureLoss``)."""

    loss_weight: float = 1.0
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    seed: int = 0


@dataclass
class GanLoss:
    gan_type: Literal["vanilla"] = "vanilla"
    loss_weight: float = 0.1
    discriminator: Literal["unet", "vgg"] = "unet"
    num_feat: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    start_iter: int = 0  # train G alone (pixel/perceptual) before the GAN term starts
    # L1 between the discriminator's inner features of the output and of the target
    feature_matching_weight: float = 0.0


@dataclass
class CutBlur:
    """CutBlur (Yoo et al., CVPR 2020): paste a box of the target into the input or the reverse.

    The input and target must have the same size, so it applies to scale-1 models only.
    """

    prob: float = 0.5
    alpha: float = 0.7  # largest box side as a fraction of the crop side


@dataclass
class FreqDropout:
    """Zero a random radial band of a feature map's spectrum during training.

    ``module`` names the submodule whose output is filtered (``""``: the model's first Conv2d).
    """

    prob: float = 0.5
    max_band: float = 0.5  # widest band, as a fraction of the spectrum radius
    module: str = ""


@dataclass
class Train:
    total_iter: int = 1000
    optim_g: Optimizer = field(default_factory=Optimizer)
    scheduler: Scheduler = field(default_factory=Scheduler)
    pixel_opt: PixelLoss | None = field(default_factory=PixelLoss)
    perceptual_opt: PerceptualLoss | None = None
    fft_opt: WeightFreeLoss | None = None  # L1 of the spectra
    random_feature_opt: RandomFeatureLossConfig | None = None  # random-weight conv features
    artifact_opt: WeightFreeLoss | None = None  # LDL's artefact map (needs ema_decay > 0)
    gan_opt: GanLoss | None = None
    moe_balance_weight: float = 0.01  # weight of the HyReSR MoE balance loss (model.aux_loss())
    moe_warmup_iter: int = 0  # HyReSR: sample experts (Gumbel) instead of argmax before this step
    ema_decay: float = 0.999  # 0 disables the EMA
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    amp: Literal["none", "bf16", "fp16"] = "none"
    cutblur: CutBlur | None = None
    freq_dropout: FreqDropout | None = None


@dataclass
class Logger:
    print_every: int = 100
    checkpoint_every: int = 1000
    keep_states: int = 2  # resumable training states kept (older ones are deleted)
    progress_bar: bool = True


@dataclass
class TrainConfig:
    name: str = "run"
    scale: int = 4
    seed: int = 0
    output_dir: str = ""  # empty: runs/<name>
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    cpu_threads: int = 0  # torch intra-op threads; 0 keeps torch's default (all cores)
    network_g: dict[str, Any] = field(default_factory=dict)
    # start from these weights (a .safetensors/.pth of the same network_g) to fine-tune or to
    # run a further schedule; a --resume state takes precedence
    pretrain_network_g: str = ""
    # false: take only the tensors whose name and shape fit (e.g. an x4 model's body for an x2
    # run) and keep the fresh initialisation of the rest; at least half the tensors must fit
    pretrain_strict: bool = True
    datasets: Datasets = field(default_factory=Datasets)
    train: Train = field(default_factory=Train)
    logger: Logger = field(default_factory=Logger)
    source: str = ""  # the file the config came from (set by load_config, not a field)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, file: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it (lists to tuples etc.)."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{file}: field '{where}' must be {expected}, got {value!r}")

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where, file)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail(f"a table of {', '.join(f.name for f in dataclasses.fields(tp))}")
        return _build(tp, value, where, file)
    if origin is Literal:
        if value not in args:
            raise fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        if origin is tuple and len(args) == 2 and args[1] is not Ellipsis:
            if len(value) != 2:
                raise fail("a list of two values")
            return tuple(
                _convert(v, a, f"{where}[{i}]", file) for i, (v, a) in enumerate(zip(value, args))
            )
        item = args[0]
        return [_convert(v, item, f"{where}[{i}]", file) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail("a table")
        return {k: _convert(v, args[1], f"{where}.{k}", file) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    raise fail(_type_name(tp))  # pragma: no cover - an annotation this reader does not know


def _build(cls: type, data: dict[str, Any], prefix: str, file: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(
                f"{file}: unknown field '{where}' (known fields here: {', '.join(names)})"
            )
        kwargs[key] = _convert(value, hints[key], where, file)
    return cls(**kwargs)


def _resolve_datasets(data: dict[str, Any], datasets: str | os.PathLike[str] | None) -> set[str]:
    """Put the datasets folder for ``{datasets}`` in the dataset folders of ``data`` (in place);
    returns the fields that used it."""
    used: set[str] = set()
    root = str(datasets_dir(datasets))

    def resolve(value: Any, where: str) -> Any:
        if isinstance(value, str) and _PLACEHOLDER in value:
            used.add(where)
            return value.replace(_PLACEHOLDER, root)
        return value

    sets = data.get("datasets")
    train = sets.get("train") if isinstance(sets, dict) else None
    if isinstance(train, dict) and isinstance(train.get("hr_folders"), list):
        train["hr_folders"] = [
            resolve(f, f"datasets.train.hr_folders[{i}]") for i, f in enumerate(train["hr_folders"])
        ]
    val = sets.get("val") if isinstance(sets, dict) else None
    if isinstance(val, dict) and "hr_folder" in val:
        val["hr_folder"] = resolve(val["hr_folder"], "datasets.val.hr_folder")
    return used


def _check_values(
    cfg: TrainConfig,
    file: str,
    placeholders: Collection[str] = (),
    datasets: str | os.PathLike[str] | None = None,
) -> None:
    def bad(where: str, why: str) -> ConfigError:
        hint = _datasets_hint(datasets) if where in placeholders else ""
        return ConfigError(f"{file}: field '{where}' {why}{hint}")

    if cfg.scale not in (1, 2, 3, 4, 8):
        raise bad("scale", f"must be 1, 2, 3, 4 or 8, got {cfg.scale}")
    if "type" not in cfg.network_g:
        raise bad("network_g.type", "is missing (a variant name such as 'nexus_tiny')")
    net_scale = cfg.network_g.get("scale", cfg.scale)
    if net_scale != cfg.scale:
        raise bad("network_g.scale", f"is {net_scale} but the top-level scale is {cfg.scale}")
    t = cfg.datasets.train
    if not t.hr_folders:
        raise bad("datasets.train.hr_folders", "must list at least one folder of HR images")
    for i, folder in enumerate(t.hr_folders):
        if not Path(folder).is_dir():
            raise bad(f"datasets.train.hr_folders[{i}]", f"is not a folder: {folder}")
    for name in ("lr_patch", "batch_size"):
        if getattr(t, name) < 1:
            raise bad(f"datasets.train.{name}", "must be at least 1")
    if t.num_workers < 0:
        raise bad("datasets.train.num_workers", "must be 0 or more")
    if t.degradation == "real":
        _check_real(t.real, cfg.scale, t.lr_patch, bad)
    v = cfg.datasets.val
    if v is not None:
        if not Path(v.hr_folder).is_dir():
            raise bad("datasets.val.hr_folder", f"is not a folder: {v.hr_folder!r}")
        if v.every < 1:
            raise bad("datasets.val.every", "must be at least 1")
    tr = cfg.train
    if tr.total_iter < 1:
        raise bad("train.total_iter", "must be at least 1")
    s = tr.scheduler
    if s.restart_weights and len(s.restart_weights) != len(s.periods):
        raise bad("train.scheduler.restart_weights", "must have one weight per period")
    if any(p < 1 for p in s.periods):
        raise bad("train.scheduler.periods", "must all be at least 1")
    if not 0.0 <= tr.ema_decay < 1.0:
        raise bad("train.ema_decay", "must be in [0, 1)")
    losses = ("pixel_opt", "perceptual_opt", "fft_opt", "random_feature_opt", "gan_opt")
    if all(getattr(tr, name) is None for name in losses):
        raise bad("train", f"needs at least one of {', '.join(losses)}")
    if tr.artifact_opt is not None and tr.ema_decay <= 0:
        raise bad("train.artifact_opt", "compares with the EMA model's output: set ema_decay > 0")
    if (
        tr.gan_opt is not None
        and tr.gan_opt.feature_matching_weight
        and tr.gan_opt.discriminator != "unet"
    ):
        raise bad("train.gan_opt.feature_matching_weight", 'needs discriminator = "unet"')
    p = tr.perceptual_opt
    if p is not None:
        if not p.vgg_weights:
            raise bad(
                "train.perceptual_opt.vgg_weights",
                "is required: the perceptual loss needs VGG19 weights and nothing is downloaded; "
                "name a torchvision vgg19 state dict (.pth or .safetensors)",
            )
        if not Path(p.vgg_weights).is_file():
            raise bad("train.perceptual_opt.vgg_weights", f"is not a file: {p.vgg_weights}")
    if tr.cutblur is not None and cfg.scale != 1:
        raise bad(
            "train.cutblur",
            "needs scale 1: CutBlur pastes target pixels into the input, so both must be the "
            "same size (restoration models); remove it for super-resolution",
        )
    for name in ("cutblur", "freq_dropout"):
        opt = getattr(tr, name)
        if opt is not None and not 0.0 <= opt.prob <= 1.0:
            raise bad(f"train.{name}.prob", "must be in [0, 1]")


def _check_real(r: RealDegradation, scale: int, lr_patch: int, bad: Any) -> None:
    where = "datasets.train.real"
    if r.kernel_size < 7 or r.kernel_size % 2 == 0:
        raise bad(f"{where}.kernel_size", "must be an odd number of at least 7")
    if r.kernel_size // 2 >= lr_patch * scale:
        raise bad(f"{where}.kernel_size", "must be smaller than twice the HR crop")
    _check_quality(r.light_jpeg_range, f"{where}.light_jpeg_range", bad)
    for name in ("second_prob", "final_sinc_prob", "light_prob", "light_jpeg_prob"):
        if not 0.0 <= getattr(r, name) <= 1.0:
            raise bad(f"{where}.{name}", "must be in [0, 1]")
    _check_quality(r.final_jpeg_range, f"{where}.final_jpeg_range", bad)
    for round_name in ("first", "second"):
        rr: RealRound = getattr(r, round_name)
        at = f"{where}.{round_name}"
        for name in (
            "blur_prob",
            "sinc_prob",
            "gaussian_noise_prob",
            "gray_noise_prob",
            "jpeg_prob",
        ):
            if not 0.0 <= getattr(rr, name) <= 1.0:
                raise bad(f"{at}.{name}", "must be in [0, 1]")
        for name, count in (("kernel_probs", 6), ("resize_probs", 3), ("resize_mode_probs", 3)):
            probs = getattr(rr, name)
            if len(probs) != count or min(probs) < 0 or sum(probs) <= 0:
                raise bad(f"{at}.{name}", f"must be {count} non-negative weights, not all 0")
        for name in (
            "blur_sigma",
            "betag_range",
            "betap_range",
            "noise_range",
            "poisson_scale_range",
            "resize_range",
        ):
            lo, hi = getattr(rr, name)
            if lo > hi or lo < 0:
                raise bad(f"{at}.{name}", "must be [low, high] with 0 <= low <= high")
        if rr.blur_sigma[0] <= 0 or rr.resize_range[0] <= 0:
            raise bad(f"{at}.blur_sigma/resize_range", "must start above 0")
        _check_quality(rr.jpeg_range, f"{at}.jpeg_range", bad)


def _check_quality(q: tuple[int, int], where: str, bad: Any) -> None:
    if not 1 <= q[0] <= q[1] <= 100:
        raise bad(where, "must be [low, high] JPEG qualities with 1 <= low <= high <= 100")


def config_from_dict(
    data: dict[str, Any],
    file: str = "<config>",
    datasets: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """Build and check a ``TrainConfig`` from nested dicts (as read from TOML). ``{datasets}``
    in the dataset folders is ``datasets_dir(datasets)``."""
    data = copy.deepcopy(data)
    placeholders = _resolve_datasets(data, datasets)
    cfg = _build(TrainConfig, data, "", file)
    cfg.source = file
    _check_values(cfg, file, placeholders, datasets)
    return cfg


def load_config(path: str | Path, datasets: str | os.PathLike[str] | None = None) -> TrainConfig:
    """Read a ``.toml`` (or ``.yml``/``.yaml`` with PyYAML installed) training config;
    ``{datasets}`` in its dataset folders is ``datasets_dir(datasets)``."""
    path = Path(path)
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config ({exc.strerror})") from exc
    if path.suffix.lower() in (".yml", ".yaml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ConfigError(f"{file}: YAML configs need PyYAML; install it or use TOML") from exc
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    else:
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a table of fields")
    return config_from_dict(data, file, datasets)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain nested dicts (tuples as lists), e.g. to store next to a checkpoint."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))
