"""Device selection, threads and seeds.

calad uses the GPU when there is one and runs correctly on the CPU. ``CALAD_DEVICE``
(``cpu``, ``cuda``, ``cuda:1``, ...) overrides the automatic choice.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["DeviceError", "get_device", "seed_everything", "configure_threads"]


class DeviceError(ValueError):
    """The requested device or thread count cannot be used."""


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``device`` if given, else ``$CALAD_DEVICE``, else CUDA if available, else CPU."""
    choice = device if device is not None else os.environ.get("CALAD_DEVICE", "auto")
    if isinstance(choice, torch.device):
        return choice
    if choice in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device {choice!r} (CALAD_DEVICE) is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {choice!r} (CALAD_DEVICE) is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {choice!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"device {choice!r}: this machine has {torch.cuda.device_count()} GPU(s); "
                          "use cuda:0 ... or 'auto'")
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
        raw = os.environ.get("CALAD_THREADS", "0").strip() or "0"
        if not raw.isdigit():
            raise DeviceError(f"CALAD_THREADS={raw!r} is not a thread count; use a positive integer, or 0 for all cores")
        n = int(raw) or (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n
