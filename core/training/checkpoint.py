"""Checkpoints of a training run: safetensors weights and the resumable training state.

Layout under the run's output folder::

    models/net_g_<step>.safetensors        raw weights
    models/net_g_ema_<step>.safetensors    EMA weights (the ones to ship)
    models/net_g[_ema]_latest.safetensors  copies of the newest
    training_state/<step>.state            optimizer, scheduler, EMA, step, RNG (torch.save)

The training state holds only tensors and plain containers, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..errors import CheckpointError

__all__ = ["save_weights", "save_state", "load_state", "latest_state", "STATE_FORMAT"]

STATE_FORMAT = "nexus-train-state/1"


def save_weights(model: nn.Module, path: Path, name: str, step: int) -> None:
    """Write ``model``'s weights as safetensors with metadata (via ``core.loading.save_model``).

    ``save_model`` refuses a state dict its detectors cannot read back; training must not die
    for that after hours, so the weights are then written without metadata and a warning says so.
    """
    from ..errors import InconsistentCheckpointError, UnknownArchitectureError
    from ..loading import save_model

    try:
        save_model(
            model,
            path,
            name=name,
            description=f"trained with nexus-train for {step} iterations",
            extra_metadata={"iterations": str(step)},
        )
    except (UnknownArchitectureError, InconsistentCheckpointError) as exc:
        warnings.warn(f"{path}: saved without detection metadata ({exc})", stacklevel=2)
        path.parent.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(sd, str(path), metadata={"format": "pt", "name": name})


def copy_latest(path: Path, latest: Path) -> None:
    tmp = latest.with_suffix(".tmp")
    shutil.copyfile(path, tmp)
    os.replace(tmp, latest)


def save_state(state: dict[str, Any], folder: Path, step: int, keep: int) -> Path:
    """Atomically write ``<folder>/<step>.state`` and delete all but the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{step}.state"
    fd, tmp = tempfile.mkstemp(prefix=f".{step}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        torch.save({"format": STATE_FORMAT, **state}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    states = sorted(folder.glob("*.state"), key=lambda p: int(p.stem))
    for old in states[: max(0, len(states) - max(1, keep))]:
        old.unlink()
    return path


def latest_state(folder: Path) -> Path | None:
    """The ``<step>.state`` file with the largest step in ``folder``, or None."""
    states = [p for p in folder.glob("*.state") if p.stem.isdigit()]
    return max(states, key=lambda p: int(p.stem)) if states else None


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training state (weights-only unpickling; refuses anything else)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(path, "training state not found") from exc
    except Exception as exc:
        raise CheckpointError(path, f"not a readable training state ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(path, f"not a nexus-train training state ({STATE_FORMAT})")
    return state
