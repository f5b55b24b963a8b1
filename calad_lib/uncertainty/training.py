"""Training the energy and MC-dropout models of chapter 08, and every uncertainty method by name.

:func:`fit` trains them as :mod:`calad_lib.train` trains the base models (Adam, learning rate 1e-4,
milestones, batches of 128 half normal and half anomalous, :class:`calad_lib.data.Augment`) and caches
them in the one model cache (:func:`calad_lib.runs.cached_fit`). :func:`fit_method` builds any method of
:data:`METHODS`: logistic, HSC and the ensemble's logistic members come from :func:`calad_lib.train.train`.
Each supervised method needs anomalies in training: outlier exposure (OE) images, or — the "without OE"
variant — another source such as uniform noise, the reference density of the classical calibrated anomaly
detection of Steinwart et al. (thesis §3.1, §3.4).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..data import Augment
from ..detector import AnomalyModel
from ..device import get_device, seed_everything
from ..losses import BaseModel, input_stats
from ..nets import build_net, default_net
from ..progress import Epochs
from ..provenance import code_fingerprint
from ..runs import cached_fit, fingerprint
from ..train import AnomalyDraws, TrainConfig, train
from .methods import Ensemble, EnergyModel, MCDropoutModel

__all__ = ["METHODS", "FitConfig", "fit", "fit_method", "CACHE_VERSION", "CODE"]

METHODS = ("logistic", "hsc", "energy", "mc_dropout", "ensemble")
#: bump when a change to these networks or :func:`fit` makes cached models stale
CACHE_VERSION = 1
#: the code a fitted model (and a run's rows) depend on: its fingerprint keys the cache and the store
CODE = ("calad_lib.uncertainty.methods", "calad_lib.uncertainty.training", "calad_lib.uncertainty.experiment",
        "calad_lib.train", "calad_lib.nets", "calad_lib.losses", "calad_lib.calibration", "calad_lib.metrics",
        "calad_lib.data.augment")


@dataclass(frozen=True)
class FitConfig:
    """What determines a trained energy or MC-dropout model (cf. :class:`calad_lib.train.TrainConfig`).

    ``anomalies`` names the anomaly source (e.g. ``"oe:photos:train"``, ``"uniform_noise"``); its
    tensor's fingerprint is part of the cache key too.
    """

    method: str
    dataset: str = "fashion_mnist"
    normal_class: int = 0
    anomalies: str = "oe"
    seed: int = 0
    epochs: int = 200
    milestones: tuple[int, ...] = (100, 150)
    lr: float = 1e-4
    batch_size: int = 128
    augment: bool = True
    dropout: float = 0.2
    passes: int = 30
    m_in: float = -6.0
    m_out: float = -2.0

    def __post_init__(self):
        if self.method not in ("energy", "mc_dropout"):
            raise ValueError(f"fit trains 'energy' or 'mc_dropout' models, got {self.method!r}; "
                             "logistic, hsc and ensemble members are trained by calad.train.train")
        for name in ("seed", "epochs", "batch_size", "passes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'seed' else 'positive'} integer, got {v!r}")
        if self.batch_size < 4:
            raise ValueError(f"batch_size must be >= 4 (half normal, half anomalous), got {self.batch_size}")
        ms = tuple(int(m) for m in self.milestones)
        if any(m < 1 for m in ms) or list(ms) != sorted(set(ms)):
            raise ValueError(f"milestones must be increasing positive epochs, got {self.milestones!r}")
        object.__setattr__(self, "milestones", ms)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 < self.dropout < 1:
            raise ValueError(f"dropout must lie in (0, 1), got {self.dropout!r}")
        if not self.m_in < self.m_out:
            raise ValueError(f"need m_in < m_out, got {self.m_in}, {self.m_out}")

    def build(self, in_shape, mean=None, std=None) -> BaseModel:
        net = build_net(default_net("hsc", tuple(in_shape), self.dataset), tuple(in_shape))
        if self.method == "energy":
            return EnergyModel(net, in_shape, mean, std, self.m_in, self.m_out)
        return MCDropoutModel(net, in_shape, mean, std, self.dropout, self.passes, self.seed)


def _identity(cfg: FitConfig, normal, anomalies) -> dict:
    d = dataclasses.asdict(cfg)
    d["milestones"] = list(cfg.milestones)
    return {"version": CACHE_VERSION, "code": code_fingerprint(*CODE), "config": d, "data": fingerprint(normal),
            "anomalies": fingerprint(anomalies)}


def _check(normal, anomalies) -> None:
    for what, x in (("normal", normal), ("anomalies", anomalies)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or len(x) < 1 or not x.is_floating_point():
            raise ValueError(f"{what} must be a float image tensor (N, C, H, W) in [0, 1], got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
        lo, hi = torch.aminmax(x.detach())
        if lo < 0 or hi > 1:
            raise ValueError(f"{what} images must lie in [0, 1], got values in [{float(lo):.3g}, {float(hi):.3g}]")
    if normal.shape[1:] != anomalies.shape[1:]:
        raise ValueError(f"anomalies {tuple(anomalies.shape[1:])} must have the normal images' shape "
                         f"{tuple(normal.shape[1:])}")


def _fit(cfg: FitConfig, normal, anomalies, device, progress: bool):
    g = seed_everything(cfg.seed)
    g_aug = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    x, xa = normal.to(device=device, dtype=torch.float32), anomalies.to(device=device, dtype=torch.float32)
    model = cfg.build(x.shape[1:], *input_stats(x)).to(device)
    augment = Augment() if cfg.augment else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=0.1)
    half = cfg.batch_size // 2
    starts = range(0, len(x), half)
    draws = AnomalyDraws(len(xa), g, device)
    model.train()
    loop = Epochs(cfg.epochs, desc=f"{cfg.method} {cfg.dataset}:{cfg.normal_class} {cfg.anomalies}",
                  progress=progress, device=device)
    for _ in loop:
        order = torch.randperm(len(x), generator=g).to(device)
        total = torch.zeros((), device=device)
        for s in starts:
            xb = x[order[s:s + half]]
            need = len(xb)
            xb = torch.cat([xb, xa[draws.take(need)]])
            yb = torch.cat([torch.zeros(need, device=device), torch.ones(need, device=device)])
            if augment is not None:
                xb = augment(xb, generator=g_aug)
            loss = model.loss(xb, yb).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        sched.step()
        if progress:
            loop.show(loss=f"{float(total) / len(starts):.4g}")
    model.fit_info = {"epoch_seconds": loop.seconds, "images_per_epoch": 2 * len(x)}
    return model.eval()


def fit(cfg: FitConfig, normal: torch.Tensor, anomalies: torch.Tensor, *, progress: bool = True, device=None,
        cache: bool = True):
    """Train (or load from the model cache) the energy or MC-dropout model of ``cfg`` (eval mode on ``device``)."""
    if not isinstance(cfg, FitConfig):
        raise ValueError(f"cfg must be a calad.uncertainty.FitConfig, got {type(cfg).__name__}")
    _check(normal, anomalies)
    dev = get_device(device)
    in_shape = normal.shape[1:]
    return cached_fit(cfg.method, _identity(cfg, normal, anomalies), lambda payload: cfg.build(in_shape),
                      lambda: _fit(cfg, normal, anomalies, dev, progress), device=dev, cache=cache)


def fit_method(method: str, normal: torch.Tensor, anomalies: torch.Tensor, *, anomaly_source: str,
               dataset: str = "fashion_mnist", normal_class: int = 0, seed: int = 0, epochs: int = 200,
               milestones=(100, 150), ensemble_size: int = 5, dropout: float = 0.2, passes: int = 30,
               progress: bool = True, device=None) -> AnomalyModel:
    """One trained uncertainty method of :data:`METHODS` on ``normal`` vs ``anomalies`` (eval mode).

    ``anomaly_source`` labels the anomalies in the cache key (e.g. ``"oe:photos:train"``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown uncertainty method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(ensemble_size, bool) or not isinstance(ensemble_size, int) or ensemble_size < 1:
        raise ValueError(f"ensemble_size must be a positive integer, got {ensemble_size!r}")
    _check(normal, anomalies)
    common = dict(dataset=dataset, normal_class=normal_class, epochs=epochs, milestones=tuple(milestones))
    if method in ("energy", "mc_dropout"):
        cfg = FitConfig(method, anomalies=anomaly_source, seed=seed, dropout=dropout, passes=passes, **common)
        return fit(cfg, normal, anomalies, progress=progress, device=device)

    def base(loss: str, s: int):
        cfg = TrainConfig(loss=loss, seed=s, split="train", oe_source=anomaly_source, **common)
        return train(cfg, normal, anomalies, progress=progress, device=device)

    if method == "ensemble":
        return Ensemble([base("logistic", seed + i) for i in range(ensemble_size)]).eval()
    return base(method, seed)
