"""A batch through ``core.batch.upscale_files``: the same files as one ``upscale_file`` call each,
with the next file read and the previous one written while the model works."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from nexus_upscaler.core import batch
from nexus_upscaler.core.batch import BatchItem, upscale_files
from nexus_upscaler.core.engine import CancelToken, UpscaleOptions
from nexus_upscaler.core.errors import ImageReadError, UpscaleCancelled
from nexus_upscaler.core.loading import descriptor_from_state_dict
from nexus_upscaler.core.pipeline import upscale_file
from PIL import Image
from spandrel import ImageModelDescriptor
from spandrel.architectures.Compact import Compact

OPTIONS = UpscaleOptions(tile=32, overlap=4, device="cpu")


class _Watched(torch.nn.Module):
    """Runs ``before_forward()`` ahead of every forward pass."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.before_forward = lambda: None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.before_forward()
        return self.inner(x)


@pytest.fixture()
def model() -> ImageModelDescriptor:
    """A tiny spandrel Compact x2 whose forward passes can be watched (``model.model``)."""
    torch.manual_seed(0)
    compact = descriptor_from_state_dict(Compact(num_feat=8, num_conv=2, upscale=2).state_dict())
    watched = _Watched(compact.model)
    return ImageModelDescriptor(
        watched,
        watched.state_dict(),
        architecture=compact.architecture,
        purpose=compact.purpose,
        tags=compact.tags,
        supports_half=True,
        supports_bfloat16=True,
        scale=2,
        input_channels=3,
        output_channels=3,
    )


def picture(seed: int, h: int = 24, w: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def inputs(folder: Path, count: int) -> list[BatchItem]:
    folder.mkdir(exist_ok=True)
    items = []
    for k in range(count):
        path = folder / f"in{k}.png"
        Image.fromarray(picture(k)).save(path)
        items.append(BatchItem(path, folder / "out" / f"in{k}.png", key=k))
    (folder / "out").mkdir()
    return items


def test_a_batch_writes_what_one_file_at_a_time_writes_and_a_bad_file_fails_alone(tmp_path, model):
    items = inputs(tmp_path / "a", 4)
    items[1].input_path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    started = []
    outcomes = list(upscale_files(model, items, OPTIONS, on_start=lambda i: started.append(i.key)))
    assert [o.item.key for o in outcomes] == [0, 1, 2, 3]
    assert isinstance(outcomes[1].error, ImageReadError) and "in1.png" in str(outcomes[1].error)
    assert started == [0, 2, 3]  # the model never saw the bad file
    for k in (0, 2, 3):
        single = tmp_path / f"single{k}.png"
        upscale_file(model, items[k].input_path, single, OPTIONS)
        assert outcomes[k].result is not None and outcomes[k].result.output_path.exists()
        ours = np.asarray(Image.open(items[k].output_path))
        assert np.array_equal(ours, np.asarray(Image.open(single)))
    assert not items[1].output_path.exists()


def test_the_next_file_is_read_and_the_last_written_while_the_model_works(
    tmp_path, model, monkeypatch
):
    """Deterministic, not timed: the model waits (a few seconds at most) for the other thread's
    work on another file; done one after another, that work would never come."""
    items = inputs(tmp_path / "b", 3)
    read, writing = threading.Event(), threading.Event()
    real_read, real_write = batch.read_image, batch.write_result

    def read_image(path, **kw):
        if path == items[1].input_path:
            read.set()
        return real_read(path, **kw)

    def write_result(input_path, *args):
        if input_path == items[0].input_path:
            writing.set()
        return real_write(input_path, *args)

    monkeypatch.setattr(batch, "read_image", read_image)
    monkeypatch.setattr(batch, "write_result", write_result)
    seen = {}
    current = []

    def before_forward():
        if current == [0]:
            seen["read during model 0"] = read.wait(10)
        if current == [1]:
            seen["written during model 1"] = writing.wait(10)

    model.model.before_forward = before_forward

    def on_start(item):
        current[:] = [item.key]

    outcomes = list(upscale_files(model, items, OPTIONS, on_start=on_start))
    assert seen == {"read during model 0": True, "written during model 1": True}
    assert all(o.error is None for o in outcomes)


def test_cancel_ends_the_batch_and_writes_nothing_for_the_cancelled_file(tmp_path, model):
    items = inputs(tmp_path / "c", 3)
    token = CancelToken()
    current = []
    model.model.before_forward = lambda: token.cancel() if current == [1] else None
    outcomes = list(
        upscale_files(
            model,
            items,
            OPTIONS,
            cancel=token,
            on_start=lambda i: current.__setitem__(slice(None), [i.key]),
        )
    )
    assert [o.item.key for o in outcomes] == [0, 1]
    assert outcomes[0].result is not None
    assert isinstance(outcomes[1].error, UpscaleCancelled)
    assert sorted(p.name for p in (tmp_path / "c" / "out").iterdir()) == ["in0.png"]


def test_an_interrupt_finishes_the_file_being_written_and_leaves_no_temporary_file(tmp_path, model):
    """Ctrl-C (or SIGTERM, which the CLI turns into an exception) during the model's work on a
    file: the previous file, being written in the background, is completed; nothing else."""
    items = inputs(tmp_path / "d", 3)
    current = []

    def before_forward():
        if current == [1]:
            raise KeyboardInterrupt

    model.model.before_forward = before_forward
    with pytest.raises(KeyboardInterrupt):
        for _ in upscale_files(
            model, items, OPTIONS, on_start=lambda i: current.__setitem__(slice(None), [i.key])
        ):
            pass
    out = tmp_path / "d" / "out"
    assert [p.name for p in out.iterdir()] == ["in0.png"]
    assert Image.open(out / "in0.png").size == (80, 48)
