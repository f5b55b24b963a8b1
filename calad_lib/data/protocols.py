"""The evaluation protocols of thesis §4.2.1–§4.2.2 and the seeded 3:1 calibration split.

* **one-vs-all** (Fashion-MNIST, CIFAR-10): one class is normal; its training images are
  split 3:1 into a training and a calibration set; every test image of the other
  classes is an anomaly (§4.2.2).
* **per-class** (MVTec AD, MPDD, defect textures): ``train/good`` is split 3:1 in the
  same way; the test set holds good and defective images with pixel masks.

The split is a seeded permutation; its two parts are returned in their original order.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import torch

from .datasets import load, parse_name
from .errors import DataError
from ..profile import timed

__all__ = ["OneVsAll", "PerClass", "split_indices", "test_subset", "one_vs_all", "per_class", "pre_crop_size",
           "hflip_ok", "NO_HFLIP"]

#: MVTec AD classes whose test anomalies include mirrored/turned objects (``metal_nut``'s
#: "flip", ``transistor``'s "misplaced"), so a horizontal flip is no valid augmentation.
#: The thesis (§4.2.1) does not name the classes; this is our reading of the test sets.
NO_HFLIP = frozenset({"mvtec:metal_nut", "mvtec:transistor"})


class OneVsAll(NamedTuple):
    """One-vs-all split of a labelled dataset (§4.2.2); images are ``float32`` in [0, 1]."""

    train: torch.Tensor        # 3/4 of the normal class's training images
    calib: torch.Tensor        # the other 1/4 (post-hoc calibration)
    full_train: torch.Tensor   # all of them (the fully trained baseline)
    test_x: torch.Tensor       # every test image
    test_y: torch.Tensor       # 0 normal class, 1 any other class
    test_labels: torch.Tensor  # original class ids
    classes: tuple[str, ...]
    normal_class: int


class PerClass(NamedTuple):
    """Per-class split of an MVTec-layout dataset (§4.2.1–§4.2.2)."""

    train: torch.Tensor         # 3/4 of train/good
    calib: torch.Tensor         # the other 1/4
    full_train: torch.Tensor    # all of train/good
    test_x: torch.Tensor        # every test image
    test_y: torch.Tensor        # 0 good, 1 defective
    test_masks: torch.Tensor    # (N, 1, H, W) float {0, 1}
    defect_types: tuple[str, ...]  # per test image: "good" or its defect folder name
    name: str


def _check_fraction(calib_fraction: float) -> None:
    if isinstance(calib_fraction, bool) or not isinstance(calib_fraction, (int, float)) \
            or not 0.0 < calib_fraction < 1.0:
        raise DataError(f"calib_fraction must lie strictly between 0 and 1, got {calib_fraction!r} "
                        "(the thesis uses 0.25, a 3:1 split)")


def split_indices(n: int, seed: int = 0, calib_fraction: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices ``(train, calib)`` of a seeded split of ``range(n)``; ``calib`` holds ``round(n·fraction)``."""
    _check_fraction(calib_fraction)
    n_calib = int(round(n * calib_fraction))
    if n_calib < 1 or n_calib > n - 1:
        raise DataError(f"cannot split {n} images with calib_fraction={calib_fraction}: both parts need an image")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[n_calib:].sort().values, perm[:n_calib].sort().values


@timed("data")
def one_vs_all(name: str, normal_class: int | str = 0, seed: int = 0, calib_fraction: float = 0.25,
               root: str | os.PathLike | None = None) -> OneVsAll:
    """One-vs-all protocol on ``fashion_mnist``, ``cifar10`` or ``cifar100`` (thesis §4.2.2).

    ``normal_class`` is a class id or name; the calibration split is seeded by ``seed``.
    """
    kind, cls = parse_name(name)
    if cls is not None:
        raise DataError(f"one_vs_all needs a labelled dataset (fashion_mnist, cifar10, cifar100), got {name!r}; "
                        "use per_class for MVTec-layout datasets")
    _check_fraction(calib_fraction)
    train = load(kind, train=True, root=root)
    if isinstance(normal_class, str):
        if normal_class not in train.classes:
            raise DataError(f"unknown class {normal_class!r} of {kind}; choose one of: {', '.join(train.classes)}")
        normal_class = train.classes.index(normal_class)
    if isinstance(normal_class, bool) or not isinstance(normal_class, int) \
            or not 0 <= normal_class < len(train.classes):
        raise DataError(f"normal_class must be a class id in 0..{len(train.classes) - 1} or a class name, "
                        f"got {normal_class!r}")
    test = load(kind, train=False, root=root)
    full = train.images[train.labels == normal_class]
    tr, ca = split_indices(len(full), seed, calib_fraction)
    return OneVsAll(train=full[tr], calib=full[ca], full_train=full, test_x=test.images,
                    test_y=(test.labels != normal_class).long(), test_labels=test.labels,
                    classes=train.classes, normal_class=int(normal_class))


def test_subset(test_y: torch.Tensor, *, n_normal: int | None = None, n_anomalous: int | None = None,
                seed: int = 0) -> torch.Tensor:
    """Indices of a test set capped at ``n_normal`` normal and ``n_anomalous`` anomalous images (``None``: all).

    Normal images first, then anomalous ones; each capped group is a seeded random subset kept in its
    original order (the normal group is drawn first, from one generator).
    """
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for label, cap in ((0, n_normal), (1, n_anomalous)):
        idx = torch.nonzero(test_y == label).squeeze(1)
        if cap is not None and cap < len(idx):
            idx = idx[torch.randperm(len(idx), generator=g)[:cap]].sort().values
        out.append(idx)
    return torch.cat(out)


def pre_crop_size(size: int) -> int:
    """The size images are resized to before a random ``size`` crop (§4.2.1: 256 → 292, 224 → 256)."""
    return {256: 292, 224: 256}.get(int(size), int(round(size * 292 / 256)))


def hflip_ok(name: str) -> bool:
    """Whether horizontal flips are a valid augmentation for dataset ``name`` (§4.2.1)."""
    kind, cls = parse_name(name)
    return f"{kind}:{cls}" not in NO_HFLIP


@timed("data")
def per_class(name: str, size: int = 256, seed: int = 0, calib_fraction: float = 0.25,
              root: str | os.PathLike | None = None, *, crop: bool = False, progress: bool = True) -> PerClass:
    """Per-class protocol on ``mvtec:<class>``, ``mpdd:<class>`` or ``textures:<class>`` (thesis §4.2.1).

    Test images and masks are resized to ``size`` without cropping (§4.2.2). Training
    and calibration images are resized to ``size`` too, or with ``crop=True`` to
    :func:`pre_crop_size` (292 for 256) for a random ``size`` crop at training time
    (``Augment(crop=size)``).
    """
    kind, cls = parse_name(name)
    if cls is None:
        raise DataError(f"per_class needs mvtec:<class>, mpdd:<class> or textures:<class>, got {name!r}; "
                        "use one_vs_all for labelled datasets")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise DataError(f"size must be an integer >= 8, got {size!r}")
    _check_fraction(calib_fraction)
    test = load(name, train=False, root=root, size=size, progress=progress)
    train = load(name, train=True, root=root, size=pre_crop_size(size) if crop else size, progress=progress)
    tr, ca = split_indices(len(train), seed, calib_fraction)
    return PerClass(train=train.images[tr], calib=train.images[ca], full_train=train.images,
                    test_x=test.images, test_y=(test.labels != 0).long(), test_masks=test.masks,
                    defect_types=tuple(test.classes[k] for k in test.labels.tolist()),
                    name=f"{kind}:{cls}")
