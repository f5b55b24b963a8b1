"""Offline outlier exposure (OE): natural images as auxiliary anomalies (thesis §4.2.1).

The thesis exposes models to CIFAR-100 (Fashion-MNIST, CIFAR-10) or ImageNet-21k
(MVTec AD, MPDD) and keeps the OE used in training disjoint from the OE used in
post-hoc calibration. Without downloads calad's default source is ``"photos"``: the
photographs that ship inside the scikit-image and scikit-learn wheels. The *source
photographs* (not the crops) are divided between three disjoint parts:

* ``"train"`` — OE for training,
* ``"calib"`` — OE for post-hoc calibration,
* ``"test"`` — held-out anomalies for evaluating calibration (§4.2.2),

and each OE image is a random crop at a random scale (side ``U_log[0.08, 0.6]`` of the
photograph's shorter side), resized with area averaging (``torchvision.ops.roi_align``)
to the target shape and converted to grayscale (ITU-R 601 luma) for one channel.

Other sources: ``"cifar100"`` reads ``<data_dir>/cifar-100-python`` (parts: the training
split; the first and second half of the test split), and a path to a folder of images
(files sorted by name and dealt round-robin 2:1:1 to train/calib/test); both are
resized whole, as the thesis did, unless ``crop=True``.
"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_sample_image
from torchvision.ops import roi_align

from ..data.augment import grayscale
from ..data.cifar import read_cifar
from ..data.mvtec import IMAGE_SUFFIXES
from ..device import get_device
from ..paths import data_dir
from .spectral import _shape
from ..profile import timed

__all__ = ["PHOTO_PARTS", "PARTS", "oe_images", "photographs"]

PARTS = ("train", "calib", "test")
#: photographs per part; every name loads offline (skimage.data needs no pooch for these)
PHOTO_PARTS = {
    "train": ("skimage:astronaut", "skimage:coffee", "skimage:rocket", "skimage:grass",
              "skimage:coins", "skimage:camera", "sklearn:china.jpg"),
    "calib": ("skimage:chelsea", "skimage:stereo_motorcycle", "sklearn:flower.jpg", "skimage:brick",
              "skimage:moon", "skimage:page"),
    "test": ("skimage:immunohistochemistry", "skimage:hubble_deep_field", "skimage:retina",
             "skimage:gravel", "skimage:clock", "skimage:text", "skimage:cell"),
}
_SCALE = (0.08, 0.6)


def _to_rgb_tensor(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = a[..., :3]
    t = torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1).float()
    return t / 255.0 if a.dtype == np.uint8 else t.clamp(0, 1)


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> torch.Tensor:
    lib, _, item = name.partition(":")
    if lib == "skimage":
        a = getattr(skimage.data, item)()
        a = a[0] if isinstance(a, tuple) else a
    else:
        a = load_sample_image(item)
    return _to_rgb_tensor(a)


def photographs(part: str) -> list[torch.Tensor]:
    """The source photographs of ``part`` as RGB tensors ``(3, H, W)`` in [0, 1]."""
    _check_part(part)
    return [_photo(n) for n in PHOTO_PARTS[part]]


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"unknown OE part {part!r}; choose one of: {', '.join(PARTS)} "
                         "(train and calib are disjoint, thesis §4.2.1)")


def _read_image_file(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return _to_rgb_tensor(np.asarray(im.convert("RGB")))


def _folder_files(folder: Path, part: str) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    deal = {"train": (0, 1), "calib": (2,), "test": (3,)}[part]
    mine = [p for i, p in enumerate(files) if i % 4 in deal]
    if not mine:
        raise FileNotFoundError(f"OE folder {folder.name} has {len(files)} image(s), none for part {part!r}; "
                                "it needs at least 4 images (dealt 2:1:1 to train/calib/test)")
    return mine


def _crops(sources: list[torch.Tensor], n: int, h: int, w: int, g: torch.Generator, dev) -> torch.Tensor:
    """Random crops with the target aspect ratio at random scales, resized to ``(h, w)``."""
    which = torch.randint(len(sources), (n,), generator=g)
    lo, hi = math.log(_SCALE[0]), math.log(_SCALE[1])
    scale = torch.exp(lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64))
    pos = torch.rand(n, 2, generator=g, dtype=torch.float64)
    out = torch.empty(n, 3, h, w, device=dev)
    for k, photo in enumerate(sources):
        idx = (which == k).nonzero().flatten()
        if idx.numel() == 0:
            continue
        ph, pw = photo.shape[-2:]
        side = scale[idx] * min(ph, pw)
        ch = torch.clamp(side * math.sqrt(h / w), min=min(ph, 4), max=ph)
        cw = torch.clamp(side * math.sqrt(w / h), min=min(pw, 4), max=pw)
        y0, x0 = pos[idx, 0] * (ph - ch), pos[idx, 1] * (pw - cw)
        boxes = torch.stack([torch.zeros_like(x0), x0, y0, x0 + cw, y0 + ch], dim=1).float().to(dev)
        out[idx.to(dev)] = roi_align(photo.unsqueeze(0).to(dev), boxes, (h, w), spatial_scale=1.0,
                                     sampling_ratio=-1, aligned=True)
    return out


def _resize_whole(images: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if images.shape[-2:] == (h, w):
        return images
    return F.interpolate(images, size=(h, w), mode="bilinear", antialias=True, align_corners=False)


@timed("data")
def oe_images(n: int, channels: int = 1, size: int | tuple[int, int] = 28, seed: int = 0, part: str = "train", *,
              source: str | os.PathLike = "photos", crop: bool | None = None, root: str | os.PathLike | None = None,
              device: str | torch.device | None = None) -> torch.Tensor:
    """``n`` outlier-exposure images ``float32 (n, channels, H, W)`` in [0, 1] from ``part`` of ``source``.

    ``source``: ``"photos"`` (default, offline), ``"cifar100"`` (needs the data under
    ``root`` or ``$CALAD_DATA``) or a folder of images. ``crop`` (default: ``True`` for
    photos, ``False`` otherwise) takes random-scale crops instead of whole images.
    """
    n, c, h, w = _shape(n, channels, size)
    if c not in (1, 3):
        raise ValueError(f"OE images have 1 (grayscale) or 3 (RGB) channels, got channels={channels}")
    _check_part(part)
    dev = get_device(device)
    g = torch.Generator().manual_seed(int(seed))
    if source == "photos":
        pool = photographs(part)
        x = _crops(pool, n, h, w, g, dev) if crop in (None, True) else \
            torch.cat([_resize_whole(pool[i].unsqueeze(0).to(dev), h, w)
                       for i in torch.randint(len(pool), (n,), generator=g).tolist()] or
                      [torch.empty(0, 3, h, w, device=dev)])
    elif source == "cifar100":
        images, _, _ = read_cifar("cifar100", Path(root) if root is not None else data_dir(), train=part == "train")
        if part != "train":
            half = len(images) // 2
            images = images[:half] if part == "calib" else images[half:]
        pick = (torch.randperm(len(images), generator=g)[:n] if n <= len(images)
                else torch.randint(len(images), (n,), generator=g))
        chosen = torch.from_numpy(images[pick.numpy()]).float().div_(255.0).to(dev)
        x = _crops(list(chosen), n, h, w, g, dev) if crop else _resize_whole(chosen, h, w)
    else:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise ValueError(f"unknown OE source {str(source)!r}; use 'photos', 'cifar100' or a folder of images")
        files = _folder_files(folder, part)
        if crop:
            x = _crops([_read_image_file(p) for p in files], n, h, w, g, dev)
        else:
            pick = torch.randint(len(files), (n,), generator=g).tolist()
            cache = {i: _resize_whole(_read_image_file(files[i]).unsqueeze(0).to(dev), h, w) for i in set(pick)}
            x = torch.cat([cache[i] for i in pick]) if pick else torch.empty(0, 3, h, w, device=dev)
    if c == 1:
        x = grayscale(x)
    return x.clamp_(0, 1).contiguous()
