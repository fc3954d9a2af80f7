"""`nexus-upscale --cluster` on a real local Ray cluster (2 CPU workers), against the plain CLI.

One Ray session serves the module (starting Ray and its workers is most of the time here), and
the jobs are few: a folder tree with a broken file (bit-identical to the CLI, the bad file fails
alone, a rerun with --skip-existing writes nothing), and a job whose worker is killed mid-run.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
import torch
from nexus_upscaler.cli import main
from nexus_upscaler.core.cluster import ClusterInfo, plan_workers
from nexus_upscaler.core.errors import OptionError
from PIL import Image

# tiles smaller than the images, so that tiling and blending run in the workers too
SETTINGS = ["--quiet", "--device", "cpu", "--tile", "32", "--overlap", "8"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder tree of varied images (RGB, gray, RGBA, 16-bit, JPEG) and one broken file."""
    src = tmp_path_factory.mktemp("photos")
    (src / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(src / f"p{i}.png")
    Image.fromarray(rng.integers(0, 256, (36, 44), dtype=np.uint8)).save(src / "sub" / "gray.png")
    Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)).save(src / "sub" / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(src / "sub" / "j.jpg")
    # 16-bit, through Pillow: an image we wrote ourselves would be left out of a folder scan
    deep = rng.integers(0, 65536, (34, 38)).astype(np.uint16)
    Image.fromarray(deep).save(src / "sub" / "deep.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return src


@pytest.fixture(scope="module")
def reference(photos, model_path, tmp_path_factory):
    """What the single-machine CLI writes for ``photos``, with one torch thread as each worker."""
    out = tmp_path_factory.mktemp("cli")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main([str(photos), "-r", "-o", str(out), "--model", str(model_path), *SETTINGS])
    finally:
        torch.set_num_threads(before)
    assert code == 1  # the broken file
    assert len(files_below(out)) == 8
    return out


@pytest.fixture(scope="module")
def local_cluster():
    ray = pytest.importorskip(
        "ray", reason='Ray is not installed (the cluster extra: pip install -e ".[cluster]")'
    )
    if os.environ.get("RAY_ADDRESS"):  # a cluster started with `ray start --head`
        ray.init(log_to_driver=False, logging_level="WARNING")
    else:
        for attempt in range(3):
            try:
                ray.init(
                    "local",
                    num_cpus=2,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="WARNING",
                )
                break
            except Exception:
                # On a starved CI machine Ray's node agent can miss the raylet's fixed start-up
                # window (the raylet aborts in WaitForDashboardAgentPorts); a second start finds
                # Ray's modules in the page cache. A cluster that never starts still fails here.
                ray.shutdown()
                if attempt == 2:
                    raise
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXUS_UPSCALER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NEXUS_UPSCALER_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)


def files_below(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_same_files_as_the_cli_a_bad_file_fails_alone_and_a_rerun_skips(
    local_cluster, photos, reference, model_path, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = [str(photos), "-r", "-o", str(out), "--model", str(model_path), *SETTINGS]
    assert main([*argv, "--cluster", "--workers", "2"]) == 1
    captured = capsys.readouterr()
    assert "8 written, 1 failed" in captured.err
    assert "broken.png" in captured.err and "Traceback" not in captured.err
    assert f"failed: {photos / 'broken.png'}: not an image" in captured.err  # the user's path

    names = files_below(reference)
    assert len(names) == 8 and files_below(out) == names  # no temporary file left either
    for name in names:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name

    written = {name: (out / name).stat().st_mtime_ns for name in names}
    assert main([*argv, "--cluster", "--skip-existing"]) == 1  # the broken file again
    captured = capsys.readouterr()
    assert "0 written, 8 skipped (output exists), 1 failed" in captured.err
    assert {name: (out / name).stat().st_mtime_ns for name in names} == written


def test_a_killed_worker_has_its_images_redone(
    local_cluster, photos, reference, model_path, tmp_path
):
    from nexus_upscaler.core.cluster import connect, upscale_on_cluster
    from nexus_upscaler.core.inputs import find_inputs
    from nexus_upscaler.core.loading import read_state_dict
    from nexus_upscaler.core.outputs import plan_outputs
    from nexus_upscaler.core.presets import build_options

    found = find_inputs([photos], recursive=True)
    plans = [
        p
        for p in plan_outputs(found.files, output=tmp_path / "out", suffix="_x2")
        if p.input.path.name != "broken.png"
    ]
    options = build_options(None, device="cpu", tile=32, overlap=8, resolve=False)
    results, killed = [], None
    with connect() as cluster:
        pool = plan_workers(cluster, "cpu", workers=2)
        assert (pool.count, pool.cpus, pool.gpus) == (2, 1.0, 0.0)
        for result in upscale_on_cluster(plans, read_state_dict(model_path), options, pool):
            if killed is None:  # the worker that did the first image, with more queued
                killed = result.worker
                os.kill(int(killed.rpartition(":")[2]), signal.SIGKILL)
            results.append(result)

    assert sorted(r.index for r in results) == list(range(len(plans)))
    assert [r.error for r in results if r.error] == []
    assert len({r.worker for r in results}) >= 3, "no image was redone by a restarted worker"
    for plan in plans:
        name = plan.output.relative_to(tmp_path / "out")
        assert plan.output.read_bytes() == (reference / name).read_bytes(), name
    assert files_below(tmp_path / "out") == files_below(reference)  # no temporary file left


def test_without_ray_the_cluster_option_names_the_extra(tmp_path, monkeypatch, capsys):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as where it is missing
    assert main(["a.png", "--cluster"]) == 2
    err = capsys.readouterr().err
    assert 'pip install ".[cluster]"' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a_x4.png").exists()


def test_cluster_flags_without_cluster_are_a_usage_error(tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["a.png", "--workers", "2"]) == 2
    assert "go with --cluster" in capsys.readouterr().err


def test_worker_pool_follows_the_cluster():
    gpus = ClusterInfo("local", nodes=2, cpus=16, gpus=4)
    assert plan_workers(gpus, "auto") == plan_workers(gpus, "cuda:1")
    pool = plan_workers(gpus, "auto")
    assert (pool.count, pool.gpus, pool.cpus) == (4, 1.0, 1.0)
    assert plan_workers(gpus, "auto", workers=8).gpus == 0.5  # two workers to a GPU
    assert plan_workers(gpus, "cpu").count == 16  # the GPUs left alone when asked
    cpus = ClusterInfo("local", nodes=1, cpus=8, gpus=0)
    assert (plan_workers(cpus, "auto").count, plan_workers(cpus, "auto").threads) == (8, 1)
    assert plan_workers(cpus, "auto", workers=3).threads == 2  # the cores shared out
    assert plan_workers(cpus, "auto", workers=16).cpus == 0.5
    assert plan_workers(cpus, "auto", workers=2, cpus_per_worker=1).cpus == 1
    with pytest.raises(OptionError, match="no GPU"):
        plan_workers(cpus, "cuda")


def test_a_retried_image_replaces_what_its_dead_attempt_wrote(tmp_path, model_path):
    """A worker killed after its rename and before its result came back leaves the output
    written: the retry writes it again. A file of the user's that appeared there is still
    refused. (The worker class, run here in-process: what each Ray actor runs.)"""
    from nexus_upscaler.core.cluster import _Upscaler
    from nexus_upscaler.core.imageio import write_image
    from nexus_upscaler.core.loading import read_state_dict
    from nexus_upscaler.core.presets import build_options

    worker = _Upscaler(
        read_state_dict(model_path),
        str(model_path),
        build_options(None, device="cpu", resolve=False),
        {"format": None, "quality": 95, "compress_level": None, "overwrite": False},
        threads=1,
    )
    picture = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    for name in ("a", "b"):
        Image.fromarray(picture).save(tmp_path / f"{name}.png")
    write_image(tmp_path / "a_x2.png", np.zeros((4, 4, 3), np.uint8))  # ours: a dead attempt's
    (tmp_path / "b_x2.png").write_bytes(b"the user's")
    rows = worker(
        {
            "index": np.array([0, 1]),
            "input": np.array([str(tmp_path / "a.png"), str(tmp_path / "b.png")]),
            "output": np.array([str(tmp_path / "a_x2.png"), str(tmp_path / "b_x2.png")]),
        }
    )
    assert rows["error"][0] == "" and Image.open(tmp_path / "a_x2.png").size == (20, 24)
    assert "already exists" in rows["error"][1]
    assert (tmp_path / "b_x2.png").read_bytes() == b"the user's"
