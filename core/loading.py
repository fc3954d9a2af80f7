"""Reading, loading and saving checkpoints, treating every file as untrusted input.

``read_state_dict`` turns a file into a flat ``{key: Tensor}`` dict; ``load_model`` hands that to
spandrel (with our two architectures registered) and returns an ``ImageModelDescriptor`` for any
architecture spandrel knows; ``save_model`` writes a safetensors file with descriptive metadata,
which ``read_metadata`` reads back. The state dict alone is always enough to load a model: the
metadata is for people (the CLI, the app), never for detection.

Safety: pickles are only ever read with ``torch.load(weights_only=True)``, which refuses to import
anything outside torch's tensor allow-list. When such a load fails, the pickle's opcodes are
scanned (without executing them) to tell a malicious file (``UnsafeCheckpointError``, naming the
global it wanted) from a merely corrupt one (``CheckpointFormatError``).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import spandrel
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import (
    CheckpointFormatError,
    InconsistentCheckpointError,
    ModelNotFoundError,
    UnknownArchitectureError,
    UnsafeCheckpointError,
)

__all__ = [
    "PICKLE_EXTENSIONS",
    "SAFETENSORS_EXTENSIONS",
    "load_model",
    "model_from_state_dict",
    "read_metadata",
    "read_state_dict",
    "save_model",
    "unwrap_state_dict",
]

SAFETENSORS_EXTENSIONS = (".safetensors",)
PICKLE_EXTENSIONS = (".pth", ".pt", ".ckpt", ".bin")

# Wrappers that training frameworks put around the weights, in the order we prefer them:
# BasicSR / traiNNer keep both "params" and "params_ema" and the EMA weights are the better ones.
_WRAPPER_KEYS = (
    "params_ema",
    "params-ema",
    "params",
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "net_g",
    "netG",
    "generator",
)
# Prefixes left by DataParallel ("module."), ESRGAN-era trainers ("netG.") and torch.compile.
_COMMON_PREFIXES = ("module.", "netG.", "_orig_mod.")

# First bytes of files people rename to .pth by mistake, with a name for the error message.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"%PDF", "a PDF document"),
    (b"<", "an HTML/XML text file (a download page instead of the file?)"),
    (b"{", "a JSON text file"),
)

# Metadata keys written by ``save_model``; the rest of the header is free-form strings.
METADATA_KEYS = ("architecture", "variant", "scale", "package_version", "name", "description")


# --- reading -----------------------------------------------------------------------------------


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: Tensor}`` dict on the CPU.

    ``.safetensors`` is read with safetensors; ``.pth/.pt/.ckpt/.bin`` with
    ``torch.load(weights_only=True)``. Wrappers (``params_ema``, ``params``, ``state_dict``,
    ``model``, ``net``, ...) and ``module.``-style prefixes are removed, non-tensor entries (an
    iteration counter, optimizer settings) are dropped.

    Raises:
        ModelNotFoundError: the file does not exist.
        CheckpointFormatError: empty, truncated, corrupt, not a checkpoint, no tensors.
        UnsafeCheckpointError: a pickle that would import or run code.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointFormatError(path, "the file is empty (0 bytes)")
    with path.open("rb") as f:
        head = f.read(16)

    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_EXTENSIONS or _looks_like_safetensors(head, size):
        raw: Any = _read_safetensors(path)
    elif suffix in PICKLE_EXTENSIONS or head.startswith((b"PK\x03\x04", b"\x80")):
        raw = _read_pickle(path, head)
    else:
        raise CheckpointFormatError(
            path,
            f"unsupported file type {suffix or '(no extension)'!r}; expected one of "
            + ", ".join(SAFETENSORS_EXTENSIONS + PICKLE_EXTENSIONS),
        )
    return unwrap_state_dict(raw, path=path)


def unwrap_state_dict(
    obj: Any, *, path: str | os.PathLike[str] | None = None
) -> dict[str, torch.Tensor]:
    """Find the weights inside what a checkpoint file holds and return them as a flat dict.

    Handles the wrappers of BasicSR/traiNNer (``params_ema``/``params``), Lightning
    (``state_dict``), ESRGAN-era trainers and plain ``{"model": sd}`` dicts, nested up to a few
    levels, then strips a prefix shared by every key (``module.``, ``netG.``, ``_orig_mod.``).
    """
    for _ in range(4):  # wrappers nest at most a couple of levels in practice
        if not isinstance(obj, Mapping):
            break
        inner = next(
            (obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None
        )
        if inner is None and len(obj) == 1:
            only = next(iter(obj.values()))
            inner = only if isinstance(only, Mapping) else None
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(
            path, f"holds a {type(obj).__name__}, not a dict of weights (a state dict)"
        )
    state_dict = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state_dict:
        keys = ", ".join(map(str, list(obj)[:8]))
        raise CheckpointFormatError(path, f"contains no weight tensors (top-level keys: {keys})")
    for prefix in _COMMON_PREFIXES:
        if all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Return the string metadata of a safetensors file (``{}`` for pickles or none stored).

    Only the JSON header is read, so this is cheap even for large files. Keys written by
    ``save_model``: architecture, variant, scale, package_version, and name/description when given.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such checkpoint file")
    with path.open("rb") as f:
        head = f.read(16)
    if path.suffix.lower() not in SAFETENSORS_EXTENSIONS and not _looks_like_safetensors(
        head, path.stat().st_size
    ):
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except SafetensorError as e:
        raise CheckpointFormatError(path, f"not a valid safetensors file ({e})") from e


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # A safetensors file starts with the little-endian u64 length of a JSON header opening "{".
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    what = _sniff_foreign(path)
    if what is not None:
        raise CheckpointFormatError(path, f"is {what}, not a safetensors checkpoint")
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as e:
        raise CheckpointFormatError(
            path, f"not a valid safetensors file: empty, truncated or corrupt ({e})"
        ) from e


def _sniff_foreign(path: Path) -> str | None:
    with path.open("rb") as f:
        head = f.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    return None


def _read_pickle(path: Path, head: bytes) -> Any:
    what = _sniff_foreign(path)
    if what is not None:
        raise CheckpointFormatError(path, f"is {what}, not a PyTorch checkpoint")
    if head.startswith(b"PK\x03\x04"):
        _check_zip(path)
    elif not head.startswith(b"\x80"):
        raise CheckpointFormatError(
            path, "is neither a PyTorch checkpoint (zip or pickle) nor a safetensors file"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        forbidden = _forbidden_globals(path)
        if forbidden:
            raise UnsafeCheckpointError(
                path,
                "refused to load: the pickle would import "
                + ", ".join(sorted(forbidden)[:5])
                + ", which can run arbitrary code. Convert trusted files to .safetensors.",
            ) from e
        raise CheckpointFormatError(path, f"corrupt or truncated pickle ({_first_line(e)})") from e
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as e:
        raise CheckpointFormatError(
            path, f"corrupt or truncated checkpoint ({_first_line(e)})"
        ) from e


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointFormatError(
            path, f"truncated or corrupt zip-format checkpoint ({_first_line(e)})"
        ) from e
    if any(n.split("/", 1)[-1].startswith("code/") for n in names):
        raise CheckpointFormatError(
            path, "is a TorchScript program, not a state dict; TorchScript is not supported"
        )
    if not any(n.endswith("data.pkl") for n in names):
        raise CheckpointFormatError(path, "is a zip archive but not a PyTorch checkpoint")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


# --- static pickle scan --------------------------------------------------------------------------


def _allowed_globals() -> set[str]:
    """The globals torch's weights-only unpickler accepts (used only to explain a refusal)."""
    allowed = {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch.serialization._get_layout",
    }
    try:  # private, but the authoritative list; the fallback above covers plain state dicts
        from torch import _weights_only_unpickler as wou

        allowed.update(wou._get_allowed_globals())
    except (ImportError, AttributeError):
        pass
    allowed.update(f"torch.{n}" for n in dir(torch) if n.endswith("Storage"))
    return allowed


def _forbidden_globals(path: Path) -> set[str]:
    """Globals a pickle names that are outside the allow-list; never executes anything."""
    allowed = _allowed_globals()
    found: set[str] = set()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    if name.endswith(".pkl"):
                        found |= _pickle_globals(io.BytesIO(z.read(name)), max_pickles=1)
        else:
            with path.open("rb") as f:
                # legacy format: magic, protocol, sys info, the data, then raw storages
                found |= _pickle_globals(f, max_pickles=5)
    except (zipfile.BadZipFile, OSError):
        pass
    return {g for g in found if g not in allowed}


def _pickle_globals(stream: IO[bytes], max_pickles: int) -> set[str]:
    found: set[str] = set()
    for _ in range(max_pickles):
        try:
            found |= _globals_of_one_pickle(stream)
        except Exception:  # noqa: BLE001 - stop at the first non-pickle bytes (storages, damage)
            break
    return found


_STRING_OPS = frozenset(
    (
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "STRING",
        "SHORT_BINSTRING",
        "BINSTRING",
    )
)


def _globals_of_one_pickle(stream: IO[bytes]) -> set[str]:
    found: set[str] = set()
    stack: list[Any] = []  # recent string pushes, enough to resolve STACK_GLOBAL
    memo: dict[int, Any] = {}
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name == "GLOBAL" or name == "INST":
            found.add(str(arg).replace(" ", "."))
            stack.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (stack[-2], stack[-1]) if len(stack) >= 2 else (None, None)
            if isinstance(module, str) and isinstance(attr, str):
                found.add(f"{module}.{attr}")
            else:
                found.add("<a global the scan could not resolve>")
            stack.append(None)
        elif name in _STRING_OPS:
            stack.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1] if stack else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(arg)))
        elif name == "STOP":
            break
        else:
            stack.append(None)
        del stack[:-4]
    else:
        raise EOFError("pickle without STOP")
    return found


# --- loading -------------------------------------------------------------------------------------


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> spandrel.ImageModelDescriptor:
    """Load any image-to-image model spandrel knows (ours included) from a checkpoint file, or
    a model shipped in ``weights/`` by its name (``load_model("nexus-x4")``).

    Returns the descriptor in eval mode on ``device`` (and in ``dtype`` when given; spandrel
    raises ``UnsupportedDtypeError`` for fp16/bf16 on a model that does not support it).

    Raises:
        ModelNotFoundError, CheckpointFormatError, UnsafeCheckpointError: see ``read_state_dict``.
        UnknownArchitectureError: no registered architecture recognises the state dict, or it is
            not an image-to-image model (e.g. an inpainting model that needs a mask).
        InconsistentCheckpointError: an architecture recognised it but its shapes contradict
            each other (a damaged or hand-edited file).
    """
    from .detection import register_with_spandrel
    from .zoo import resolve_model

    register_with_spandrel()
    if not Path(path).expanduser().is_file():
        path = resolve_model(path)  # a shipped model's name; else an error listing them
    return model_from_state_dict(read_state_dict(path), path=path, device=device, dtype=dtype)


def model_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> spandrel.ImageModelDescriptor:
    """``load_model`` for a state dict already read (``read_state_dict``): what a cluster worker
    does with the state dict the job sent it. ``path`` only names the file in errors."""
    descriptor = descriptor_from_state_dict(state_dict, path=path)
    descriptor.to(torch.device(device))
    if dtype is not None:
        descriptor.to(dtype)
    return descriptor.eval()


def descriptor_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    path: str | os.PathLike[str] | None = None,
    registry: spandrel.ArchRegistry | None = None,
) -> spandrel.ImageModelDescriptor:
    """Detect and build the model of a state dict, turning spandrel's failures into ours.

    Mirrors ``ArchRegistry.load`` (first detector in detection order wins) so that the error can
    name the architecture that recognised the file. Without ``registry``, our architectures are
    registered with spandrel's main registry first.
    """
    from .detection import declare_window_grid, register_with_spandrel

    if registry is None:
        register_with_spandrel()
        registry = spandrel.MAIN_REGISTRY
    sd = spandrel.canonicalize_state_dict(dict(state_dict))
    support = next((a for a in registry.architectures("detection") if a.detect(sd)), None)
    if support is None:
        raise UnknownArchitectureError(
            path,
            f"no known architecture matches this state dict ({len(sd)} tensors, first keys: "
            + ", ".join(list(sd)[:4])
            + ")",
        )
    arch_id = support.architecture.id
    try:
        descriptor = support.architecture.load(sd)
    except InconsistentCheckpointError as e:
        raise InconsistentCheckpointError(path, e.reason) from e
    except (RuntimeError, KeyError, ValueError, IndexError, AssertionError, TypeError) as e:
        raise InconsistentCheckpointError(
            path, f"looks like {arch_id} but its tensors do not fit together: {_first_line(e)}"
        ) from e
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UnknownArchitectureError(
            path,
            f"is a {arch_id} {descriptor.purpose} model, which needs a mask; "
            "only image-to-image models are supported",
        )
    return declare_window_grid(descriptor)


# --- saving --------------------------------------------------------------------------------------


def save_model(
    model: torch.nn.Module | spandrel.ModelDescriptor,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    description: str | None = None,
    dtype: torch.dtype | None = None,
    extra_metadata: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write ``model``'s weights to a safetensors file with descriptive metadata.

    The state dict is detected exactly as a loader will detect it, so a model that would not
    load again is refused before anything is written (``UnknownArchitectureError`` /
    ``InconsistentCheckpointError``). ``dtype`` (e.g. ``torch.float16``) casts floating-point
    tensors to halve the file. The file is written atomically (temp file + rename).

    Returns the metadata written: architecture, variant, scale, package_version, and
    name/description when given, plus ``extra_metadata``.
    """
    from .. import __version__
    from .detection import register_with_spandrel, variant_of

    register_with_spandrel()
    path = Path(path)
    module = model.model if isinstance(model, spandrel.ModelBase) else model
    tensors = _tensors_for_saving(module.state_dict(), dtype)

    # Detect from the very tensors being written: the metadata then cannot disagree with them.
    descriptor = descriptor_from_state_dict(tensors, path=path)
    metadata = {
        "architecture": str(descriptor.architecture.id),
        "variant": variant_of(descriptor),
        "scale": str(descriptor.scale),
        "package_version": __version__,
    }
    if name is not None:
        metadata["name"] = name
    if description is not None:
        metadata["description"] = description
    for key, value in (extra_metadata or {}).items():
        metadata.setdefault(str(key), str(value))
    metadata["format"] = "pt"  # the convention of safetensors files written from PyTorch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        # mkstemp makes the file private (0600); a saved model gets the permissions a plain
        # open() would give it, as the umask says
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return metadata


def _tensors_for_saving(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype | None
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in state_dict.items():
        t = tensor.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        # safetensors refuses tensors that share memory (tied weights, views): copy those.
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        if ptr in seen or not t.is_contiguous():
            t = t.contiguous().clone()
        elif ptr != -1:
            seen.add(ptr)
        out[key] = t
    return out


def describe_metadata(metadata: Mapping[str, str]) -> str:
    """One line for a UI: ``"NEXUS nexus_tiny x4 - My model (nexus-upscaler 0.1.0)"``."""
    parts = [metadata.get("architecture", ""), metadata.get("variant", "")]
    if metadata.get("scale"):
        parts.append(f"x{metadata['scale']}")
    text = " ".join(p for p in parts if p)
    if metadata.get("name"):
        text = f"{text} - {metadata['name']}" if text else metadata["name"]
    if metadata.get("package_version"):
        text += f" (nexus-upscaler {metadata['package_version']})"
    return text
