"""Shared fixtures: a tiny, fast recipe on scikit-learn's bundled digits."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

#: the real data sets of ../shared/data (see its README), beside the project; MMDD_SHARED_DATA overrides
SHARED_DATA = Path(os.environ.get("MMDD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

TINY = {
    "name": "tiny",
    "description": "tiny DM run for tests",
    "domain": "image",
    "seed": 0,
    "dataset": {"name": "digits"},
    "budget": {"ipc": 2},
    "network": {"name": "convnet", "depth": 1, "width": 8},
    "method": {"name": "dm", "iterations": 6, "batch_real": 16},
    "evaluation": {"epochs": 3, "seeds": 2, "baselines": ["random"], "test_batch_size": 512},
    "checkpoint": {"every": 2},
}


@pytest.fixture
def tiny_recipe() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests use tiny tensors: one intra-op thread is faster on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
