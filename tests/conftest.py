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
