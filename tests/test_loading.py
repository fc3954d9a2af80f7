"""Reading, loading and saving checkpoints: any spandrel model, every wrapper, hostile files.

These use spandrel's own architectures (SRVGGNetCompact, ESRGAN), so they test the loading
layer independently of our two architectures (test_detection.py covers those).
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import spandrel
import torch
from nexus_upscaler import __version__
from nexus_upscaler.core import (
    CheckpointFormatError,
    InconsistentCheckpointError,
    ModelNotFoundError,
    UnknownArchitectureError,
    UnsafeCheckpointError,
    load_model,
    read_state_dict,
    save_model,
)
from nexus_upscaler.core.loading import read_metadata
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact as SRVGGNetCompact
from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet


@pytest.fixture(scope="module")
def compact() -> SRVGGNetCompact:
    torch.manual_seed(0)
    return SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2).eval()


@pytest.fixture()
def image() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, 12, 10)


def _same_output(descriptor: spandrel.ImageModelDescriptor, model: torch.nn.Module, x) -> None:
    with torch.no_grad():
        expected = model(x).clamp(0, 1)
    assert torch.equal(descriptor(x), expected)


# --- any spandrel model, every container -----------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "wrap"),
    [
        (".safetensors", lambda sd: sd),
        (".pth", lambda sd: sd),
        (".pt", lambda sd: {"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}}),
        (".ckpt", lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}),
        (".bin", lambda sd: {"model": sd, "iter": 1000}),
        (".pth", lambda sd: {"net": {f"netG.{k}": v for k, v in sd.items()}}),
    ],
)
def test_loads_spandrel_model_from_every_container(tmp_path, compact, image, suffix, wrap):
    sd = compact.state_dict()
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        save_file(wrap(sd), path)
    else:
        torch.save(wrap(sd), path)

    read = read_state_dict(path)
    assert read.keys() == sd.keys()
    assert all(torch.equal(read[k], sd[k]) for k in sd)  # params_ema wins over params

    descriptor = load_model(path)
    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    assert descriptor.architecture.id == "Compact"
    assert descriptor.scale == 2
    assert not descriptor.model.training
    _same_output(descriptor, compact, image)


def test_loads_esrgan_and_legacy_pickle_format(tmp_path, image):
    torch.manual_seed(2)
    model = RRDBNet(num_filters=8, num_blocks=1, scale=4).eval()
    path = tmp_path / "esrgan.pth"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    descriptor = load_model(path)
    assert descriptor.architecture.id == "ESRGAN"
    assert descriptor.scale == 4
    _same_output(descriptor, model, image)


def test_load_model_device_and_dtype(tmp_path, compact):
    path = tmp_path / "m.safetensors"
    save_model(compact, path)
    descriptor = load_model(path, device="cpu", dtype=torch.bfloat16)
    assert descriptor.dtype == torch.bfloat16
    assert descriptor.device == torch.device("cpu")


# --- saving ------------------------------------------------------------------------------------


def test_save_model_writes_metadata_and_plain_state_dict(tmp_path, compact, image):
    path = tmp_path / "out" / "compact.safetensors"
    written = save_model(compact, path, name="my compact", description="test weights")
    meta = read_metadata(path)
    assert meta == written
    assert meta["architecture"] == "Compact"
    assert meta["scale"] == "2"
    assert meta["package_version"] == __version__
    assert meta["name"] == "my compact"
    assert meta["description"] == "test weights"
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp files left

    # The state dict alone is enough: spandrel's own loader, without our metadata reader.
    descriptor = spandrel.ModelLoader().load_from_file(path)
    _same_output(descriptor, compact, image)


def test_save_model_from_descriptor_in_half_precision(tmp_path, compact):
    src = tmp_path / "a.safetensors"
    save_model(compact, src)
    dst = tmp_path / "b.safetensors"
    save_model(load_model(src), dst, dtype=torch.float16)
    sd = read_state_dict(dst)
    assert all(t.dtype == torch.float16 for t in sd.values())
    assert read_metadata(dst)["architecture"] == "Compact"
    assert dst.stat().st_size < src.stat().st_size * 0.6


def test_save_model_refuses_a_model_that_would_not_load_again(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(UnknownArchitectureError, match="x.safetensors"):
        save_model(torch.nn.Conv2d(3, 3, 3), path)
    assert not path.exists()


def test_read_metadata_of_a_pickle_is_empty(tmp_path, compact):
    path = tmp_path / "m.pth"
    torch.save(compact.state_dict(), path)
    assert read_metadata(path) == {}


# --- hostile and broken files ------------------------------------------------------------------


class _Payload:
    """Unpickling this would create ``target`` (a stand-in for arbitrary code)."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("kind", ["zip", "legacy", "raw_pickle"])
def test_code_running_pickle_is_refused_without_running(tmp_path, compact, kind):
    target = tmp_path / "pwned"
    obj = {"params_ema": compact.state_dict(), "hook": _Payload(target)}
    path = tmp_path / "evil.pth"
    if kind == "zip":
        torch.save(obj, path)
    elif kind == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=4))
    # Sanity: the payload is real (an unrestricted load would create the file).
    assert not target.exists()

    with pytest.raises(UnsafeCheckpointError) as info:
        load_model(path)
    assert not target.exists()
    assert "evil.pth" in str(info.value)
    assert "pathlib" in str(info.value)  # names what it wanted to import


def test_payload_is_real(tmp_path):
    target = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Payload(target)))  # the unrestricted unpickler runs it
    assert target.exists()


def _broken_files(tmp_path: Path, compact) -> dict[str, tuple[Path, str]]:
    good_pth = tmp_path / "good.pth"
    torch.save(compact.state_dict(), good_pth)
    good_st = tmp_path / "good.safetensors"
    save_file(compact.state_dict(), good_st)
    data_pth, data_st = good_pth.read_bytes(), good_st.read_bytes()
    files = {
        "empty.pth": (b"", "empty"),
        "empty.safetensors": (b"", "empty"),
        "truncated.pth": (data_pth[: len(data_pth) // 2], "truncated"),
        "truncated.safetensors": (data_st[: len(data_st) - 7], "truncated"),
        "corrupt.pth": (b"\x80\x02" + b"\xff" * 64, "corrupt"),
        "corrupt.safetensors": (struct.pack("<Q", 12) + b"{not json!!}" + b"\0" * 8, "safetensors"),
        "image.pth": (b"\x89PNG\r\n\x1a\n" + os.urandom(64), "PNG image"),
        "image.safetensors": (b"\x89PNG\r\n\x1a\n" + os.urandom(64), "PNG image"),
        "notes.pth": (b"just some text", "neither"),
        "weights.onnx": (b"\x08\x07\x12\x07pytorch" + os.urandom(32), "unsupported file type"),
    }
    out = {}
    for name, (data, message) in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = (tmp_path / name, message)
    return out


def test_broken_files_raise_format_error_naming_file_and_problem(tmp_path, compact):
    for name, (path, message) in _broken_files(tmp_path, compact).items():
        with pytest.raises(CheckpointFormatError) as info:
            load_model(path)
        assert not isinstance(info.value, UnsafeCheckpointError), name
        assert name in str(info.value), name
        assert message.lower() in str(info.value).lower(), (name, str(info.value))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_and_foreign_zip_are_format_errors(tmp_path):
    script = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Conv2d(3, 3, 3), torch.rand(1, 3, 8, 8)), script)
    with pytest.raises(CheckpointFormatError, match="TorchScript"):
        read_state_dict(script)
    foreign = tmp_path / "archive.pth"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointFormatError, match="not a PyTorch checkpoint"):
        read_state_dict(foreign)


def test_non_state_dict_contents(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointFormatError, match="list.pth.*list"):
        read_state_dict(path)
    path = tmp_path / "settings.pth"
    torch.save({"lr": 0.1, "name": "x"}, path)
    with pytest.raises(CheckpointFormatError, match="settings.pth.*no weight tensors"):
        read_state_dict(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="nope.pth"):
        load_model(tmp_path / "nope.pth")


def test_unknown_architecture(tmp_path):
    path = tmp_path / "mystery.safetensors"
    save_file({"encoder.weight": torch.zeros(4, 4), "decoder.bias": torch.zeros(4)}, path)
    with pytest.raises(UnknownArchitectureError, match="mystery.safetensors.*no known arch"):
        load_model(path)


def test_contradictory_shapes(tmp_path, compact):
    sd = dict(compact.state_dict())
    # The last conv says 3*2*2 output channels; make one middle conv disagree with its neighbours.
    key = next(k for k in sd if k.endswith("weight") and sd[k].ndim == 4 and k != "body.0.weight")
    sd[key] = torch.zeros(sd[key].shape[0] + 3, *sd[key].shape[1:])
    path = tmp_path / "edited.safetensors"
    save_file(sd, path)
    with pytest.raises(InconsistentCheckpointError, match="edited.safetensors.*Compact"):
        load_model(path)


def test_saved_model_gets_the_permissions_of_a_plain_file(tmp_path: Path) -> None:
    """Atomic saving must not leave the model private to its writer (mkstemp's 0600)."""
    import stat

    from spandrel.architectures.Compact import Compact

    out = tmp_path / "m.safetensors"
    umask = os.umask(0o022)
    try:
        save_model(Compact(num_feat=4, num_conv=1, upscale=2), out)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_a_shipped_model_loads_by_its_name(monkeypatch):
    """Wherever a model is named, a shipped name works like its file: ``load_model("nexus-x2")``."""
    from nexus_upscaler.core.zoo import WEIGHTS_DIR_ENV, list_shipped_models, weights_dir

    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    shipped = {m.name: m.path for m in list_shipped_models()}
    if "nexus-x2" not in shipped:
        pytest.skip(f"no nexus-x2 in {weights_dir()}")
    by_name = load_model("nexus-x2")
    by_file = load_model(shipped["nexus-x2"])
    assert by_name.scale == 2 and by_name.architecture.name == by_file.architecture.name
    for (k, a), (_, b) in zip(
        by_name.model.state_dict().items(), by_file.model.state_dict().items()
    ):
        assert torch.equal(a, b), k
    with pytest.raises(
        ModelNotFoundError, match="no model file or shipped model named 'nexus-x9'.*nexus-x2"
    ):
        load_model("nexus-x9")


def test_nexus_eval_takes_a_shipped_model_name(tmp_path, monkeypatch, capsys):
    from nexus_upscaler.core.loading import save_model as save
    from nexus_upscaler.core.training.cli import eval_main
    from PIL import Image
    from spandrel.architectures.Compact import Compact

    weights = tmp_path / "weights"
    save(Compact(num_feat=4, num_conv=1, upscale=2), weights / "tiny-x2.safetensors")
    monkeypatch.setenv("NEXUS_UPSCALER_WEIGHTS_DIR", str(weights))
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(data / "a.png")
    assert eval_main(["--model", "tiny-x2", "--data", str(data)]) == 0
    assert "| tiny-x2 |" in capsys.readouterr().out
