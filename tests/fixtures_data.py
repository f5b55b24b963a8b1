"""Tiny datasets in each exact on-disk format the loaders read (idx, CIFAR pickles, MVTec folders)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from calad_lib.data.idx import write_idx


def make_fashion_mnist(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0, gz: bool = True) -> dict:
    """Write the four idx files under ``root/fashion-mnist``; return the arrays written."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(y)
        ext = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
        out[prefix] = (x, y)
    return out


def make_cifar(root: Path, kind: str = "cifar10", n_train: int = 30, n_test: int = 12, seed: int = 0,
               byte_names: bool = False) -> dict:
    """Write torchvision's CIFAR pickle folder for ``kind`` under ``root``; return the arrays written.

    ``byte_names`` stores the class names as byte strings, as a meta file pickled by Python 2 may."""
    rng = np.random.default_rng(seed)
    n_classes = 10 if kind == "cifar10" else 100
    names = [f"class{i}" for i in range(n_classes)]
    if kind == "cifar10":
        folder = Path(root) / "cifar-10-batches-py"
        label_key, meta_name, meta = "labels", "batches.meta", {"label_names": names}
        parts = np.array_split(np.arange(n_train), 5)
        train_files = [(f"data_batch_{i + 1}", p) for i, p in enumerate(parts)]
        test_name = "test_batch"
    else:
        folder = Path(root) / "cifar-100-python"
        label_key, meta_name, meta = "fine_labels", "meta", {"fine_label_names": names, "coarse_label_names": ["c"]}
        train_files = [("train", np.arange(n_train))]
        test_name = "test"
    folder.mkdir(parents=True, exist_ok=True)
    x_train = rng.integers(0, 256, size=(n_train, 3072), dtype=np.uint8)
    y_train = rng.integers(0, n_classes, size=n_train)
    x_test = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    y_test = rng.integers(0, n_classes, size=n_test)

    def dump(name, x, y):
        # torchvision's archives were pickled by Python 2: byte-string keys, read with latin1
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": x, label_key.encode(): [int(v) for v in y], b"batch_label": b"x"}, fh, protocol=2)

    for name, idx in train_files:
        dump(name, x_train[idx], y_train[idx])
    dump(test_name, x_test, y_test)
    if byte_names:
        meta = {k: [v.encode() for v in vals] for k, vals in meta.items()}
    with open(folder / meta_name, "wb") as fh:
        pickle.dump(meta, fh)
    return {"train": (x_train, y_train), "test": (x_test, y_test), "classes": tuple(names)}


def make_mvtec_class(folder: Path, size: int = 40, n_train: int = 8, n_good: int = 2,
                     defects: dict | None = None, grayscale: bool = False, seed: int = 0) -> dict:
    """Write one class in the MVTec layout; each defect is a white rectangle, exactly its mask."""
    rng = np.random.default_rng(seed)
    defects = defects or {"crack": 2, "hole": 1}
    folder = Path(folder)
    rects = {}

    def base():
        a = rng.integers(0, 100, size=(size, size, 3), dtype=np.uint8)
        return a[..., 0] if grayscale else a

    def save(path, a):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(path)

    for i in range(n_train):
        save(folder / "train" / "good" / f"{i:03d}.png", base())
    for i in range(n_good):
        save(folder / "test" / "good" / f"{i:03d}.png", base())
    for d, k in defects.items():
        for i in range(k):
            a = base()
            y0, x0 = rng.integers(0, size // 2, size=2)
            h, w = rng.integers(size // 4, size // 2, size=2)
            a[y0:y0 + h, x0:x0 + w] = 255
            m = np.zeros((size, size), np.uint8)
            m[y0:y0 + h, x0:x0 + w] = 255
            save(folder / "test" / d / f"{i:03d}.png", a)
            save(folder / "ground_truth" / d / f"{i:03d}_mask.png", m)
            rects[(d, i)] = (y0, x0, h, w)
    return rects
