"""`nexus-upscale --cluster` without a cluster: the messages, and the worker pool it plans."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from nexus_upscaler.cli import main
from nexus_upscaler.core.cluster import ClusterInfo, plan_workers
from nexus_upscaler.core.errors import OptionError
from PIL import Image


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXUS_UPSCALER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NEXUS_UPSCALER_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)


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
