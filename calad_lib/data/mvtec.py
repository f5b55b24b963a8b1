"""MVTec AD, MPDD and calad's defect textures, read from the MVTec folder layout (thesis §4.2.1).

One class of such a dataset is a folder::

    <class>/train/good/*.png                      normal training images
    <class>/test/good/*.png                       normal test images
    <class>/test/<defect>/*.png                   anomalous test images, one folder per defect type
    <class>/ground_truth/<defect>/<name>_mask.png pixel masks of the anomalous test images

Images are converted to RGB (MVTec's grayscale classes included) and resized to
``size``×``size`` with PIL's antialiased bilinear filter; masks are resized with the
nearest-neighbour filter (the same pixel-centre geometry, so they stay aligned) and
binarised to ``{0, 1}``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..paths import relative
from ..progress import bar as progress_bar
from .errors import DataNotFound

__all__ = ["IMAGE_SUFFIXES", "list_classes", "check_class_folder", "read_class_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def list_classes(dataset_folder: Path) -> list[str]:
    """Class folders (those with ``train/good``) under a dataset folder."""
    if not dataset_folder.is_dir():
        return []
    return sorted(p.name for p in dataset_folder.iterdir() if (p / "train" / "good").is_dir())


def check_class_folder(folder: Path, label: str) -> None:
    """Raise a one-line :class:`DataNotFound` unless ``folder`` holds the MVTec layout."""
    layout = "<class>/train/good/*.png, <class>/test/<defect>/*.png and <class>/ground_truth/<defect>/*_mask.png"
    if not folder.is_dir():
        found = list_classes(folder.parent)
        hint = f"classes found there: {', '.join(found)}" if found else f"expected the layout {layout}"
        raise DataNotFound(f"{label} not found: no folder {relative(folder)}; {hint}")
    for sub in ("train/good", "test"):
        if not (folder / sub).is_dir() or not any((folder / sub).iterdir()):
            raise DataNotFound(f"{label}: {relative(folder / sub)} is missing or empty; expected the layout {layout}")


def _read_image(path: Path, size: int | None) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def _read_mask(path: Path, size: int | None) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("L")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.NEAREST)
        return (np.asarray(im, dtype=np.uint8) > 127)[None]


def _read_all(fn, paths: list[Path], size, progress: bool, desc: str) -> list[np.ndarray]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        it = pool.map(lambda p: fn(p, size), paths)
        return list(progress_bar(it, total=len(paths), desc=desc, disable=not progress or len(paths) < 50, leave=False))


def read_class_folder(folder: Path, train: bool, size: int | None, *, label: str = "dataset",
                      progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], torch.Tensor | None]:
    """Images ``float32 (N, 3, size, size)`` in [0, 1], labels, class names and masks of one class folder.

    ``train=True``: ``train/good`` (labels 0, classes ``("good",)``, masks ``None``).
    ``train=False``: ``test/*``; labels index ``classes = ("good", <defect types sorted>)``;
    masks ``float32 (N, 1, size, size)`` in {0, 1} (zeros for good images).
    """
    check_class_folder(folder, label)
    if train:
        paths, labels, classes = _images_in(folder / "train" / "good"), None, ("good",)
        labels = [0] * len(paths)
    else:
        defects = sorted(p.name for p in (folder / "test").iterdir() if p.is_dir() and p.name != "good")
        classes = ("good", *defects)
        paths, labels = [], []
        for k, d in enumerate(classes):
            sub = folder / "test" / d
            found = _images_in(sub) if sub.is_dir() else []
            paths += found
            labels += [k] * len(found)
    if not paths:
        raise DataNotFound(f"{label}: no images in {relative(folder / ('train/good' if train else 'test'))}")
    images = _read_all(_read_image, paths, size, progress, f"{label} {'train' if train else 'test'}")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"{label}: images have different sizes {sorted(shapes)[:3]}; pass size= to resize them")
    x = torch.from_numpy(np.stack(images)).float().div_(255.0)
    y = torch.tensor(labels, dtype=torch.int64)
    masks = None
    if not train:
        mask_paths = []
        for p, k in zip(paths, labels):
            if k == 0:
                mask_paths.append(None)
                continue
            mp = folder / "ground_truth" / classes[k] / f"{p.stem}_mask.png"
            if not mp.exists():
                alt = sorted((folder / "ground_truth" / classes[k]).glob(f"{p.stem}*"))
                if not alt:
                    raise DataNotFound(f"{label}: mask {relative(mp)} is missing for test image {p.name}; "
                                       "restore the ground_truth folder")
                mp = alt[0]
            mask_paths.append(mp)
        h, w = x.shape[-2:]
        real = [mp for mp in mask_paths if mp is not None]
        read = iter(_read_all(_read_mask, real, size, progress, f"{label} masks"))
        m = np.zeros((len(paths), 1, h, w), dtype=np.float32)
        for i, mp in enumerate(mask_paths):
            if mp is not None:
                mk = next(read)
                if mk.shape[-2:] != (h, w):
                    raise ValueError(f"{label}: mask {mp.name} is {mk.shape[-2:]} but its image is {(h, w)}; "
                                     "fix the ground_truth file")
                m[i] = mk
        masks = torch.from_numpy(m)
    return x, y, classes, masks
