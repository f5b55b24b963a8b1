"""Fixtures shared by the test files that train tiny networks."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads; one thread keeps a file fast on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def model_cache(tmp_path, monkeypatch):
    """A private, empty model cache on the CPU for one test."""
    monkeypatch.setenv("CALAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CALAD_DEVICE", "cpu")
    return tmp_path / "cache"
