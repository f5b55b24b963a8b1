"""Procedural textures with injected defects and exact masks: an offline stand-in for MVTec AD.

MVTec AD and MPDD (thesis §4.2.1) cannot be downloaded at run time, so localization
chapters default to a small synthetic dataset in the **MVTec folder layout** (read by
the same loader, ``calad.data.load("textures:<class>")``). Each class is a stationary
texture; its test set adds four defect types, each drawn with a binary mask of exactly
the pixels it changed:

==========  ============================================================================
class       texture                                                    (all RGB, seeded)
==========  ============================================================================
clouds      1/f² spectral noise (§3.4's generator at a fixed slope), sandy palette
stripes     a sinusoidal grating with a jittered orientation, blue palette
weave       two orthogonal gratings multiplied (a woven look), brown palette
dots        a jittered lattice of round dots, green palette
marble      sine veins warped by spectral turbulence, grey palette
==========  ============================================================================

defects: ``scratch`` (a thin bright or dark curve), ``blob`` (an irregular stain),
``color`` (a tinted spot), ``hole`` (a dark disc). Generation is seeded per class and
image; a class folder is complete when its ``manifest.json`` exists and matches, and
:func:`ensure_textures` regenerates missing or incomplete classes.
"""
from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..paths import cache_dir
from ..progress import bar as progress_bar

__all__ = ["TEXTURE_CLASSES", "DEFECT_TYPES", "DEFAULTS", "make_defect_textures", "ensure_textures",
           "texture_image", "add_defect"]

TEXTURE_CLASSES = ("clouds", "stripes", "weave", "dots", "marble")
DEFECT_TYPES = ("scratch", "blob", "color", "hole")
DEFAULTS = {"n_train": 120, "n_test": 60, "size": 256}
_VERSION = 1
_PALETTES = {"clouds": ((0.45, 0.36, 0.24), (0.93, 0.84, 0.66)), "stripes": ((0.10, 0.20, 0.42), (0.62, 0.76, 0.92)),
             "weave": ((0.28, 0.17, 0.09), (0.80, 0.62, 0.40)), "dots": ((0.16, 0.36, 0.18), (0.78, 0.90, 0.62)),
             "marble": ((0.35, 0.35, 0.37), (0.93, 0.93, 0.91))}


def _spectral_noise(rng: np.random.Generator, s: int, slope: float) -> np.ndarray:
    f = np.fft.fftfreq(s)
    r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    r[0, 0] = 1.0
    mag = r ** (-slope)
    mag[0, 0] = 0.0
    x = np.fft.ifft2(mag * np.exp(2j * np.pi * rng.random((s, s)))).real
    return (x - x.mean()) / (x.std() + 1e-12)


def _colourise(v: np.ndarray, cls: str) -> np.ndarray:
    lo, hi = (np.asarray(c, dtype=np.float64) for c in _PALETTES[cls])
    v = np.clip(v, 0, 1)[..., None]
    return lo + (hi - lo) * v


def texture_image(cls: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One defect-free texture of class ``cls``, ``float64 (size, size, 3)`` in [0, 1]."""
    s = size
    yy, xx = np.mgrid[0:s, 0:s] / s
    grain = 0.05 * _spectral_noise(rng, s, 1.0)
    if cls == "clouds":
        v = 0.5 + 0.18 * _spectral_noise(rng, s, rng.uniform(1.8, 2.2))
    elif cls == "stripes":
        th = np.deg2rad(30 + rng.normal(0, 2))
        f = rng.uniform(9, 11)
        v = 0.5 + 0.4 * np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)) + rng.uniform(0, 2 * np.pi))
    elif cls == "weave":
        f = rng.uniform(11, 13)
        a = np.abs(np.sin(np.pi * f * xx + rng.uniform(0, np.pi)))
        b = np.abs(np.sin(np.pi * f * yy + rng.uniform(0, np.pi)))
        v = 0.15 + 0.8 * np.where(np.sin(np.pi * f * (xx + yy)) > 0, a, b) ** 0.7
    elif cls == "dots":
        f = rng.uniform(7, 9)
        u = (xx * f + rng.uniform(0, 1)) % 1 - 0.5
        w = (yy * f + rng.uniform(0, 1)) % 1 - 0.5
        d = np.sqrt(u ** 2 + w ** 2) + 0.02 * _spectral_noise(rng, s, 2.0)
        v = 0.2 + 0.65 * (1 / (1 + np.exp((d - 0.25) * 40)))
    elif cls == "marble":
        turb = _spectral_noise(rng, s, 2.0)
        v = 0.55 + 0.35 * np.sin(2 * np.pi * (rng.uniform(3, 4) * xx + 0.35 * turb) + rng.uniform(0, 2 * np.pi)) ** 3
    else:
        raise ValueError(f"unknown texture class {cls!r}; choose one of: {', '.join(TEXTURE_CLASSES)}")
    return np.clip(_colourise(v + grain, cls), 0, 1)


def _region(rng: np.random.Generator, s: int, rmin: float, rmax: float, rough: float) -> np.ndarray:
    """An irregular elliptical region (boolean mask) of radius ``[rmin, rmax]·s``."""
    cy, cx = rng.uniform(0.2, 0.8, size=2) * s
    ry, rx = rng.uniform(rmin, rmax, size=2) * s
    th = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    d = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    if rough > 0:
        d = d + rough * _spectral_noise(rng, s, 2.5)
    m = d < 1.0
    if not m.any():
        m[int(cy), int(cx)] = True
    return m


def add_defect(img: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``img`` with one defect of type ``kind`` and the boolean mask of the pixels it changed."""
    s = img.shape[0]
    out = img.copy()
    if kind == "scratch":
        p0 = rng.uniform(0.15, 0.85, size=2)
        length, th = rng.uniform(0.3, 0.6), rng.uniform(0, 2 * np.pi)
        p2 = np.clip(p0 + length * np.array([np.cos(th), np.sin(th)]), 0.05, 0.95)
        p1 = (p0 + p2) / 2 + rng.uniform(-0.2, 0.2) * length * np.array([-np.sin(th), np.cos(th)])
        p0, p1, p2 = p0 * s, p1 * s, p2 * s
        t = np.linspace(0, 1, 8 * s)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
        m = np.zeros((s, s), bool)
        ij = np.clip(np.round(pts).astype(int), 0, s - 1)
        m[ij[:, 0], ij[:, 1]] = True
        width = max(1, int(round(s / 128 * rng.uniform(0.5, 1.5))))
        m = ndimage.binary_dilation(m, iterations=width)
        c = 0.95 if rng.random() < 0.5 else 0.05
        out[m] = 0.15 * img[m] + 0.85 * c
    elif kind == "blob":
        m = _region(rng, s, 0.05, 0.12, 0.15)
        shift = rng.choice([-0.35, 0.35])
        out[m] = np.clip(img[m] * 0.6 + 0.2 + shift, 0, 1)
    elif kind == "color":
        m = _region(rng, s, 0.04, 0.09, 0.05)
        tint = np.array([(0.95, 0.15, 0.1), (0.1, 0.8, 0.95), (0.95, 0.85, 0.05)][rng.integers(3)])
        out[m] = 0.35 * img[m] + 0.65 * tint
    elif kind == "hole":
        m = _region(rng, s, 0.03, 0.07, 0.0)
        out[m] = 0.04 + 0.03 * rng.random((int(m.sum()), 1))
    else:
        raise ValueError(f"unknown defect type {kind!r}; choose one of: {', '.join(DEFECT_TYPES)}")
    return out, m


def _save(path: Path, a: np.ndarray) -> None:
    mode = "L" if a.ndim == 2 else "RGB"
    Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8), mode).save(path, compress_level=1)


def _manifest(cls: str, n_train: int, n_test: int, size: int, seed: int) -> dict:
    return {"version": _VERSION, "class": cls, "n_train": n_train, "n_test": n_test, "size": size, "seed": seed}


def _complete(folder: Path, want: dict | None = None) -> bool:
    try:
        have = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if want is not None and {k: have.get(k) for k in want} != want:
        return False
    n_train = len(list((folder / "train" / "good").glob("*.png")))
    n_test = len(list((folder / "test").glob("*/*.png")))
    n_mask = len(list((folder / "ground_truth").glob("*/*_mask.png")))
    n_good = len(list((folder / "test" / "good").glob("*.png")))
    return n_train == have.get("n_train") and n_test == have.get("n_test") and n_mask == n_test - n_good


def _write_class(folder: Path, cls: str, n_train: int, n_test: int, size: int, seed: int, bar) -> None:
    tmp = folder.parent / f".{cls}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    key = zlib.crc32(cls.encode())
    (tmp / "train" / "good").mkdir(parents=True)
    for i in range(n_train):
        _save(tmp / "train" / "good" / f"{i:03d}.png", texture_image(cls, np.random.default_rng([seed, key, 0, i]), size))
        bar.update()
    n_good = max(1, n_test // 3)
    for i in range(n_test):
        rng = np.random.default_rng([seed, key, 1, i])
        img = texture_image(cls, rng, size)
        kind = "good" if i < n_good else DEFECT_TYPES[(i - n_good) % len(DEFECT_TYPES)]
        (tmp / "test" / kind).mkdir(parents=True, exist_ok=True)
        if kind != "good":
            img, mask = add_defect(img, kind, rng)
            (tmp / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
            _save(tmp / "ground_truth" / kind / f"{i:03d}_mask.png", mask.astype(np.float64))
        _save(tmp / "test" / kind / f"{i:03d}.png", img)
        bar.update()
    (tmp / "manifest.json").write_text(json.dumps(_manifest(cls, n_train, n_test, size, seed), indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def make_defect_textures(root=None, classes=None, n_train: int = DEFAULTS["n_train"],
                         n_test: int = DEFAULTS["n_test"], size: int = DEFAULTS["size"], seed: int = 0,
                         *, progress: bool = True) -> Path:
    """Write texture classes in the MVTec layout under ``root`` (default ``<cache>/textures``); return ``root``.

    A class already complete with the same parameters is kept; otherwise it is
    (re)generated into a temporary folder and moved into place, so an interrupted run
    never leaves a folder that looks complete.
    """


    root = Path(root) if root is not None else cache_dir() / "textures"
    classes = list(TEXTURE_CLASSES if classes is None else ([classes] if isinstance(classes, str) else classes))
    bad = [c for c in classes if c not in TEXTURE_CLASSES]
    if bad:
        raise ValueError(f"unknown texture class {bad[0]!r}; choose from: {', '.join(TEXTURE_CLASSES)}")
    for name, v, lo in (("n_train", n_train, 4), ("n_test", n_test, len(DEFECT_TYPES) + 1), ("size", size, 16)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    todo = [c for c in classes if not _complete(root / c, _manifest(c, n_train, n_test, size, seed))]
    if todo:
        root.mkdir(parents=True, exist_ok=True)
        with progress_bar(total=len(todo) * (n_train + n_test), desc="defect textures", disable=not progress,
                  leave=False) as bar:
            for c in todo:
                _write_class(root / c, c, n_train, n_test, size, seed, bar)
    return root


def ensure_textures(root, classes=None, *, progress: bool = True) -> Path:
    """Generate any class under ``root`` that is missing (with :data:`DEFAULTS`) or incomplete (as recorded)."""
    root = Path(root)
    classes = TEXTURE_CLASSES if classes is None else classes
    for c in classes:
        if _complete(root / c):
            continue
        try:   # an interrupted or damaged class is rebuilt with the parameters it recorded
            have = json.loads((root / c / "manifest.json").read_text())
            kw = {k: int(have[k]) for k in ("n_train", "n_test", "size", "seed")}
        except (OSError, ValueError, KeyError, TypeError):
            kw = dict(DEFAULTS)
        make_defect_textures(root, [c], progress=progress, **kw)
    return root
