"""Batch upscaling on a Ray cluster (``nexus-upscale --cluster``).

The job is the command line's: the inputs ``core.inputs`` finds, the outputs ``core.outputs``
plans (with its skip/overwrite rules), and ``core.pipeline.upscale_file`` on each image, so the
results are the same file for file. Only the loop moves: the planned (input, output) pairs become
a Ray Data dataset of one row per image, and ``map_batches`` hands the rows to a fixed pool of
actors, each holding the model loaded once (one GPU each where the cluster has GPUs, else CPU
cores). A worker reads its input and writes its output itself (atomically, as everywhere), so no
image travels through the driver or sits in memory beyond the one a worker is on; every node must
therefore see the same paths (one machine, or a shared filesystem).

- A bad file fails alone: its worker returns the error as a row, as the CLI's loop reports it.
- A worker that dies (its process killed, its node lost) is restarted by Ray and the images it
  held are done again (actor ``max_restarts`` / ``max_task_retries``); an image its worker dies on
  ``MAX_ATTEMPTS`` times fails alone too (Ray Data's ``max_errored_blocks`` lets the rest go on).
- Ray is imported here only, and only when a job starts: ``import nexus_upscaler`` never imports
  it (tests/test_layering.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ClusterError, NexusError, OptionError, one_line
from .imageio import DEFAULT_MAX_PIXELS, temporary_files

if TYPE_CHECKING:
    import torch

    from .options import UpscaleOptions
    from .outputs import PlannedOutput

__all__ = [
    "INSTALL_HINT",
    "MAX_ATTEMPTS",
    "ClusterInfo",
    "ImageResult",
    "WorkerPlan",
    "connect",
    "import_ray",
    "plan_workers",
    "upscale_on_cluster",
]

INSTALL_HINT = 'the cluster extra: pip install ".[cluster]" in the nexus-upscaler clone, or pip install "ray[data]"'
"""What to install where Ray is missing (the package is installed from a clone or a wheel)."""

MAX_ATTEMPTS = 4
"""Times an image is tried when its worker dies on it (a file that kills its worker every time,
e.g. by exhausting the node's memory, must not hold the job forever)."""

DIED_TOO_OFTEN = (
    f"its worker died {MAX_ATTEMPTS} times while upscaling it (out of memory on that node? "
    "Ray's logs say why)"
)


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or ClusterError saying which extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra installs both; a bare ray lacks pyarrow
    except ImportError as exc:
        raise ClusterError(
            f"running on a Ray cluster needs Ray Data, which is not installed here "
            f"({one_line(exc)}); install {INSTALL_HINT}"
        ) from exc
    return ray


# --- the cluster and its workers ---------------------------------------------------------------


@dataclass(frozen=True)
class ClusterInfo:
    """The cluster a job runs on: where it is and what it has (all nodes together)."""

    address: str
    """What was connected to: an address, or "local" for a cluster started here."""
    nodes: int
    cpus: float
    gpus: float

    def describe(self) -> str:
        gpus = f", {self.gpus:g} GPU{'s' * (self.gpus != 1)}" if self.gpus else ""
        nodes = f"{self.nodes} node{'s' * (self.nodes != 1)}"
        return f"Ray cluster {self.address}: {nodes}, {self.cpus:g} CPU cores{gpus}"


@contextlib.contextmanager
def connect(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[ClusterInfo]:
    """Join the Ray cluster at ``address`` (else the one ``RAY_ADDRESS`` names, else one started
    on this machine with ``ray start``, else a new local one with ``num_cpus`` cores: Ray's own
    order) for the length of the block. A Ray session this process already has is used as it
    is and left running; one started here is shut down on the way out.

    Raises ClusterError when Ray is missing or the cluster cannot be reached.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        try:
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,  # a worker's failures come back as rows, worded
                logging_level=logging.WARNING,
            )
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ...
            where = f"at {address}" if address else "on this machine"
            hint = ""
            if address and not os.environ.get("RAY_AUTH_MODE"):
                hint = (
                    " (a cluster with token authentication, Ray's default, also needs "
                    "RAY_AUTH_MODE=token here and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
                )
            raise ClusterError(
                f"cannot start or reach a Ray cluster {where}: {one_line(exc)}{hint}"
            ) from exc
        started = True
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        context = ray.get_runtime_context()
        gcs = getattr(context, "gcs_address", None) or "local"
        yield ClusterInfo(
            address=str(address or gcs),
            nodes=nodes,
            cpus=float(resources.get("CPU", 0)),
            gpus=float(resources.get("GPU", 0)),
        )
    finally:
        if started:
            ray.shutdown()


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers (actors, one model each) and what each one holds."""

    count: int
    cpus: float
    """CPU cores per worker (fractional when workers share cores)."""
    gpus: float
    """GPUs per worker: 0 for CPU workers, fractional when workers share a GPU."""

    @property
    def threads(self) -> int:
        """Torch threads of a worker: its cores, at least one."""
        return max(1, int(self.cpus))

    def describe(self) -> str:
        each = (
            f"{self.gpus:g} GPU" if self.gpus else f"{self.cpus:g} CPU core{'s' * (self.cpus != 1)}"
        )
        return f"{self.count} worker{'s' * (self.count != 1)}, {each} each"


def plan_workers(
    cluster: ClusterInfo,
    device: str = "auto",
    workers: int | None = None,
    cpus_per_worker: float | None = None,
) -> WorkerPlan:
    """The worker pool for ``cluster``: one worker per GPU when ``device`` ("auto" or "cuda",
    as asked, not resolved here) can use the GPUs, else one per CPU core. ``workers`` overrides
    the count; GPUs or cores are then shared out among them (``cpus_per_worker`` sets CPU
    workers' cores).

    Raises OptionError (field "device") for a CUDA device on a cluster without GPUs, ClusterError
    for ``workers`` < 1.
    """
    if workers is not None and workers < 1:
        raise OptionError("workers", workers, "must be 1 or more")
    if cpus_per_worker is not None and not cpus_per_worker > 0:
        raise OptionError("cpus_per_worker", cpus_per_worker, "must be positive")
    cpus = max(cluster.cpus, 1.0)
    if device.startswith("cuda") and cluster.gpus <= 0:
        raise OptionError("device", device, "must be auto or cpu: the cluster has no GPU")
    if device.startswith("cuda") or (device == "auto" and cluster.gpus >= 1):
        count = workers or max(1, int(cluster.gpus))
        # a core each for decoding and encoding, fewer when the GPUs outnumber the cores
        return WorkerPlan(count, min(1.0, cpus / count), min(1.0, cluster.gpus / count))
    count = workers or max(1, int(cpus))
    if cpus_per_worker is None:
        cpus_per_worker = float(math.floor(cpus / count)) if count <= cpus else cpus / count
    return WorkerPlan(count, cpus_per_worker, 0.0)


# --- the job -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageResult:
    """What became of one planned image. ``index``: its place in the plans given."""

    index: int
    error: str | None = None
    """One line on why it failed (naming the worker's absolute paths); None when written."""
    notes: tuple[str, ...] = ()
    worker: str = ""
    """``host:pid`` of the worker that did it."""


class _Upscaler:
    """One worker: the model built once from the state dict the job sent, then one image per
    call through the same ``upscale_file`` as the command line."""

    def __init__(
        self,
        state_dict: Mapping[str, torch.Tensor],
        model_name: str,
        options: UpscaleOptions,
        write: dict[str, Any],
        threads: int,
    ) -> None:
        import socket

        import torch

        from .devices import resolve_device
        from .loading import model_from_state_dict

        torch.set_num_threads(threads)
        # Ray hands each GPU worker its own GPU(s), seen here as cuda:0 onwards
        device = resolve_device("cuda" if options.device.startswith("cuda") else options.device)
        self.options = replace(options, device=device)
        self.descriptor = model_from_state_dict(state_dict, path=model_name, device=device)
        self.write = write
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from .inputs import written_by_us
        from .pipeline import upscale_file

        errors, notes = [], []
        for source, target in zip(batch["input"], batch["output"]):
            write = self.write
            if not write["overwrite"] and os.path.exists(target) and written_by_us(target):
                # Planned as absent (a to-do output that may not be replaced), it has our mark
                # now: an earlier attempt at this very image wrote it, on a worker that died
                # after its rename and before its result came back. Write it again.
                write = {**write, "overwrite": True}
            try:
                result = upscale_file(
                    self.descriptor, str(source), str(target), self.options, **write
                )
            except Exception as exc:  # noqa: BLE001 - a bad file fails alone, as in the CLI
                errors.append(one_line(exc))
                notes.append("")
            else:
                errors.append("")
                notes.append("\n".join(result.notes))
        return {
            "index": np.asarray(batch["index"]),
            "error": np.asarray(errors, dtype=object),
            "notes": np.asarray(notes, dtype=object),
            "worker": np.asarray([self.worker] * len(errors), dtype=object),
        }


def upscale_on_cluster(
    plans: Sequence[PlannedOutput],
    state_dict: Mapping[str, torch.Tensor],
    options: UpscaleOptions,
    workers: WorkerPlan,
    *,
    model_name: str = "",
    format: str | None = None,
    quality: int = 95,
    compress_level: int | None = None,
    overwrite: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[ImageResult]:
    """Upscale the plans to do (``plan.to_do``) on the connected cluster (see ``connect``),
    yielding each image's result as it comes in (in no set order); an image whose worker died
    ``MAX_ATTEMPTS`` times comes last, failed. The keyword arguments are ``upscale_file``'s.

    ``state_dict`` is the model's (``read_state_dict``), sent once to every worker; ``options``
    keeps the device as asked ("auto"), which each worker resolves on its node.

    Raises ClusterError when the job cannot go on (the workers cannot start: the model does not
    load there, a GPU is missing); the images yielded until then are done. Closing the iterator
    early stops the job. Temporary files of writes that a killed worker left are removed at the
    end.
    """
    ray = import_ray()
    todo = [(i, p) for i, p in enumerate(plans) if p.to_do]
    if not todo:
        return
    items = [
        {"index": i, "input": str(p.input.path.absolute()), "output": str(p.output.absolute())}
        for i, p in todo
    ]
    write = dict(
        format=format,
        quality=quality,
        compress_level=compress_level,
        overwrite=overwrite,
        max_pixels=max_pixels,
    )
    started = time.time()
    pending = {i for i, _ in todo}
    with _quiet_ray_data(ray):
        # one image per block, so that an image lost with its worker is lost alone
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        with warnings.catch_warnings():
            # max_restarts / max_task_retries are Ray remote arguments, which Ray Data means to
            # take as named parameters some day; until then they pass as keywords
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            dataset = dataset.map_batches(
                _Upscaler,
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=workers.count),
                num_cpus=workers.cpus,
                num_gpus=workers.gpus or None,
                fn_constructor_kwargs={
                    "state_dict": dict(state_dict),
                    "model_name": model_name,
                    "options": options,
                    "write": write,
                    "threads": workers.threads,
                },
                max_restarts=-1,
                max_task_retries=MAX_ATTEMPTS - 1,
            )
        rows = dataset.iter_rows()
        try:
            for row in rows:
                index = int(row["index"])
                pending.discard(index)
                notes = tuple(n for n in str(row["notes"] or "").split("\n") if n)
                yield ImageResult(index, str(row["error"]) or None, notes, str(row["worker"]))
        except Exception as exc:
            raise ClusterError(f"the cluster job stopped: {_cause(exc)}") from exc
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
            _remove_leftovers([p.output for _, p in todo], started)
    for index in sorted(pending):
        yield ImageResult(index, DIED_TOO_OFTEN)


@contextlib.contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[None]:
    """Ray Data's settings for one job, restored after: no progress bars or execution logs of
    its own (the job has its progress and summary; Ray's log files keep everything), and failed
    blocks tolerated."""
    context = ray.data.DataContext.get_current()
    saved = {
        name: getattr(context, name)
        for name in ("enable_progress_bars", "print_on_execution_start", "max_errored_blocks")
        if hasattr(context, name)
    }
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.max_errored_blocks = -1  # a lost image is ours to report, and the rest goes on
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        logger.setLevel(level)


def _cause(exc: BaseException) -> str:
    """What stopped a job, from the exceptions Ray wraps around it: ours (a model that does not
    load on a worker), a worker without the package, else Ray's own words."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and all(seen is not e for e in chain):
        chain.append(seen)
        seen = getattr(seen, "cause", None) or seen.__cause__
    for error in reversed(chain):
        if isinstance(error, NexusError):  # Ray's wrapper of a worker's error subclasses it
            return one_line(error)
    text = "\n".join(str(e) for e in chain)
    missing = re.search(r"No module named '([^']+)'", text)
    if missing:
        return (
            f"the workers cannot import {missing.group(1)}: every node of the cluster needs "
            f"nexus-upscaler, the same version as here, and {INSTALL_HINT}"
        )
    lines = [line.strip() for line in str(chain[0]).splitlines() if line.strip()]
    return f"{type(chain[0]).__name__}: {lines[-1]}" if lines else one_line(chain[0])


def _remove_leftovers(outputs: Sequence[Path], since: float) -> None:
    for output in outputs:
        for tmp in temporary_files(output.absolute()):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime >= since - 1:
                    tmp.unlink()
