"""Every test starts from the same random state, so a result never depends on test order or luck
(real MoE dispatch, for one, skips an expert that draws no token)."""

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture()
def one_torch_thread():
    """One intra-op thread, for files of tiny models: on a busy 2-core machine two OpenMP
    threads spin-wait on each other and tiny convolutions get ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny real spandrel model (Compact x2, seeded) saved as safetensors, for the CLI,
    pipeline and cluster tests: quick to run, and loaded the way every face loads a file."""
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny-x2.safetensors"
    save_file(Compact(num_feat=8, num_conv=2, upscale=2).state_dict(), str(path))
    return path
