"""The devices a user can name, in the words every face uses, and the one "auto" picks."""

from __future__ import annotations

import re

from .errors import OptionError

__all__ = ["DEVICE_FORMS", "available_devices", "parse_device", "resolve_device"]

DEVICE_FORMS = "auto, cpu, cuda, cuda:N (the N-th GPU), mps"
"""How a device may be written, for messages."""

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def parse_device(name: str) -> str | None:
    """``name`` in its normal spelling ("CUDA:0" -> "cuda:0"), or None when it names no device
    we run on."""
    text = name.strip().lower()
    return text if _DEVICE.match(text) else None


def available_devices() -> list[tuple[str, str]]:
    """(value, label) of each choice on this machine: automatic, the CPU, each CUDA GPU torch
    sees, Apple's GPU (MPS) where there is one."""
    import torch

    devices = [("auto", "Automatic (GPU if available)"), ("cpu", "CPU")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            devices.append((f"cuda:{i}", f"GPU {i}: {torch.cuda.get_device_name(i)}"))
    if _mps_available():
        devices.append(("mps", "Apple GPU (MPS)"))
    return devices


def resolve_device(device: str) -> str:
    """The device to run on: "auto" is the first CUDA GPU, else Apple's MPS, else the CPU.

    Raises OptionError (field "device") for a name that is no device, or a device this machine
    does not have, listing the choices there are.
    """
    name = parse_device(device) if isinstance(device, str) else None
    if name is None:
        raise OptionError("device", device, f"must be one of {DEVICE_FORMS}")
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise OptionError("device", device, _available_here())
    if name == "mps" and not _mps_available():
        raise OptionError("device", device, _available_here())
    return name


def _available_here() -> str:
    return "must be a device this machine has: " + ", ".join(v for v, _ in available_devices())


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()
