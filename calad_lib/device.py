"""Device selection, threads and seeds.

calad uses the GPU when there is one and runs correctly on the CPU. ``CALAD_DEVICE``
(``cpu``, ``cuda``, ``cuda:1``, ...) overrides the automatic choice.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "configure_threads"]


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``device`` if given, else ``$CALAD_DEVICE``, else CUDA if available, else CPU."""
    choice = device if device is not None else os.environ.get("CALAD_DEVICE", "auto")
    if isinstance(choice, torch.device):
        return choice
    if choice in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {choice!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def configure_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads (default: ``$CALAD_THREADS`` or all cores) and make CPU runs deterministic."""
    if n is None:
        n = int(os.environ.get("CALAD_THREADS", "0")) or (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n
