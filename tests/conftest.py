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
