"""One loader for every dataset of the book, offline (thesis §4.2.1).

``load(name, train)`` returns a :class:`Dataset` of raw ``float32`` images in [0, 1]:

==========================  =======================================================================
name                        read from
==========================  =======================================================================
``fashion_mnist``           ``<root>/fashion-mnist`` or Debian's ``/usr/share/datasets/fashion-mnist``
``cifar10``, ``cifar100``   torchvision's pickle folders under ``<root>``
``mvtec:<class>``           ``<root>/mvtec_ad/<class>`` (MVTec folder layout)
``mpdd:<class>``            ``<root>/mpdd/<class>`` (same layout)
``textures:<class>``        ``<root>/textures/<class>``; by default ``<cache>/textures``, generated on
                            first use by :func:`calad_lib.synthesis.make_defect_textures`
==========================  =======================================================================

``root`` defaults to :func:`calad_lib.paths.data_dir` (``$CALAD_DATA``). Nothing is
downloaded unless asked (``download=True`` or ``CALAD_DOWNLOAD=1``, Fashion-MNIST and
CIFAR only); missing data raises :class:`DataNotFound` with one line naming the folder
and the files expected. Results are kept in an in-process cache, so repeated calls are
cheap; treat the returned tensors as read-only.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..paths import cache_dir, data_dir, relative
from .cifar import cifar_folder, read_cifar
from .errors import DataError, DataNotFound
from .idx import read_idx
from .mvtec import read_class_folder
from .textures import TEXTURE_CLASSES, ensure_textures
from ..profile import timed

__all__ = ["Dataset", "load", "cache_clear", "names", "parse_name", "class_folder",
           "FASHION_MNIST_CLASSES", "DEBIAN_FASHION_MNIST"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FMNIST_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_PLAIN = ("fashion_mnist", "cifar10", "cifar100")
_PER_CLASS = {"mvtec": "mvtec_ad", "mpdd": "mpdd", "textures": "textures"}
_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist", "fmnist": "fashion_mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100", "mvtec_ad": "mvtec"}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Raw images ``float32 (N, C, H, W)`` in [0, 1], labels ``int64 (N,)`` and class names.

    ``masks`` (``float32 (N, 1, H, W)`` in {0, 1}) is set for the test split of
    per-class datasets (MVTec AD, MPDD, textures) and ``None`` otherwise.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (f"Dataset({len(self)} images {tuple(self.images.shape[1:])}, "
                f"{len(self.classes)} classes{', masks' if self.masks is not None else ''})")


def names() -> str:
    """The dataset names :func:`load` accepts, as one line."""
    return "fashion_mnist, cifar10, cifar100, mvtec:<class>, mpdd:<class>, textures:<class>"


def parse_name(name: str) -> tuple[str, str | None]:
    """``"mvtec:bottle"`` → ``("mvtec", "bottle")``; ``"cifar10"`` → ``("cifar10", None)``."""
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name must be a non-empty string, got {name!r}; choose one of: {names()}")
    kind, _, cls = name.strip().partition(":")
    kind = _ALIASES.get(kind.lower(), kind.lower())
    if kind in _PLAIN and not cls:
        return kind, None
    if kind in _PER_CLASS and cls:
        return kind, cls
    raise DataError(f"unknown dataset {name!r}; choose one of: {names()}")


def _downloads_allowed(download: bool | None) -> bool:
    if download is not None:
        return bool(download)
    return os.environ.get("CALAD_DOWNLOAD", "").lower() in ("1", "true", "yes")


# --- Fashion-MNIST --------------------------------------------------------------------
def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).exists():
            return folder / name
    return None


def _fmnist_folders(root: Path | None) -> list[Path]:
    if root is not None:
        return [root / "fashion-mnist", root, root / "FashionMNIST" / "raw"]
    base = data_dir()
    return [base / "fashion-mnist", DEBIAN_FASHION_MNIST, base / "FashionMNIST" / "raw"]


def _fashion_mnist(train: bool, root: Path | None, download: bool | None) -> Dataset:
    stems = _FMNIST_FILES[train]
    for folder in _fmnist_folders(root):
        files = [_find_idx(folder, s) for s in stems]
        if all(files):
            break
    else:
        if _downloads_allowed(download):
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(root or data_dir()), train=train, download=True)
            return _fashion_mnist(train, root or data_dir(), download=False)
        where = " or ".join(relative(f) for f in _fmnist_folders(root)[:2])
        raise DataNotFound(f"Fashion-MNIST not found: expected {stems[0]}.gz and {stems[1]}.gz in {where}; "
                           "install Debian's dataset-fashion-mnist, copy the idx .gz files to "
                           "$CALAD_DATA/fashion-mnist, or pass download=True where the network is available")
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise DataError(f"Fashion-MNIST files in {relative(folder)} do not match (images {images.shape}, "
                        f"labels {labels.shape}); replace them with the original downloads")
    x = torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0)
    return Dataset(x, torch.from_numpy(labels.astype(np.int64)), FASHION_MNIST_CLASSES)


# --- CIFAR ------------------------------------------------------------------------------
def _cifar(kind: str, train: bool, root: Path | None, download: bool | None) -> Dataset:
    base = root or data_dir()
    if not cifar_folder(kind, base).exists() and _downloads_allowed(download):
        from torchvision import datasets as tvd

        (tvd.CIFAR10 if kind == "cifar10" else tvd.CIFAR100)(str(base), train=train, download=True)
    x, y, classes = read_cifar(kind, base, train)
    return Dataset(torch.from_numpy(x).float().div_(255.0), torch.from_numpy(y), classes)


# --- per-class folders --------------------------------------------------------------------
def class_folder(kind: str, cls: str, root: Path | None) -> Path:
    """The folder of class ``cls`` of a per-class dataset (``mvtec``, ``mpdd``, ``textures``)."""
    if kind == "textures" and root is None:
        return cache_dir() / "textures" / cls
    return (root or data_dir()) / _PER_CLASS[kind] / cls


def _per_class(kind: str, cls: str, train: bool, root: Path | None, size: int | None, progress: bool) -> Dataset:
    folder = class_folder(kind, cls, root)
    if kind == "textures":
        if cls not in TEXTURE_CLASSES and not folder.is_dir():
            raise DataError(f"unknown texture class {cls!r}; choose one of: {', '.join(TEXTURE_CLASSES)}")
        if cls in TEXTURE_CLASSES:
            ensure_textures(folder.parent, [cls], progress=progress)
    x, y, classes, masks = read_class_folder(folder, train, size, label=f"{kind}:{cls}", progress=progress)
    return Dataset(x, y, classes, masks)


_CACHE: "OrderedDict[tuple, Dataset]" = OrderedDict()
_CACHE_SIZE = 16


def _load_uncached(kind: str, cls: str | None, train: bool, root: Path | None, size: int | None,
                   download: bool | None, progress: bool) -> Dataset:
    if kind == "fashion_mnist":
        ds = _fashion_mnist(train, root, download)
    elif kind in ("cifar10", "cifar100"):
        ds = _cifar(kind, train, root, download)
    else:
        return _per_class(kind, cls, train, root, size, progress)
    if size is not None and ds.images.shape[-1] != size:
        x = F.interpolate(ds.images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        ds = Dataset(x.clamp_(0, 1), ds.labels, ds.classes)
    return ds


@timed("data")
def load(name: str, train: bool = True, root: str | os.PathLike | None = None, *, size: int | None = None,
         download: bool | None = None, progress: bool = True) -> Dataset:
    """Load dataset ``name`` (see the module docstring) as a :class:`Dataset`.

    ``train`` picks the training or test split; ``root`` replaces the data root
    (``$CALAD_DATA``); ``size`` resizes to ``size``×``size`` (default: native size for
    Fashion-MNIST and CIFAR, 256 for per-class datasets, thesis §4.2.1).
    """
    kind, cls = parse_name(name)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DataError(f"size must be a positive integer or None, got {size!r}")
    if kind in _PER_CLASS and size is None:
        size = 256
    r = Path(root).expanduser().resolve() if root is not None else None
    where = str(r) if r is not None else (str(data_dir()), str(cache_dir()))
    key = (kind, cls, bool(train), where, size)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    ds = _load_uncached(kind, cls, bool(train), r, size, download, bool(progress))
    _CACHE[key] = ds
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return ds


def cache_clear() -> None:
    """Forget the datasets kept in memory by :func:`load`."""
    _CACHE.clear()
