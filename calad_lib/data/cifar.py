"""CIFAR-10 and CIFAR-100 read from torchvision's on-disk format (thesis §4.2.1).

The folders are those ``torchvision.datasets.CIFAR10/100`` download and unpack:

* ``<root>/cifar-10-batches-py/``: ``data_batch_1`` … ``data_batch_5``, ``test_batch``,
  ``batches.meta`` (``label_names``);
* ``<root>/cifar-100-python/``: ``train``, ``test``, ``meta`` (``fine_label_names``).

Each batch is a pickled dict with ``data`` (``uint8``, ``(N, 3072)``, channel-major
32×32) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100). calad reads them
without torchvision's checksum step so that any copy in this layout works offline.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..paths import relative
from .errors import DataNotFound

__all__ = ["CIFAR_FOLDERS", "cifar_folder", "read_cifar"]

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_FILES = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", "labels", "label_names"),
    "cifar100": (["train"], ["test"], "meta", "fine_labels", "fine_label_names"),
}


def cifar_folder(kind: str, root: Path) -> Path:
    """Where ``kind`` (``cifar10`` or ``cifar100``) is expected under the data ``root``."""
    return Path(root) / CIFAR_FOLDERS[kind]


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        entry = pickle.load(fh, encoding="latin1")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in entry.items()}


def read_cifar(kind: str, root: Path, train: bool = True) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images ``uint8 (N, 3, 32, 32)``, labels ``int64 (N,)`` and class names of ``kind``.

    Raises :class:`FileNotFoundError` (one line: the folder and the files it must hold)
    when a file is missing.
    """

    train_files, test_files, meta_file, label_key, names_key = _FILES[kind]
    folder = cifar_folder(kind, root)
    needed = [*train_files, *test_files, meta_file]
    missing = [f for f in needed if not (folder / f).exists()]
    if missing:

        raise DataNotFound(f"{kind} not found: expected {', '.join(needed)} in {relative(folder)}; "
                           f"unpack torchvision's {kind.upper()} python archive there (or set CALAD_DATA)")
    xs, ys = [], []
    for name in train_files if train else test_files:
        entry = _unpickle(folder / name)
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry[label_key], dtype=np.int64))
    classes = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in _unpickle(folder / meta_file)[names_key])
    return np.concatenate(xs), np.concatenate(ys), classes
