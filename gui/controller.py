"""The app's state and what happens when the user acts; no widgets here.

The controller owns the queue, the user's choices, the loaded model and the running batch.
The window only lays out widgets, forwards the user's actions here and shows the signals:
``message`` for a passing status line, ``notice`` for what must stay on screen until the user
dismisses it (errors, the end-of-batch summary).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import QDateTime, QMimeData, QObject, QSize, QThreadPool, Signal
from PySide6.QtGui import QImage

from ..core.inputs import OUTPUT_FOLDER_NAME
from ..core.model_info import format_count, parameter_count
from .queue_model import QueueModel, Status
from .settings import AppSettings, Choices
from .worker import BatchWorker, Job, ModelTask, PreviewTask, ProbeTask

MAX_DETAILS = 20  # file lines in one notice; the rows carry the rest


@dataclass(frozen=True)
class ModelInfo:
    """What the model picker shows about the loaded model."""

    name: str  # a shipped model's name, or the checkpoint's file name
    architecture: str
    scale: int
    parameters: int
    description: str = ""  # in plain words, from the zoo or the checkpoint's metadata

    def summary(self) -> str:
        return f"{self.architecture} · {self.scale}× · {format_count(self.parameters)} parameters"

    @property
    def tag(self) -> str:
        """The model's name as it goes into output file names (``photo_nexus-x4.png``)."""
        name = self.name
        for suffix in (".safetensors", ".pth", ".pt", ".ckpt", ".bin"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
        return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


@dataclass(frozen=True)
class Notice:
    """A message that stays until dismissed: what happened, and per file what went wrong."""

    level: Literal["error", "warning", "info"]
    text: str
    details: tuple[str, ...] = ()  # "file: reason" lines
    folder: Path | None = None  # offered as "Open output folder"
    topic: str = ""  # a new notice on the same topic replaces the older one
    supersedes: tuple[str, ...] = ()  # and it replaces notices on these topics too


def format_eta(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def output_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot receive outputs, naming the path; None when it can.

    The folder need not exist yet (the pipeline creates it), but nothing on its way may be a
    file, and the nearest existing folder must be writable.
    """
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        if existing == folder:
            return f"{folder} is a file, not a folder"
        return f"{existing} is a file, so the folder {folder} cannot be made"
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def shipped_models() -> list[Any]:
    """The models in ``weights/`` (``core.zoo.ShippedModel``), in the zoo's order."""
    from ..core.zoo import list_shipped_models

    return list(list_shipped_models())


def recommended_model() -> str | None:
    from ..core.zoo import default_model_name

    return default_model_name()


class Controller(QObject):
    """State of one window. Signals carry everything the window shows."""

    model_changed = Signal(object)  # ModelInfo | None
    model_loading = Signal(bool)  # True when a model starts loading, False when that ends
    running_changed = Signal(bool)
    cancelling = Signal()  # Cancel was pressed: the model ends its current pass, then stops
    progress_changed = Signal(int, str, str)  # percent, what the bar says, ETA text
    message = Signal(str)  # a passing one-line status
    notice = Signal(object)  # Notice: shown until the user dismisses it
    preview_ready = Signal(int, QImage, QImage)  # key, input, output (null when none)
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
        self._probe_pool = QThreadPool(self)  # thumbnails and the check of new files
        self._probe_pool.setMaxThreadCount(1)
        self._preview_pool = QThreadPool(self)  # never waits behind a long probe
        self._preview_pool.setMaxThreadCount(1)
        self._model_pool = QThreadPool(self)  # one load at a time, the newest request wins
        self._model_pool.setMaxThreadCount(1)
        self._model_request = 0
        self._unreadable: set[int] = set()  # rows flagged when added, until a batch retries them
        self._closing = threading.Event()  # set once by shutdown: checks of new files stop
        self._loading_spec: str | None = None
        self._worker: BatchWorker | None = None
        self._token: Any = None
        self._batch_keys: list[int] = []
        self._batch_outputs: dict[int, Path] = {}
        self._batch_ended = 0
        self._batch_started_at = 0.0
        self._batch_model = ""
        self._current_fraction = 0.0
        for signal in (self.queue.rowsInserted, self.queue.rowsRemoved, self.queue.dataChanged):
            signal.connect(self.refresh_progress)

    # --- messages ------------------------------------------------------------------------------

    def _notify(
        self,
        level: str,
        text: str,
        details=(),
        folder: Path | None = None,
        topic: str = "",
        supersedes: tuple[str, ...] = (),
    ) -> None:
        details = tuple(details)
        if len(details) > MAX_DETAILS:
            rest = len(details) - MAX_DETAILS
            details = (*details[:MAX_DETAILS], f"... and {rest} more (see the red rows)")
        notice = Notice(level, text, details, folder, topic, supersedes)  # type: ignore[arg-type]
        self.notice.emit(notice)

    # --- queue ---------------------------------------------------------------------------------

    def add_paths(self, paths: list[str | Path]) -> int:
        """Queue files and folders (folders recursively, by the core's rule: no hidden files,
        no ``upscaled`` folders, no images this app wrote); returns how many rows were added.

        Each new file is decoded once in the background: its thumbnail, or, for a file that
        cannot be read, a failed row and a notice naming it, before any batch runs. What was
        left out is said: a folder with no images stays on screen, the rest in passing."""
        from ..core.inputs import find_inputs

        found = find_inputs([Path(p) for p in paths], recursive=True)
        new = self.queue.add_files([f.path for f in found.files])
        if new:
            task = ProbeTask(
                [(item.key, item.path) for item in new], self.max_pixels, stop=self._closing
            )
            task.signals.thumbnail.connect(self._on_thumbnail)
            task.signals.unreadable.connect(self._on_unreadable)
            task.signals.finished.connect(self._on_probed)
            self._probe_pool.start(task)
        left_out = []
        if len(found.files) > len(new):
            left_out.append(f"{len(found.files) - len(new)} already in the queue")
        if found.ours:
            left_out.append(f"{plural(len(found.ours), 'earlier result')} (images this app wrote)")
        summary = f"Added {plural(len(new), 'image')}" if new else "Nothing added"
        if left_out:
            summary += f"; left out {' and '.join(left_out)}"
        if found.missing:
            lines = [f"{spec}: {_why_nothing(Path(spec))}" for spec in found.missing]
            self._notify("warning", f"{summary}. Found no image in:", lines, topic="added")
        elif not new:
            self._notify("info", f"{summary}.", topic="added")
        else:
            self.message.emit(f"{summary}.")
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
        try:
            self.paste_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._notify("error", f"Could not save the pasted image in {self.paste_dir}: {exc}")
            return 0
        stamp = QDateTime.currentDateTime().toString("yyyyMMdd-HHmmss-zzz")
        path = self.paste_dir / f"pasted-{stamp}.png"
        if not image.save(str(path), "PNG"):
            self._notify("error", f"Could not save the pasted image to {path}.")
            return 0
        return self.add_paths([path])

    def remove_rows(self, rows: list[int]) -> None:
        if self.running:
            self.message.emit("Cannot remove images while a batch runs; cancel it first.")
            return
        self.queue.remove_rows(rows)

    def clear_finished(self) -> None:
        """Drop the rows that are done (their output files stay where they are)."""
        rows = [r for r, item in enumerate(self.queue.items()) if item.status is Status.DONE]
        self.remove_rows(rows)

    def redo(self, keys: list[int]) -> bool:
        """Upscale these rows again (with the model and options chosen now).

        Their old outputs stay on disk; the new ones follow the "if it exists" choice. Starts
        at once when nothing runs; returns whether a batch started."""
        if self.running:
            self.message.emit("Wait for the batch to end (or cancel it) to redo images.")
            return False
        for key in keys:
            self.queue.reset_item(key)
        return bool(keys) and self.start()

    def _on_thumbnail(self, key: int, image: QImage, size: QSize) -> None:
        item = self.queue.find(key)
        if item is None:
            return
        changes: dict[str, Any] = {"thumbnail": image}
        if not item.input_size.isValid() and size.isValid():
            changes["input_size"] = size
        self.queue.update(key, **changes)

    def _on_unreadable(self, key: int, reason: str) -> None:
        item = self.queue.find(key)
        if item is not None and item.status is Status.WAITING:
            self.queue.update(key, status=Status.FAILED, error=reason)
            self._unreadable.add(key)

    def _on_probed(self, bad: list) -> None:
        if not bad:
            return
        # The notice replaces the previous one on its topic: it names every flagged row still
        # queued, not only this addition's.
        lines = [
            f"{item.path.name}: {item.error}"
            for item in self.queue.items()
            if item.key in self._unreadable and item.status is Status.FAILED
        ]
        if lines:
            self._notify(
                "error",
                f"{plural(len(lines), 'file')} cannot be read as an image "
                f"and will fail unless replaced:",
                lines,
                topic="unreadable",
            )

    # --- model ---------------------------------------------------------------------------------

    @property
    def loading(self) -> bool:
        return self._loading_spec is not None

    def load_model(self, spec: str) -> None:
        """Load a shipped model (by name) or any checkpoint spandrel reads (by path), in the
        background. ``model_changed`` follows on success, a notice on failure, and
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
        shipped = {m.name: m for m in shipped_models()}
        description = shipped[spec].description if spec in shipped else _file_description(path)
        info = ModelInfo(
            name=spec if spec != str(path) else path.name,
            architecture=descriptor.architecture.name,
            scale=int(descriptor.scale),
            parameters=parameter_count(descriptor),
            description=description,
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
        still = f" {self.model_info.name} stays loaded." if self.model_info else ""
        self._notify("error", f"Could not load the model {spec}: {reason}.{still}", topic="model")

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

    def set_output_dir(self, text: str) -> bool:
        """Choose where outputs go ("" = an ``upscaled`` folder beside each input).

        A folder that cannot receive files (it is a file, or lies under one) is refused at
        once with a notice naming the path; the previous choice stays. A relative path is a
        folder beside each input, like the default."""
        text = text.strip()
        folder = Path(text).expanduser() if text else None
        if folder is not None and folder.is_absolute():
            problem = output_folder_problem(folder)
            if problem:
                self._notify("error", f"Output folder not changed: {problem}.", topic="output_dir")
                return False
        self.set_choices(output_dir=text)
        return True

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
            self._notify("error", str(exc), topic="preset")
            return
        self.set_choices(
            preset=name,
            tile=settings.get("tile") or 0,
            overlap=settings.get("overlap", self.choices.overlap),
            precision=settings.get("precision", self.choices.precision),
            tta=bool(settings.get("tta", False)),
        )

    @property
    def max_pixels(self) -> int | None:
        """The largest input to open, in pixels (None: no limit), from Max pixels."""
        return self.choices.max_megapixels * 1_000_000 or None

    def options(self) -> Any:
        """The engine's ``UpscaleOptions``: the chosen preset with the panel's values on top."""
        from ..core.errors import PresetError
        from ..core.presets import build_options

        c = self.choices
        fields = {
            "tile": c.tile or None,
            "overlap": c.overlap,
            "precision": c.precision,
            "tta": c.tta,
            "device": c.device,
            "target_scale": c.target_scale or None,
            "alpha_mode": c.alpha_mode,
            "threads": c.threads or None,
        }
        try:
            return build_options(c.preset or None, **fields)
        except PresetError as exc:
            # A broken user preset must not block the batch: its base is the default preset.
            self._notify(
                "warning",
                f"{exc}; using the default preset with the panel's options.",
                topic="preset",
            )
            return build_options(None, **fields)

    # --- output planning -----------------------------------------------------------------------

    @property
    def output_format(self) -> str | None:
        """The format to write, None for "same as input"."""
        return None if self.choices.format == "same" else self.choices.format

    def output_suffix(self) -> str:
        """The name suffix, with the model's name added when the user asked for it."""
        suffix = self.choices.suffix
        if self.choices.name_with_model and self.model_info is not None:
            suffix = f"{suffix}_{self.model_info.tag}"
        return suffix

    def plan_outputs(self, inputs: list[Path]) -> list[Any]:
        """Where each input goes (``core.outputs.PlannedOutput``), following the output choices.

        The core's rules, as the command line plans them: an output never lands on a queued
        input nor on another output of the batch; the "rename" policy also avoids existing files
        (``name_upscaled-2.png``, ...), "overwrite" and "fail" leave a colliding row failed.
        An empty output folder is an ``upscaled`` folder beside each input, a relative one is
        beside each input too, an absolute one holds every output.
        """
        from ..core.outputs import plan_outputs

        text = self.choices.output_dir.strip()
        folder = Path(text).expanduser() if text else None
        beside = folder is None or not folder.is_absolute()
        return plan_outputs(
            inputs,
            output=None if beside else f"{folder}{os.sep}",
            subfolder=(text or OUTPUT_FOLDER_NAME) if beside else None,
            suffix=self.output_suffix(),
            format=self.output_format,
            existing=self.choices.overwrite,  # type: ignore[arg-type]
            protected=[item.path for item in self.queue.items()],
        )

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
            self._notify(
                "warning",
                "Choose a model first (the model picker, or Open model…).",
                topic="start",
            )
            return False
        todo = [item for item in self.queue.items() if item.status is not Status.DONE]
        if not todo:
            self._notify(
                "info",
                "Nothing to upscale: add images, or select finished ones and choose "
                "“Upscale again”.",
                topic="start",
            )
            return False
        from ..core.engine import CancelToken

        options = self.options()
        plans = self.plan_outputs([item.path for item in todo])
        problems: dict[Path, str | None] = {}
        jobs = []
        for item, plan in zip(todo, plans):
            out = plan.output
            if out.parent not in problems:
                problem = output_folder_problem(out.parent)
                problems[out.parent] = f"cannot write the output: {problem}" if problem else None
            jobs.append(Job(item.key, item.path, out, plan.problem or problems[out.parent] or ""))
        for item in todo:
            self.queue.reset_item(item.key)
            self._unreadable.discard(item.key)  # the batch says again what still fails
        self._token = CancelToken()
        self._worker = BatchWorker(
            self._descriptor,
            jobs,
            options,
            format=self.output_format,
            quality=self.choices.quality,
            overwrite=self.choices.overwrite == "overwrite",
            cancel=self._token,
            max_pixels=self.max_pixels,
        )
        signals = self._worker.signals
        signals.item_started.connect(self._on_started)
        signals.item_progress.connect(self._on_progress)
        signals.item_done.connect(self._on_done)
        signals.item_failed.connect(self._on_failed)
        signals.item_cancelled.connect(self._on_cancelled)
        signals.finished.connect(self._on_finished)
        self._batch_keys = [job.key for job in jobs]
        self._batch_outputs = {job.key: job.output_path for job in jobs}
        self._batch_ended = 0
        self._current_fraction = 0.0
        self._batch_started_at = time.monotonic()
        self._batch_model = self.model_info.name if self.model_info else ""
        self.running_changed.emit(True)
        self.refresh_progress()
        self.message.emit(f"Upscaling {plural(len(jobs), 'image')}...")
        self._batch_pool.start(self._worker)
        return True

    def cancel(self) -> None:
        """Stop before the model's next pass; the file in progress is not written, the rest
        are skipped. The pass under way ends first (seconds on a CPU), so the bar says so."""
        if self._token is not None and self.running and not self._token.cancelled:
            self._token.cancel()
            self.cancelling.emit()
            self.refresh_progress()
            self.message.emit("Cancelling...")

    @property
    def is_cancelling(self) -> bool:
        return self.running and self._token is not None and self._token.cancelled

    def images_left(self) -> int:
        """Rows of the running batch that have not ended yet."""
        return len(self._batch_keys) - self._batch_ended if self.running else 0

    def shutdown(self) -> None:
        """Cancel a running batch, stop checking new files, and wait for every background
        task (window closing): at most the model's current pass, one file's check, one
        preview and one model load."""
        self._closing.set()
        self.cancel()
        self._batch_pool.waitForDone()
        self._probe_pool.waitForDone()
        self._preview_pool.waitForDone()
        self._model_pool.waitForDone()

    def refresh_progress(self, *_args: Any) -> None:
        """The batch bar: the running batch with an ETA, or, between batches, the queue."""
        if self.running:
            total = max(1, len(self._batch_keys))
            fraction = min(1.0, (self._batch_ended + self._current_fraction) / total)
            elapsed = time.monotonic() - self._batch_started_at
            eta = ""
            if 0.01 < fraction < 1.0 and elapsed > 0.5:
                eta = f"ETA {format_eta(elapsed * (1 - fraction) / fraction)}"
            percent = round(fraction * 100)
            if self.is_cancelling:
                text = "Cancelling: the model ends its current step, nothing more is written"
                self.progress_changed.emit(percent, text, "")
                return
            self.progress_changed.emit(percent, f"{percent}% of the batch", eta)
            return
        items = self.queue.items()
        if not items:
            self.progress_changed.emit(0, "No images yet", "")
            return
        done = sum(item.status is Status.DONE for item in items)
        failed = sum(item.status is Status.FAILED for item in items)
        text = f"{done} of {plural(len(items), 'image')} done"
        if failed:
            text += f", {failed} failed"
        self.progress_changed.emit(round(100 * done / len(items)), text, "")

    def _on_started(self, key: int) -> None:
        self._current_fraction = 0.0
        self.queue.update(key, status=Status.RUNNING, percent=0)

    def _on_progress(self, key: int, done: int, total: int) -> None:
        self._current_fraction = done / total if total > 0 else 0.0
        self.queue.update(key, percent=round(100 * self._current_fraction))

    def _item_ended(self, key: int, **changes: Any) -> None:
        self._batch_ended += 1
        self._current_fraction = 0.0
        self.queue.update(key, **changes)
        self.item_finished.emit(key)

    def _on_done(self, key: int, output: str, width: int, height: int) -> None:
        self._item_ended(
            key,
            status=Status.DONE,
            percent=100,
            output_path=Path(output),
            output_size=QSize(width, height),
            model=self._batch_model,
        )

    def _on_failed(self, key: int, reason: str) -> None:
        self._item_ended(key, status=Status.FAILED, error=reason)

    def _on_cancelled(self, key: int) -> None:
        self._item_ended(key, status=Status.CANCELLED, percent=0)

    def _on_finished(self, cancelled: bool) -> None:
        self._worker = None
        self._token = None
        batch = [item for item in self.queue.items() if item.key in self._batch_keys]
        done = [item for item in batch if item.status is Status.DONE]
        failed = [item for item in batch if item.status is Status.FAILED]
        skipped = sum(item.status is Status.CANCELLED for item in batch)
        elapsed = format_eta(time.monotonic() - self._batch_started_at)
        head = "Cancelled" if cancelled else "Finished"
        text = f"{head} in {elapsed}: {len(done)} done"
        text += f", {len(failed)} failed" if failed else ""
        text += f", {skipped} not started" if skipped else ""
        folders = {item.output_path.parent for item in done if item.output_path is not None}
        folder = folders.pop() if len(folders) == 1 else None
        if done and folder is not None:
            text += f". Saved in {folder}"
        elif done:
            text += f". Saved in {len(folders)} folders (an “upscaled” folder beside each input)"
        details = [f"{item.path.name}: {item.error}" for item in failed]
        level = "error" if failed else "warning" if cancelled else "info"
        self.running_changed.emit(False)
        self.refresh_progress()
        self._notify(
            level,
            text + ("." if not failed else ". These failed:"),
            details,
            folder,
            topic="batch",
            supersedes=("unreadable", "start"),  # the summary says it all again
        )
        self.batch_finished.emit(cancelled)

    def result_path(self, key: int) -> Path | None:
        """The output of a finished row, or None (with a notice when the file has gone)."""
        item = self.queue.find(key)
        if item is None or item.status is not Status.DONE or item.output_path is None:
            return None
        if not item.output_path.exists():
            self._notify("error", f"{item.output_path} is no longer there (moved or deleted?).")
            return None
        return item.output_path

    # --- previews ------------------------------------------------------------------------------

    def request_preview(self, key: int) -> bool:
        """Decode the row's input (and its output when it is done) off the GUI thread;
        ``preview_ready`` follows. False when the row is gone."""
        item = self.queue.find(key)
        if item is None:
            return False
        after = item.output_path if item.status is Status.DONE else None
        task = PreviewTask(key, item.path, after)
        task.signals.loaded.connect(self.preview_ready)
        self._preview_pool.start(task)
        return True


def _why_nothing(path: Path) -> str:
    """Why a dropped or chosen path gave no image, in the user's words."""
    if path.is_dir():
        return (
            "no images in this folder or below it (PNG, JPEG, WebP, TIFF, BMP or GIF files; "
            "“upscaled” folders and hidden files are skipped)"
        )
    return "no such file or folder"


def _file_description(path: Path) -> str:
    """The description a checkpoint carries in its metadata, if any."""
    from ..core.loading import read_metadata

    try:
        return read_metadata(path).get("description", "")
    except Exception:  # noqa: BLE001 (a description is optional)
        return ""
