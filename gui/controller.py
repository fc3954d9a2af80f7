"""The app's state and what happens when the user acts; no widgets here.

The controller owns the queue, the user's choices, the loaded model and the running batch.
The window only lays out widgets, forwards the user's actions here and shows the signals.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, QMimeData, QObject, QThreadPool, Signal
from PySide6.QtGui import QImage

from .queue_model import QueueModel, Status
from .settings import AppSettings, Choices
from .worker import BatchWorker, CompareTask, Job, ModelTask, ThumbnailTask


@dataclass(frozen=True)
class ModelInfo:
    """What the model picker shows about the loaded model."""

    name: str
    architecture: str
    scale: int
    parameters: int

    def summary(self) -> str:
        return f"{self.architecture} · {self.scale}× · {format_count(self.parameters)} parameters"


def format_count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


def format_eta(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def available_devices() -> list[tuple[str, str]]:
    """(value, label): automatic, the CPU and each CUDA GPU torch can see."""
    import torch

    devices = [("auto", "Automatic (GPU if available)"), ("cpu", "CPU")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            devices.append((f"cuda:{i}", f"GPU {i}: {torch.cuda.get_device_name(i)}"))
    return devices


def shipped_models() -> list[Any]:
    """The models in ``weights/`` (``core.zoo.ShippedModel``)."""
    from ..core.zoo import list_shipped_models

    return list(list_shipped_models())


class Controller(QObject):
    """State of one window. Signals carry everything the window shows."""

    model_changed = Signal(object)  # ModelInfo | None
    model_loading = Signal(bool)  # True when a model starts loading, False when that ends
    running_changed = Signal(bool)
    total_progress = Signal(int, str)  # percent of the batch, ETA text
    message = Signal(str)  # a one-line status for the status bar
    compare_ready = Signal(int, QImage, QImage)  # key, before, after
    item_finished = Signal(int)  # key of a row that ended (done, failed or cancelled)
    batch_finished = Signal(bool)  # True when cancelled

    def __init__(self, settings: AppSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.choices: Choices = settings.load_choices()
        self.queue = QueueModel(self)
        self.paste_dir = Path.home() / "Pictures" / "NEXUS Upscaler" / "pasted"
        self._descriptor: Any = None
        self.model_info: ModelInfo | None = None
        self._batch_pool = QThreadPool(self)
        self._batch_pool.setMaxThreadCount(1)
        self._aux_pool = QThreadPool(self)  # thumbnails and comparison images
        self._aux_pool.setMaxThreadCount(1)
        self._model_pool = QThreadPool(self)  # one load at a time, the newest request wins
        self._model_pool.setMaxThreadCount(1)
        self._model_request = 0
        self._loading_spec: str | None = None
        self._worker: BatchWorker | None = None
        self._token: Any = None
        self._batch_keys: list[int] = []
        self._batch_ended = 0
        self._batch_started_at = 0.0
        self._current_fraction = 0.0

    # --- queue ---------------------------------------------------------------------------------

    def add_paths(self, paths: list[str | Path]) -> int:
        """Queue files and folders (folders recursively); returns how many rows were added."""
        new = self.queue.add_paths([Path(p) for p in paths])
        if new:
            task = ThumbnailTask([(item.key, item.path) for item in new])
            task.signals.thumbnail.connect(self._on_thumbnail)
            self._start_aux(task)
            self.message.emit(f"Added {len(new)} image{'s' if len(new) != 1 else ''}.")
        return len(new)

    def add_mime(self, mime: QMimeData) -> int:
        """Queue what a drop or paste carries: local file URLs, or raw image data."""
        paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
        if paths:
            return self.add_paths(paths)
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                return self.add_image(image)
        return 0

    def add_image(self, image: QImage) -> int:
        """Save pasted image data as a PNG in ``paste_dir`` and queue it."""
        self.paste_dir.mkdir(parents=True, exist_ok=True)
        stamp = QDateTime.currentDateTime().toString("yyyyMMdd-HHmmss-zzz")
        path = self.paste_dir / f"pasted-{stamp}.png"
        if not image.save(str(path), "PNG"):
            self.message.emit(f"Could not save the pasted image to {path}.")
            return 0
        return self.add_paths([path])

    def remove_rows(self, rows: list[int]) -> None:
        if self.running:
            self.message.emit("Cannot remove images while a batch runs; cancel it first.")
            return
        self.queue.remove_rows(rows)

    def _on_thumbnail(self, key: int, image: QImage) -> None:
        self.queue.update(key, thumbnail=image)

    def _start_aux(self, task: Any) -> None:
        # The pool owns auto-deleting runnables (and so their signal objects) until they end.
        self._aux_pool.start(task)

    # --- model ---------------------------------------------------------------------------------

    @property
    def loading(self) -> bool:
        return self._loading_spec is not None

    def load_model(self, spec: str) -> None:
        """Load a shipped model (by name) or any checkpoint spandrel reads (by path), in the
        background. ``model_changed`` follows on success, a message on failure, and
        ``model_loading(False)`` either way; a later request supersedes this one. The choice is
        remembered only when loading succeeds.
        """
        self._model_request += 1
        self._loading_spec = spec
        task = ModelTask(self._model_request, spec)
        task.signals.loaded.connect(self._on_model_loaded)
        task.signals.failed.connect(self._on_model_failed)
        self.model_loading.emit(True)
        self.message.emit(f"Loading {Path(spec).name}...")
        self._model_pool.start(task)

    def _on_model_loaded(self, request: int, path: Path, descriptor: Any) -> None:
        if request != self._model_request:
            return  # the user has asked for another model since
        spec, self._loading_spec = self._loading_spec or str(path), None
        info = ModelInfo(
            name=spec if spec != str(path) else path.name,
            architecture=descriptor.architecture.name,
            scale=int(descriptor.scale),
            parameters=sum(p.numel() for p in descriptor.model.parameters()),
        )
        self._descriptor, self.model_info = descriptor, info
        self.choices.remember_model(spec)
        self.save_choices()
        self._update_scale()
        self.model_changed.emit(info)
        self.model_loading.emit(False)
        self.message.emit(f"Loaded {info.name}: {info.summary()}.")

    def _on_model_failed(self, request: int, reason: str) -> None:
        if request != self._model_request:
            return
        spec, self._loading_spec = self._loading_spec, None
        self.model_loading.emit(False)
        self.message.emit(f"Could not load model {spec}: {reason}")

    def _update_scale(self) -> None:
        scale = self.choices.target_scale or (self.model_info.scale if self.model_info else None)
        self.queue.set_scale(scale)

    # --- choices -------------------------------------------------------------------------------

    def set_choices(self, **changes: Any) -> None:
        """Update the user's choices (from the side panel) and persist them."""
        for name, value in changes.items():
            if not hasattr(self.choices, name):
                raise AttributeError(f"unknown choice {name!r}")
            setattr(self.choices, name, value)
        self.save_choices()
        if "target_scale" in changes:
            self._update_scale()

    def save_choices(self) -> None:
        self.settings.save_choices(self.choices)

    def choose_preset(self, name: str) -> None:
        """Make ``name`` current and load its tile, overlap, precision and TTA into the panel.

        The device stays the user's: it describes the machine, not the quality trade-off.
        """
        from ..core.errors import PresetError
        from ..core.presets import preset_settings

        try:
            settings = preset_settings(name)
        except PresetError as exc:
            self.message.emit(str(exc))
            return
        self.set_choices(
            preset=name,
            tile=settings.get("tile") or 0,
            overlap=settings.get("overlap", self.choices.overlap),
            precision=settings.get("precision", self.choices.precision),
            tta=bool(settings.get("tta", False)),
        )

    def options(self) -> Any:
        """The engine's ``UpscaleOptions``: the chosen preset with the panel's values on top."""
        from ..core.errors import PresetError
        from ..core.presets import get_preset

        c = self.choices
        fields = {
            "tile": c.tile or None,
            "overlap": c.overlap,
            "precision": c.precision,
            "tta": c.tta,
            "device": c.device,
            "target_scale": c.target_scale or None,
            "alpha_mode": c.alpha_mode,
        }
        try:
            return get_preset(c.preset or None, **fields)
        except PresetError as exc:
            # A broken user preset must not block the batch: its base is the default preset.
            self.message.emit(f"{exc}; using the default preset with the panel's options.")
            return get_preset(None, **fields)

    # --- output planning -----------------------------------------------------------------------

    def plan_outputs(self, inputs: list[Path]) -> list[Path]:
        """One output path per input following the output choices.

        Names come from the core's ``plan_output_path`` (stem + suffix + the format's
        extension), as the CLI names them. An output never lands on a queued input nor on
        another output of the same batch; with the "rename" policy it also avoids existing
        files (``name_upscaled-2.png``, ...).
        """
        from ..core.pipeline import plan_output_path

        c = self.choices
        queued = {item.path for item in self.queue.items()}
        claimed: set[Path] = set()
        outputs = []
        for path in inputs:
            folder = Path(c.output_dir).expanduser() if c.output_dir else path.parent / "upscaled"
            # a trailing separator: always a folder, even one named like a file ("out.v2")
            planned = plan_output_path(path, f"{folder}{os.sep}", c.suffix, c.format)
            candidate, n = planned, 1
            while (
                candidate.resolve() in queued
                or candidate in claimed
                or (c.overwrite == "rename" and candidate.exists())
            ):
                n += 1
                candidate = planned.with_name(f"{planned.stem}-{n}{planned.suffix}")
            claimed.add(candidate)
            outputs.append(candidate)
        return outputs

    # --- the batch -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self) -> bool:
        """Upscale every queued image that is not done yet. Returns False if nothing started."""
        if self.running:
            return False
        if self.loading:
            self.message.emit("The model is still loading; start again when it is ready.")
            return False
        if self._descriptor is None:
            self.message.emit("Choose a model first (the model picker, or Open model...).")
            return False
        todo = [item for item in self.queue.items() if item.status is not Status.DONE]
        if not todo:
            self.message.emit("Nothing to do: add images first.")
            return False
        from ..core.engine import CancelToken

        options = self.options()
        outputs = self.plan_outputs([item.path for item in todo])
        jobs = [Job(item.key, item.path, out) for item, out in zip(todo, outputs)]
        for item in todo:
            self.queue.update(
                item.key, status=Status.WAITING, percent=0, error="", output_path=None
            )
        self._token = CancelToken()
        self._worker = BatchWorker(
            self._descriptor,
            jobs,
            options,
            format=self.choices.format,
            quality=self.choices.quality,
            overwrite=self.choices.overwrite == "overwrite",
            cancel=self._token,
        )
        signals = self._worker.signals
        signals.item_started.connect(self._on_started)
        signals.item_progress.connect(self._on_progress)
        signals.item_done.connect(self._on_done)
        signals.item_failed.connect(self._on_failed)
        signals.item_cancelled.connect(self._on_cancelled)
        signals.finished.connect(self._on_finished)
        self._batch_keys = [job.key for job in jobs]
        self._batch_ended = 0
        self._current_fraction = 0.0
        self._batch_started_at = time.monotonic()
        self.running_changed.emit(True)
        self.total_progress.emit(0, "")
        self.message.emit(f"Upscaling {len(jobs)} image{'s' if len(jobs) != 1 else ''}...")
        self._batch_pool.start(self._worker)
        return True

    def cancel(self) -> None:
        """Stop at the next tile; the file in progress is not written, the rest are skipped."""
        if self._token is not None and self.running:
            self._token.cancel()
            self.message.emit("Cancelling...")

    def shutdown(self) -> None:
        """Cancel a running batch and wait for every background task (window closing)."""
        self.cancel()
        self._batch_pool.waitForDone()
        self._aux_pool.waitForDone()
        self._model_pool.waitForDone()

    def _emit_total(self) -> None:
        total = max(1, len(self._batch_keys))
        fraction = min(1.0, (self._batch_ended + self._current_fraction) / total)
        elapsed = time.monotonic() - self._batch_started_at
        eta = ""
        if 0.01 < fraction < 1.0 and elapsed > 0.5:
            eta = f"ETA {format_eta(elapsed * (1 - fraction) / fraction)}"
        self.total_progress.emit(round(fraction * 100), eta)

    def _on_started(self, key: int) -> None:
        self._current_fraction = 0.0
        self.queue.update(key, status=Status.RUNNING, percent=0)
        self._emit_total()

    def _on_progress(self, key: int, done: int, total: int) -> None:
        self._current_fraction = done / total if total > 0 else 0.0
        self.queue.update(key, percent=round(100 * self._current_fraction))
        self._emit_total()

    def _item_ended(self, key: int, **changes: Any) -> None:
        self._batch_ended += 1
        self._current_fraction = 0.0
        self.queue.update(key, **changes)
        self._emit_total()
        self.item_finished.emit(key)

    def _on_done(self, key: int, output: str) -> None:
        self._item_ended(key, status=Status.DONE, percent=100, output_path=Path(output))

    def _on_failed(self, key: int, reason: str) -> None:
        self._item_ended(key, status=Status.FAILED, error=reason)

    def _on_cancelled(self, key: int) -> None:
        self._item_ended(key, status=Status.CANCELLED, percent=0)

    def _on_finished(self, cancelled: bool) -> None:
        self._worker = None
        self._token = None
        counts = {status: 0 for status in Status}
        for item in self.queue.items():
            if item.key in self._batch_keys:
                counts[item.status] += 1
        self.total_progress.emit(100 if not cancelled else self._last_percent(), "")
        self.running_changed.emit(False)
        self.message.emit(
            ("Cancelled. " if cancelled else "Finished. ")
            + f"{counts[Status.DONE]} done, {counts[Status.FAILED]} failed"
            + (f", {counts[Status.CANCELLED]} cancelled." if counts[Status.CANCELLED] else ".")
        )
        self.batch_finished.emit(cancelled)

    def _last_percent(self) -> int:
        return round(100 * self._batch_ended / max(1, len(self._batch_keys)))

    # --- comparison ----------------------------------------------------------------------------

    def request_compare(self, key: int) -> bool:
        """Decode the row's input and output off the GUI thread; ``compare_ready`` follows."""
        item = self.queue.find(key)
        if item is None or item.status is not Status.DONE or item.output_path is None:
            return False
        task = CompareTask(key, item.path, item.output_path)
        task.signals.loaded.connect(self.compare_ready)
        self._start_aux(task)
        return True
