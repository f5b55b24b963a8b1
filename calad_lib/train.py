"""Training the base models (thesis §4.2.1) with tensors on the device and a model cache.

Adam with learning rate 1e-4 and no weight decay, the rate divided by 10 at each
milestone (100 and 150 of 200 epochs; 200 and 250 of 300 for MVTec AD / MPDD), batches
of 128; supervised losses draw each batch half from the normal data and half from the
outlier-exposure (OE) data (labels 0 and 1). Both are augmented on the device with
:class:`calad_lib.data.Augment` (colour jitter, Gaussian noise, horizontal flips). The
z-score statistics are those of the given training images (the 3/4 training split or
the full training data, §4.2.1). SVDD's centre c is the mean output of an initial
forward pass over the training data (batch statistics, no augmentation).

A trained model lives in the one model cache (:func:`calad_lib.runs.cached_fit`), keyed by
the whole :class:`TrainConfig`, fingerprints (SHA-256) of the training and OE tensors,
:data:`CACHE_VERSION` and a fingerprint of the trainer's code (:data:`CODE`). A rerun loads it; a
file that cannot be read or whose stored configuration or fingerprints differ is reported in one
line and retrained.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from . import losses as _losses
from .config import check_config
from .data import Augment
from .device import get_device, seed_everything
from .progress import Epochs
from .provenance import code_fingerprint
from .runs.cache import CacheWarning, cached_fit, fingerprint, load_model, model_path

__all__ = ["TrainConfig", "train", "default_milestones", "AnomalyDraws", "load_cached", "cache_path", "fingerprint",
           "CACHE_VERSION", "CacheWarning",
           "DATASETS"]

#: bump to retire cached models by hand; any change to the code in :data:`CODE` retires them too
CACHE_VERSION = 1
#: the code a trained model depends on: its fingerprint is part of the cache key
CODE = ("calad_lib.train", "calad_lib.nets", "calad_lib.losses", "calad_lib.data.augment")
#: dataset kinds a configuration may name (``mvtec:bottle`` style names are accepted too)
DATASETS = ("fashion_mnist", "cifar10", "cifar100", "mvtec", "mpdd", "textures", "custom")


def default_milestones(epochs: int) -> tuple[int, ...]:
    """The thesis' schedule scaled to ``epochs``: the rate drops at half and three quarters (100, 150 of 200)."""
    return tuple(sorted({m for m in (epochs // 2, 3 * epochs // 4) if m >= 1}))


def _fail(msg: str):
    raise ValueError(msg)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained base model (validated on construction).

    ``split`` (``"train"``: the 3/4 split, to be post-hoc calibrated; ``"full"``),
    ``normal_class`` and ``oe_source`` label the data given to :func:`train` (whose
    fingerprints are part of the cache key too). ``jitter``, ``noise_std``, ``hflip`` and
    ``crop`` configure the augmentation; ``crop`` (e.g. 256 for MVTec images stored at 292)
    makes the model's input ``crop``×``crop`` (random crops in training). ``amp`` trains
    with bfloat16 autocast on CUDA. ``net``, ``rep_dim``, ``gauss_std`` and ``weights``
    (a local VGG11-BN file for FCDD) are passed to :func:`calad_lib.losses.build_model`.
    """

    loss: str
    dataset: str
    normal_class: int | str = 0
    seed: int = 0
    epochs: int = 200
    milestones: tuple[int, ...] = (100, 150)
    lr: float = 1e-4
    batch_size: int = 128
    weight_decay: float = 0.0
    split: str = "train"
    oe_source: str | None = None
    augment: bool = True
    jitter: float = 0.1
    noise_std: float = 0.01
    hflip: bool = True
    crop: int | None = None
    amp: bool = False
    net: str | None = None
    rep_dim: int | None = None
    gauss_std: float | None = None
    weights: str | None = None

    def __post_init__(self):
        check_config(self, "train")            # ranges: params/schema/configs/train.yaml
        if self.dataset.partition(":")[0] not in DATASETS:
            _fail(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)} (optionally 'kind:class')")
        if self.loss in _losses.SUPERVISED and self.batch_size < 4:
            _fail(f"batch_size must be >= 4 for supervised losses (half of each batch is OE), got {self.batch_size}")
        ms = tuple(int(m) for m in self.milestones)
        if list(ms) != sorted(set(ms)):
            _fail(f"milestones must be increasing epochs, got {self.milestones!r}")
        object.__setattr__(self, "milestones", ms)
        if self.weights is not None and self.loss != "fcdd":
            _fail("weights (a local VGG11-BN file) only applies to the fcdd loss; set weights=None")

    @classmethod
    def from_params(cls, params: Mapping, **fields) -> "TrainConfig":
        """The configuration of ``params`` (validated chapter parameters or another run configuration, a
        mapping or a dataclass): every field of :class:`TrainConfig` found there, ``fields`` overriding."""
        values = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in values.items() if k in names}, **fields})

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


# --- cache -------------------------------------------------------------------------------
def _weights_fingerprint(path: str | None) -> str | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        _fail(f"FCDD weights file {path!r} does not exist; give a local VGG11-BN state dict or weights=None")
    h = hashlib.sha256(str(p.stat().st_size).encode())
    with open(p, "rb") as fh:
        h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def _identity(cfg: TrainConfig, normal, oe) -> dict:
    uses_oe = cfg.loss in _losses.SUPERVISED
    return {"version": CACHE_VERSION, "code": code_fingerprint(*CODE), "config": cfg.as_dict(),
            "data": fingerprint(normal),
            "oe": fingerprint(oe) if uses_oe else None, "weights": _weights_fingerprint(cfg.weights)}


def cache_path(cfg: TrainConfig, normal: torch.Tensor, oe: torch.Tensor | None = None) -> Path:
    """Where the model of ``cfg`` trained on ``normal`` (and ``oe``) is cached."""
    return model_path(cfg.loss, _identity(cfg, normal, oe))


def _build(payload: dict) -> torch.nn.Module:
    spec = dict(payload["spec"])
    spec["in_shape"] = tuple(spec["in_shape"])
    return _losses.build_model(**spec)


def _check_data(cfg: TrainConfig, normal, oe) -> None:
    if not isinstance(normal, torch.Tensor) or normal.ndim != 4 or normal.shape[0] < 2:
        _fail(f"normal must be a float tensor (N >= 2, C, H, W) of images in [0, 1], got "
              f"{type(normal).__name__} {tuple(getattr(normal, 'shape', ()))}")
    if not normal.is_floating_point():
        _fail(f"normal must hold floats in [0, 1], got dtype {normal.dtype}; divide uint8 images by 255")
    lo, hi = torch.aminmax(normal.detach())
    if lo < 0 or hi > 1 or not torch.isfinite(lo + hi):
        _fail(f"normal images must lie in [0, 1] (got values in [{float(lo):.3g}, {float(hi):.3g}]); "
              f"pass raw images, the model z-scores them itself")
    if cfg.crop is not None and cfg.crop > min(normal.shape[-2:]):
        _fail(f"crop {cfg.crop} is larger than the images {tuple(normal.shape[-2:])}")
    if cfg.loss in _losses.SUPERVISED:
        if oe is None:
            _fail(f"loss {cfg.loss!r} is trained with outlier exposure; pass oe= images shaped like the normal ones")
        if (not isinstance(oe, torch.Tensor) or oe.ndim != 4 or oe.shape[1:] != normal.shape[1:] or len(oe) < 1
                or not oe.is_floating_point()):
            _fail(f"oe must be a float tensor (M, {', '.join(map(str, normal.shape[1:]))}) in [0, 1], got "
                  f"{getattr(oe, 'dtype', type(oe).__name__)} {tuple(getattr(oe, 'shape', ()))}")
        lo, hi = torch.aminmax(oe.detach())
        if lo < 0 or hi > 1:
            _fail(f"oe images must lie in [0, 1] (got values in [{float(lo):.3g}, {float(hi):.3g}])")


def load_cached(cfg: TrainConfig, normal: torch.Tensor, oe: torch.Tensor | None = None, *,
                device=None) -> torch.nn.Module | None:
    """The cached model of ``cfg`` on this data (eval mode), or ``None`` if there is no usable one."""
    _check_data(cfg, normal, oe)
    ident = _identity(cfg, normal, oe)
    return load_model(model_path(cfg.loss, ident), ident, _build, get_device(device))


def train(cfg: TrainConfig, normal: torch.Tensor, oe: torch.Tensor | None = None, *, progress: bool = True,
          device=None, cache: bool = True) -> torch.nn.Module:
    """Train (or load from the cache) the base model of ``cfg`` on ``normal`` images ``(N, C, H, W)`` in [0, 1].

    ``oe``: outlier-exposure images of the same shape, required by supervised losses
    (``hsc``, ``logistic``, ``fcdd``, ``unet``) and ignored by the others. Returns the
    model in eval mode on ``device`` (default :func:`calad_lib.device.get_device`), with
    ``model.fit_info`` (:func:`calad_lib.runs.cached_fit`): ``cached``, and from the run that
    trained it ``epoch_seconds``, ``images_per_epoch``, ``device`` and ``threads``.
    """
    if not isinstance(cfg, TrainConfig):
        _fail(f"cfg must be a calad.train.TrainConfig, got {type(cfg).__name__}")
    _check_data(cfg, normal, oe)
    dev = get_device(device)
    oe = oe if cfg.loss in _losses.SUPERVISED else None
    model = cached_fit(cfg.loss, _identity(cfg, normal, oe) if cache else {}, _build,
                       lambda: _fit(cfg, normal, oe, dev, progress), device=dev, cache=cache,
                       extra=lambda model: {"spec": model.spec})
    return model.to(memory_format=torch.channels_last)   # trained and evaluated so: faster convolutions, same weights


# --- the training loop ---------------------------------------------------------------------
def _center_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return x
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top:top + size, left:left + size]


def _make_augment(cfg: TrainConfig):
    """The batch augmentation of §4.2.1 (``None`` when ``cfg.augment`` is off)."""
    if not cfg.augment:
        return None
    return Augment(jitter=cfg.jitter, noise_std=cfg.noise_std, hflip=cfg.hflip, crop=cfg.crop)


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``size``; a last batch of one sample joins the one before (batch norm)."""
    bounds = list(range(0, n, size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds.pop(-2)
    return list(zip(bounds[:-1], bounds[1:]))


class AnomalyDraws:
    """The anomalous half of supervised batches: seeded permutations of ``n`` anomalies, ``need`` at a time.

    A new round of permutations is drawn (from ``generator``) whenever too few indices are left, so every
    anomaly is used once per round and batches never wait for the end of an epoch.
    """

    def __init__(self, n: int, generator: torch.Generator, device):
        self.n, self.generator, self.device = int(n), generator, device
        self.order: torch.Tensor | None = None
        self.pos = 0

    def take(self, need: int) -> torch.Tensor:
        if self.order is None or self.pos + need > len(self.order):
            reps = math.ceil(need / self.n) + 1
            rounds = [torch.randperm(self.n, generator=self.generator) for _ in range(reps)]
            self.order = torch.cat(rounds).to(self.device)
            self.pos = 0
        idx = self.order[self.pos:self.pos + need]
        self.pos += need
        return idx


def _initial_center(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean network output over ``x`` in training mode (batch statistics); leaves the model unchanged."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    total = None
    with torch.no_grad():
        for a, b in _batches(len(x), batch_size):
            s = model.head_features(x[a:b]).sum(0)
            total = s if total is None else total + s
    model.load_state_dict(saved)
    return total / len(x)


def _fit(cfg: TrainConfig, normal: torch.Tensor, oe: torch.Tensor | None, device, progress: bool):
    g = seed_everything(cfg.seed)                                    # CPU generator: orders
    g_aug = torch.Generator(device=device).manual_seed(cfg.seed + 1)  # device generator: augmentation
    x = normal.to(device=device, dtype=torch.float32)
    xo = oe.to(device=device, dtype=torch.float32) if oe is not None else None
    supervised = xo is not None
    in_shape = (x.shape[1], cfg.crop or x.shape[2], cfg.crop or x.shape[3])
    grayscale = cfg.loss in ("ssim", "ssim_pixel")
    mean, std = _losses.input_stats(_center_crop(x, cfg.crop), grayscale)
    model = _losses.build_model(cfg.loss, in_shape, mean, std, cfg.dataset, net=cfg.net, rep_dim=cfg.rep_dim,
                                gauss_std=cfg.gauss_std, weights=cfg.weights).to(device)
    model.to(memory_format=torch.channels_last)   # faster convolutions (oneDNN / cuDNN), same weights
    augment = _make_augment(cfg)
    if cfg.loss == "svdd":
        model.set_center(_initial_center(model, _center_crop(x, cfg.crop), cfg.batch_size))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=0.1)
    per_side = cfg.batch_size // 2 if supervised else cfg.batch_size
    batches = _batches(len(x), per_side)
    amp = cfg.amp and device.type == "cuda"
    draws = AnomalyDraws(len(xo), g, device) if supervised else None
    model.train()
    loop = Epochs(cfg.epochs, desc=f"{cfg.loss} {cfg.dataset}:{cfg.normal_class} seed {cfg.seed}",
                  progress=progress, device=device)
    for _ in loop:
        order = torch.randperm(len(x), generator=g).to(device)
        total = torch.zeros((), device=device)
        for a, b in batches:
            xb = x[order[a:b]]
            if supervised:
                need = b - a
                xb = torch.cat([xb, xo[draws.take(need)]])
                yb = torch.cat([torch.zeros(need, device=device), torch.ones(need, device=device)])
            else:
                yb = torch.zeros(len(xb), device=device)
            xb = augment(xb, generator=g_aug) if augment is not None else _center_crop(xb, cfg.crop)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = model.loss(xb, yb).float().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        sched.step()
        if progress:
            loop.show(loss=f"{float(total) / len(batches):.4g}")
    model.eval()
    model.fit_info = {"epoch_seconds": loop.seconds, "images_per_epoch": 2 * len(x) if supervised else len(x)}
    return model
