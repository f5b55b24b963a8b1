"""Uncertainty methods for one-vs-all anomaly detection, with and without outlier exposure (seed 003).

Every method is an :class:`~calad_lib.detector.AnomalyModel` whose ``η̂`` is read as the
probability that an input is anomalous, so ECE/MCE (thesis §2.4.3) and post-hoc calibration
(§3.2, :func:`calad_lib.calibration.calibrate`) apply to all of them:

==============  ==================================================================  ==========================
method          η̂                                                                   trained by
==============  ==================================================================  ==========================
``logistic``    sigmoid confidence ``σ(z)`` (eq. 2.15)                               :func:`calad_lib.train.train`
``hsc``         ``1 − e^{−v}`` (eq. 4.1)                                             :func:`calad_lib.train.train`
``energy``      ``σ(E(x) − m)``, ``E = −log Σ_j e^{f_j(x)}``, ``m`` between margins   :func:`fit` (squared hinge)
``mc_dropout``  mean of ``σ(z_t)`` over ``T`` dropout masks (Gal & Ghahramani, 2016)  :func:`fit` (logistic loss)
``ensemble``    mean of ``σ(z_m)`` over ``M`` logistic models (Lakshminarayanan et     :func:`calad_lib.train.train`
                al., 2017), seeds ``seed … seed + M − 1``
==============  ==================================================================  ==========================

Chapter 08's experiment (part C) lives here too: :func:`run_experiments` trains every method on
every one-vs-all task without and with OE, calibrates each post hoc (Platt, β) and evaluates it,
storing each run's rows as it finishes (an interrupted run resumes); :func:`summarize`,
:func:`claims`, :func:`regime_table` and :func:`spread_table` turn the rows into the chapter's
tables and verdicts, :func:`reliability_figure` and :func:`ece_figure` into its figures.

Each supervised method needs anomalies in training: outlier exposure (OE) images, or — the
"without OE" variant — another source such as uniform noise, the reference density of the
classical calibrated anomaly detection of Steinwart et al. (thesis §3.1, §3.4).

The energy model follows Liu et al. (2020, §3.2): normal inputs are pushed below ``m_in`` and
anomalies above ``m_out`` by squared hinges; there is no probability in the loss, so its ``η̂`` is a
convention (the logit ``E − (m_in + m_out)/2``) that only post-hoc calibration can make calibrated.
MC dropout draws its ``T`` masks once from ``mask_seed`` and shares each across a batch, so ``η̂(x)``
is a deterministic function of ``x`` (the average of ``T`` fixed thinned networks).
:meth:`spread` (MC dropout, ensemble) is the standard deviation of the members' ``σ(z)``.

:func:`fit` trains the energy and MC-dropout networks as :mod:`calad_lib.train` trains the base
models (Adam, learning rate 1e-4, milestones, batches of 128 half normal and half anomalous,
:class:`calad_lib.data.Augment`) and caches them under ``cache_dir()/models``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .detector import AnomalyModel, Outputs
from .device import get_device, seed_everything
from .losses import BaseModel, input_stats, logistic_loss
from .nets import LeNet, build_net, default_net
from .paths import cache_dir
from .provenance import code_fingerprint
from .store import config_key
from .model_cache import fingerprint, load_model, save_model
from .train import TrainConfig

__all__ = ["METHODS", "EnergyModel", "MCDropoutModel", "Ensemble", "FitConfig", "fit", "fit_method",
           "mean_prob_logit", "evaluate", "CACHE_VERSION", "OE_SOURCE", "REGIMES", "CALIBRATIONS", "REGIME_LABELS",
           "train_sources", "task_data", "run_config", "fit_task", "run_one", "run_experiments", "summarize",
           "claims", "metric_table", "regime_table", "spread_table", "reliability_figure", "ece_figure"]

METHODS = ("logistic", "hsc", "energy", "mc_dropout", "ensemble")
#: bump when a change to these networks or :func:`fit` makes cached models stale
CACHE_VERSION = 1
#: the code a fitted model (and a run's rows) depend on: its fingerprint keys the cache and the store
CODE = ("calad_lib.uncertainty", "calad_lib.nets", "calad_lib.losses", "calad_lib.calibration", "calad_lib.metrics",
        "calad_lib.data.augment")


def mean_prob_logit(z: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``σ⁻¹(mean_t σ(z_t))`` along ``dim``, in log space: ``logsumexp log σ(z) − logsumexp log σ(−z)``."""
    return torch.logsumexp(F.logsigmoid(z), dim) - torch.logsumexp(F.logsigmoid(-z), dim)


class EnergyModel(BaseModel):
    """Energy score of a vector network ``f`` (Liu et al., 2020): ``E(x) = −log Σ_j exp f_j(x)``.

    Loss (§3.2 of Liu et al., without the classification term, which a one-class task lacks):
    ``(1 − y)·max(0, E − m_in)² + y·max(0, m_out − E)²``. Score ``E``; logit ``E − (m_in + m_out)/2``.
    """

    name, supervised = "energy", True

    def __init__(self, net, in_shape, mean=None, std=None, m_in: float = -6.0, m_out: float = -2.0):
        super().__init__(net, in_shape, mean, std)
        if not m_in < m_out:
            raise ValueError(f"the energy margins need m_in < m_out, got m_in={m_in}, m_out={m_out}")
        self.m_in, self.m_out = float(m_in), float(m_out)

    def head_features(self, x):
        return self.net(self._z(x))

    def energy(self, x):
        return -torch.logsumexp(self.net(self._z(x)), dim=1)

    def outputs(self, x):
        e = self.energy(x)
        z = e - 0.5 * (self.m_in + self.m_out)
        return Outputs(z, torch.sigmoid(z), e)

    def loss(self, x, y):
        e = self.energy(x)
        y = torch.as_tensor(y, dtype=e.dtype, device=e.device)
        return (1 - y) * F.relu(e - self.m_in) ** 2 + y * F.relu(self.m_out - e) ** 2


class MCDropoutModel(BaseModel):
    """A LeNet classifier with dropout before each fully connected layer, logistic loss (eq. 2.15).

    Training mode: one stochastic pass (independent masks per input). Evaluation: ``T = passes``
    fixed masks (drawn from ``mask_seed``); the convolutional features are computed once and the
    fully connected layers ``T`` times. ``η̂`` is the predictive mean of ``σ(z_t)``, the logit its
    log-odds (:func:`mean_prob_logit`), the score that logit.
    """

    name, supervised = "mc_dropout", True

    def __init__(self, net: LeNet, in_shape, mean=None, std=None, p: float = 0.2, passes: int = 30,
                 mask_seed: int = 0):
        super().__init__(net, in_shape, mean, std)
        if not 0 < p < 1:
            raise ValueError(f"dropout probability p must lie in (0, 1), got {p}")
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
            raise ValueError(f"passes must be a positive integer, got {passes!r}")
        self.p, self.passes, self.mask_seed = float(p), int(passes), int(mask_seed)
        self.linear = nn.Linear(net.rep_dim, 1)
        g = torch.Generator().manual_seed(self.mask_seed)
        dims = (net.fc1.in_features, net.fc2.in_features, net.rep_dim)
        for i, d in enumerate(dims):
            keep = (torch.rand(self.passes, d, generator=g) >= self.p).float() / (1 - self.p)
            self.register_buffer(f"mask{i}", keep, persistent=False)

    def _head(self, h, masks):
        net = self.net
        h = net.fc1(h * masks[0])
        lead = h.shape[:-1]
        h = F.leaky_relu(net.bn1(h.reshape(-1, h.shape[-1])).reshape(*lead, -1))
        h = net.fc2(h * masks[1])
        return self.linear(h * masks[2]).squeeze(-1)

    def pass_logits(self, x) -> torch.Tensor:
        """Logits of the ``T`` thinned networks, ``(T, N)``."""
        h = self.net.conv(self._z(x)).flatten(1).unsqueeze(0)             # (1, N, d)
        return self._head(h, [m[:, None, :] for m in (self.mask0, self.mask1, self.mask2)])

    def _stochastic_logit(self, x):
        h = self.net.conv(self._z(x)).flatten(1)
        shapes = (h.shape[1], self.net.fc2.in_features, self.net.rep_dim)
        masks = [F.dropout(torch.ones(len(h), d, device=h.device), self.p, training=True) for d in shapes]
        return self._head(h, masks)

    def head_features(self, x):
        return self.net(self._z(x))

    def outputs(self, x):
        if self.training:
            z = self._stochastic_logit(x)
            return Outputs(z, torch.sigmoid(z), z)
        z = mean_prob_logit(self.pass_logits(x))
        return Outputs(z, torch.sigmoid(z), z)

    def spread(self, x) -> torch.Tensor:
        """Standard deviation of ``σ(z_t)`` over the ``T`` passes, ``(N,)``."""
        return torch.sigmoid(self.pass_logits(x)).std(0, unbiased=False)

    def loss(self, x, y):
        return logistic_loss(self.outputs(x).logit, y)


class Ensemble(AnomalyModel):
    """The average of ``M`` members' probability estimates; logit = its log-odds; loss = its logistic loss."""

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if len(members) < 1 or not all(isinstance(m, AnomalyModel) for m in members):
            raise ValueError("an ensemble needs at least one calad AnomalyModel member")
        self.members = nn.ModuleList(members)
        self.name = f"ensemble[{members[0].name}×{len(members)}]"

    def member_logits(self, x) -> torch.Tensor:
        """``(M, N)`` member logits."""
        return torch.stack([m.outputs(x).logit for m in self.members])

    def outputs(self, x):
        z = mean_prob_logit(self.member_logits(x))
        return Outputs(z, torch.sigmoid(z), z)

    def spread(self, x) -> torch.Tensor:
        """Standard deviation of the members' ``σ(z)``, ``(N,)``."""
        return torch.sigmoid(self.member_logits(x)).std(0, unbiased=False)

    def loss(self, x, y):
        return logistic_loss(self.outputs(x).logit, y)

    def head_features(self, x):
        return torch.cat([m.head_features(x) for m in self.members], dim=1)


# --- training and the cache ------------------------------------------------------------------
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


def _path(ident: dict) -> Path:
    return cache_dir() / "models" / f"{ident['config']['method']}_{config_key(ident)}.pt"


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


def _load(path: Path, ident: dict, cfg: FitConfig, in_shape, device):
    return load_model(path, ident, lambda payload: cfg.build(in_shape), device, what="cached model")


def _save(path: Path, model, ident: dict) -> None:
    save_model(path, model, ident)


def _fit(cfg: FitConfig, normal, anomalies, device, progress: bool):
    from .progress import bar as progress_bar

    from .data import Augment

    g = seed_everything(cfg.seed)
    g_aug = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    x, xa = normal.to(device=device, dtype=torch.float32), anomalies.to(device=device, dtype=torch.float32)
    model = cfg.build(x.shape[1:], *input_stats(x)).to(device)
    augment = Augment() if cfg.augment else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=0.1)
    half = cfg.batch_size // 2
    starts = range(0, len(x), half)
    a_order, a_pos = None, 0
    model.train()
    bar = progress_bar(range(cfg.epochs), desc=f"{cfg.method} {cfg.dataset}:{cfg.normal_class} {cfg.anomalies}",
               disable=not progress, leave=False)
    for _ in bar:
        order = torch.randperm(len(x), generator=g).to(device)
        total = torch.zeros((), device=device)
        for s in starts:
            xb = x[order[s:s + half]]
            need = len(xb)
            if a_order is None or a_pos + need > len(a_order):
                a_order = torch.cat([torch.randperm(len(xa), generator=g)
                                     for _ in range(math.ceil(need / len(xa)) + 1)]).to(device)
                a_pos = 0
            xb = torch.cat([xb, xa[a_order[a_pos:a_pos + need]]])
            a_pos += need
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
            bar.set_postfix(loss=f"{float(total) / len(starts):.4g}")
    return model.eval()


def fit(cfg: FitConfig, normal: torch.Tensor, anomalies: torch.Tensor, *, progress: bool = True, device=None,
        cache: bool = True):
    """Train (or load from the cache) the energy or MC-dropout model of ``cfg`` (eval mode on ``device``)."""
    if not isinstance(cfg, FitConfig):
        raise ValueError(f"cfg must be a calad.uncertainty.FitConfig, got {type(cfg).__name__}")
    _check(normal, anomalies)
    dev = get_device(device)
    ident = _identity(cfg, normal, anomalies)
    path = _path(ident)
    if cache:
        model = _load(path, ident, cfg, normal.shape[1:], dev)
        if model is not None:
            return model
    model = _fit(cfg, normal, anomalies, dev, progress)
    if cache:
        _save(path, model, ident)
    return model


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
        from .train import train

        return train(cfg, normal, anomalies, progress=progress, device=device)

    if method == "ensemble":
        return Ensemble([base("logistic", seed + i) for i in range(ensemble_size)]).eval()
    return base(method, seed)


# --- evaluation ----------------------------------------------------------------------------------
def _reliability_lists(y, eta, n_bins: int) -> dict[str, list]:
    from .metrics import reliability

    r = reliability(y, eta, n_bins)
    return {"count": r["count"].tolist(), "freq": r["freq"].tolist(), "conf": r["conf"].tolist()}


def evaluate(model: AnomalyModel, *, normal: torch.Tensor, anomalies: dict, test_x: torch.Tensor, test_y,
             calibrated=(), n_bins: int = 10, batch_size: int = 256) -> list[dict]:
    """Calibration and detection metrics of ``model`` and of post-hoc calibrated versions of it.

    For each named anomaly set ``anomalies[name]`` (e.g. held-out OE, real anomalies) the set and an
    equal number of ``normal`` images (the larger cut to the smaller, as in thesis §4.2.2) give
    ``ece_<name>``, ``mce_<name>`` (Definitions 9–10, ``n_bins`` bins), ``rel_<name>`` (reliability
    table as lists) and the mean ``η̂`` of the anomalies, ``eta_<name>``; ``eta_normal`` is the mean
    ``η̂`` of the normal images, ``auroc`` the AUROC of the score on ``(test_x, test_y)``.
    ``calibrated``: :class:`~calad_lib.calibration.CalibratedModel` s wrapping ``model`` (Platt, β);
    their calibrators are applied to the base logits, computed once. Returns one row per version
    (``calibration`` = ``"none"`` or the method). Models with a ``spread`` (MC dropout, ensembles)
    add to the ``"none"`` row the mean spread per set and ``spread_auroc``, the AUROC of the spread
    itself as an anomaly score.
    """
    from .metrics import auroc, ece, mce
    from .perturbation import perturbed_outputs

    for cal in calibrated:
        if getattr(cal, "base", None) is not model or getattr(cal, "method", None) not in ("platt", "beta", "beta_naive"):
            raise ValueError("calibrated must hold Platt or β CalibratedModels of this very model "
                             "(calad.calibration.calibrate(model, 'platt' | 'beta', ...))")
    if not anomalies:
        raise ValueError("give at least one named anomaly set, e.g. anomalies={'oe': held_out_oe}")
    out = lambda x: perturbed_outputs(model, x, batch_size=batch_size)  # noqa: E731
    base = {"normal": out(normal), "test": out(test_x), **{k: out(v) for k, v in anomalies.items()}}
    variants = [("none", None)] + [(c.method, c.calibrator) for c in calibrated]
    rows = []
    for name, cal in variants:
        def eta_of(o):
            return o.eta.double().numpy() if cal is None else cal.predict_proba(o.logit.double()).numpy()
        score = base["test"].score if cal is None else cal.transform(base["test"].logit.double())
        row = {"calibration": name, "auroc": auroc(test_y, score)}
        e0 = eta_of(base["normal"])
        row["eta_normal"] = float(e0.mean())
        for k in anomalies:
            e1 = eta_of(base[k])
            m = min(len(e0), len(e1))
            y = np.r_[np.zeros(m), np.ones(m)]
            eta = np.r_[e0[:m], e1[:m]]
            row.update({f"ece_{k}": ece(y, eta, n_bins), f"mce_{k}": mce(y, eta, n_bins),
                        f"eta_{k}": float(e1.mean()), f"rel_{k}": _reliability_lists(y, eta, n_bins)})
        rows.append(row)
    if hasattr(model, "spread"):
        def spread(x):
            with torch.no_grad():
                return torch.cat([model.spread(x[s:s + batch_size].to(model.device)).cpu()
                                  for s in range(0, len(x), batch_size)]).numpy()
        s0 = spread(normal)
        rows[0]["spread_normal"] = float(s0.mean())
        for k, v in anomalies.items():
            s1 = spread(v)
            m = min(len(s0), len(s1))
            rows[0][f"spread_{k}"] = float(s1.mean())
            rows[0][f"spread_auroc_{k}"] = auroc(np.r_[np.zeros(m), np.ones(m)], np.r_[s0[:m], s1[:m]])
    return rows


# --- chapter 08, part C: the experiment ---------------------------------------------------------
#: anomaly source of the "OE" training regime
OE_SOURCE = "oe:photos:train"
#: training regimes: against ``no_oe_source`` (uniform noise or spectral images) or against OE
REGIMES = ("no OE", "OE")
#: post-hoc calibrations evaluated for every model
CALIBRATIONS = ("none", "platt", "beta")
#: the (regime, calibration) combinations by the names the chapter gives them
REGIME_LABELS = {("no OE", "none"): "neither", ("no OE", "platt"): "post-hoc only (Platt)",
                 ("no OE", "beta"): "post-hoc only (β)", ("OE", "none"): "OE only",
                 ("OE", "platt"): "OE + Platt", ("OE", "beta"): "OE + β"}
_PARAMS = ("seed", "normal_classes", "no_oe_source", "n_train", "epochs", "milestones", "ensemble_size", "dropout",
           "mc_passes", "n_calib", "n_eval", "n_test", "n_bins")


def _params(params) -> dict:
    missing = [k for k in _PARAMS if k not in params]
    if missing:
        raise ValueError(f"chapter 08's experiment needs the parameters {', '.join(missing)}")
    return dict(params)


def train_sources(no_oe_source: str) -> dict[str, str]:
    """The anomaly source of each training regime, ``{"no OE": no_oe_source, "OE": OE_SOURCE}``."""
    if no_oe_source not in ("uniform_noise", "spectral"):
        raise ValueError(f"no_oe_source must be 'uniform_noise' or 'spectral', got {no_oe_source!r}")
    return {"no OE": no_oe_source, "OE": OE_SOURCE}


def task_data(params, normal_class: int) -> dict:
    """The data of one Fashion-MNIST one-vs-all task (§4.2.2) for chapter 08's parameters.

    ``normal``: ``n_train`` images of the 3/4 training split (all of it when ``None``);
    ``train_anomalies``: as many images of ``no_oe_source`` and of the OE photographs' training
    part; ``oe_calib``: ``n_calib`` OE calibration images; ``eval_normal`` and ``eval_sets``
    (``"oe"``: held-out OE, ``"real"``: test images of the other classes): ``n_eval`` each;
    ``test_x``/``test_y``: the test set (or a seeded subset of ``n_test``) for the AUROC.
    """
    from .data import one_vs_all
    from .synthesis import oe_images, spectral, uniform_noise

    p = _params(params)
    seed, c = int(p["seed"]), int(normal_class)
    split = one_vs_all("fashion_mnist", normal_class=c, seed=seed)
    gc = torch.Generator().manual_seed(seed + c)
    normal = split.train if p["n_train"] is None else \
        split.train[torch.randperm(len(split.train), generator=gc)[: p["n_train"]]]
    m = len(normal)
    kw = dict(channels=1, size=28, device="cpu")
    no_oe = (uniform_noise(m, seed=seed, **kw) if p["no_oe_source"] == "uniform_noise"
             else spectral(m, seed=seed, **kw))
    anomalous_test = split.test_x[split.test_y == 1]
    test = (torch.arange(len(split.test_x)) if p["n_test"] is None
            else torch.randperm(len(split.test_x), generator=gc)[: p["n_test"]].sort().values)
    return dict(
        split=split, normal=normal, test_x=split.test_x[test], test_y=split.test_y[test],
        train_anomalies={"no OE": no_oe, "OE": oe_images(m, seed=seed, part="train", **kw)},
        oe_calib=oe_images(p["n_calib"], seed=seed + 1, part="calib", **kw),
        eval_normal=split.test_x[split.test_y == 0][: p["n_eval"]],
        eval_sets={"oe": oe_images(p["n_eval"], seed=seed + 2, part="test", **kw),
                   "real": anomalous_test[torch.randperm(len(anomalous_test), generator=gc)[: p["n_eval"]]]})


def run_config(params, normal_class: int, method: str, regime: str) -> dict:
    """What determines one run's rows (its key in the result store)."""
    p = _params(params)
    return {"part": "C", "code": code_fingerprint(*CODE), "normal_class": int(normal_class), "method": method,
            "training anomalies": regime,
            "source": train_sources(p["no_oe_source"])[regime], "seed": p["seed"], "n_train": p["n_train"],
            "epochs": p["epochs"], "milestones": list(p["milestones"]), "n_calib": p["n_calib"],
            "n_eval": p["n_eval"], "n_test": p["n_test"], "n_bins": p["n_bins"], "no_oe_source": p["no_oe_source"],
            **({"ensemble_size": p["ensemble_size"]} if method == "ensemble" else {}),
            **({"dropout": p["dropout"], "passes": p["mc_passes"]} if method == "mc_dropout" else {})}


def fit_task(params, data: dict, normal_class: int, method: str, regime: str, *, progress: bool = False,
             device=None) -> AnomalyModel:
    """:func:`fit_method` for one run of chapter 08 (``data`` from :func:`task_data`; cached)."""
    p = _params(params)
    return fit_method(method, data["normal"], data["train_anomalies"][regime],
                      anomaly_source=train_sources(p["no_oe_source"])[regime], normal_class=int(normal_class),
                      seed=p["seed"], epochs=p["epochs"], milestones=p["milestones"],
                      ensemble_size=p["ensemble_size"], dropout=p["dropout"], passes=p["mc_passes"],
                      progress=progress, device=device)


def run_one(params, data: dict, normal_class: int, method: str, regime: str, *, device=None) -> list[dict]:
    """Train (or load) one model, calibrate it post hoc (Platt, β on OE) and :func:`evaluate` it."""
    from .calibration import calibrate_many

    p = _params(params)
    model = fit_task(p, data, normal_class, method, regime, device=device)
    # a weak model may get a Platt slope <= 0 (a reversed ranking); its rows show it, no warning needed
    cals = calibrate_many(model, ["platt", "beta"], normal=data["split"].calib, anomalous=data["oe_calib"],
                          n=p["n_calib"], augment_anomalous=True, seed=p["seed"], progress=False, quiet_platt=True)
    return evaluate(model, normal=data["eval_normal"], anomalies=data["eval_sets"], test_x=data["test_x"],
                    test_y=data["test_y"], calibrated=[cals["platt"], cals["beta"]], n_bins=p["n_bins"])


def run_experiments(params, *, store=None, progress: bool = True, device=None):
    """Every run of chapter 08's part C: task × method × training regime, three calibrations each.

    ``params``: the chapter's parameters (``calad.setup``'s result). Each run's rows are written to
    ``store`` (default ``results/08_oe_uncertainty/<preset>/``) as soon as it finishes and are
    read back instead of recomputed on a later call, so an interrupted run resumes. Returns one
    row per run and calibration: the :func:`run_config` fields and the :func:`evaluate` metrics.
    """
    import pandas as pd

    from .paths import results_dir
    from .progress import bar
    from .store import ResultStore

    p = _params(params)
    preset = p.get("preset")
    if store is None:
        store = ResultStore(results_dir() / "08_oe_uncertainty" / str(preset or "custom"))
    runs = [(int(c), m, r) for c in p["normal_classes"] for m in METHODS for r in REGIMES]
    data: dict = {}
    for c, method, regime in bar(runs, desc="chapter 08 runs", disable=not progress):
        cfg = run_config(p, c, method, regime)
        if store.done(cfg):
            continue
        if c not in data:
            data = {c: task_data(p, c)}          # one task's data at a time
        store.write(cfg, run_one(p, data[c], c, method, regime, device=device), preset=preset)
    return pd.DataFrame([{**cfg, **row} for c, m, r in runs for cfg in [run_config(p, c, m, r)]
                         for row in store.read(cfg)])


_SUMMARY = ("auroc", "ece_oe", "ece_real", "mce_oe", "mce_real", "eta_normal", "eta_oe", "eta_real")


def summarize(res):
    """Means over the tasks, one row per (method, training anomalies, calibration), in the chapter's order."""
    import pandas as pd

    keys = ["method", "training anomalies", "calibration"]
    out = res.groupby(keys)[[c for c in _SUMMARY if c in res]].mean()
    order = [(m, r, c) for m in METHODS for r in REGIMES for c in CALIBRATIONS if (m, r, c) in out.index]
    return out.reindex(pd.MultiIndex.from_tuples(order, names=keys))


#: chapter 08's claims on calibration: (id, claim, difference per method that is > 0 where it holds)
_CLAIMS = (
    ("C1", "OE lowers the ECE on held-out OE",
     lambda s, m: s.loc[(m, "no OE", "none"), "ece_oe"] - s.loc[(m, "OE", "none"), "ece_oe"]),
    ("C2", "OE-trained models are worse calibrated on real anomalies than on held-out OE",
     lambda s, m: s.loc[(m, "OE", "none"), "ece_real"] - s.loc[(m, "OE", "none"), "ece_oe"]),
    ("C3", "post-hoc Platt (on OE) lowers the ECE on held-out OE, no OE in training",
     lambda s, m: s.loc[(m, "no OE", "none"), "ece_oe"] - s.loc[(m, "no OE", "platt"), "ece_oe"]),
    ("C4", "post-hoc Platt (on OE) lowers the ECE on held-out OE after OE training",
     lambda s, m: s.loc[(m, "OE", "none"), "ece_oe"] - s.loc[(m, "OE", "platt"), "ece_oe"]),
    ("C5", "OE + Platt is worse calibrated on real anomalies than on held-out OE",
     lambda s, m: s.loc[(m, "OE", "platt"), "ece_real"] - s.loc[(m, "OE", "platt"), "ece_oe"]),
    ("C6", "OE raises the AUROC (one-vs-all test set)",
     lambda s, m: s.loc[(m, "OE", "none"), "auroc"] - s.loc[(m, "no OE", "none"), "auroc"]),
)


def _verdict(count: int, n: int) -> str:
    if count == n:
        return f"holds for all {n} methods"
    if count == 0:
        return f"fails for all {n} methods"
    return f"mixed: {count} of {n} methods"


def claims(summary):
    """Claims C1–C6, decided per method from :func:`summarize`'s means.

    Columns: ``claim``, ``holds for`` (the methods), ``count``, ``of``, ``mean_diff`` (the mean
    over the methods of the difference that is positive where the claim holds: ECE or AUROC, as
    a fraction) and ``verdict`` (holds for all / fails for all / mixed: k of n).
    """
    import pandas as pd

    methods = [m for m in METHODS if m in summary.index.get_level_values(0)]
    rows = []
    for key, text, diff in _CLAIMS:
        d = {m: float(diff(summary, m)) for m in methods}
        yes = [m for m in methods if d[m] > 0]
        rows.append({"id": key, "claim": f"{key} {text}", "holds for": ", ".join(yes) or "none", "count": len(yes),
                     "of": len(methods), "mean_diff": float(np.mean(list(d.values()))),
                     "verdict": _verdict(len(yes), len(methods))})
    return pd.DataFrame(rows).set_index("id")


def metric_table(summary, metric: str):
    """``metric`` (``"ece"`` or ``"mce"``) per (method, training regime) × (evaluation set, calibration)."""
    import pandas as pd

    if metric not in ("ece", "mce"):
        raise ValueError(f"metric must be 'ece' or 'mce', got {metric!r}")
    sets = {f"{metric}_oe": "held-out OE", f"{metric}_real": "real anomalies"}
    rows = [(m, r) for m in METHODS for r in REGIMES if (m, r, "none") in summary.index]
    cols = [(label, c) for label in sets.values() for c in CALIBRATIONS]
    out = pd.DataFrame([[summary.loc[(m, r, c), col] for col in sets for c in CALIBRATIONS] for m, r in rows],
                       index=pd.MultiIndex.from_tuples(rows, names=["method", "training anomalies"]),
                       columns=pd.MultiIndex.from_tuples(cols, names=[metric.upper() + " on", "calibration"]))
    return out


def regime_table(summary):
    """Mean ECE and MCE over the methods for each (training regime, calibration), by :data:`REGIME_LABELS`."""
    import pandas as pd

    cols = ["ece_oe", "ece_real", "mce_oe", "mce_real"]
    return pd.DataFrame({label: summary.xs((r, c), level=["training anomalies", "calibration"])[cols].mean()
                         for (r, c), label in REGIME_LABELS.items()}).T


def spread_table(res):
    """Mean spread (members' standard deviation of ``σ(z)``) per set and its AUROC, for MC dropout and ensembles."""
    cols = ["spread_normal", "spread_oe", "spread_real", "spread_auroc_oe", "spread_auroc_real"]
    sel = res[res["method"].isin(["mc_dropout", "ensemble"]) & (res["calibration"] == "none")]
    out = sel.groupby(["method", "training anomalies"])[cols].mean()
    order = [(m, r) for m in METHODS for r in REGIMES if (m, r) in out.index]
    return out.loc[order]


#: colours and markers of the four (regime, calibration) combinations the figures show
_SHOWN = {("no OE", "none"): ("#7f7f7f", "o"), ("no OE", "platt"): ("#ff7f0e", "s"),
          ("OE", "none"): ("#2ca02c", "^"), ("OE", "platt"): ("#d62728", "D")}


def reliability_figure(res, ev: str, *, title: str | None = None):
    """Reliability diagrams of every method on evaluation set ``ev`` (``"oe"`` or ``"real"``), 2 × 3 panels.

    Bins are pooled over the tasks; the marker area is proportional to the images in the bin.
    The sixth panel holds the legend.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(7.5, 5.6), sharex=True, sharey=True)
    for ax, method in zip(axes.flat, METHODS):
        ax.plot([0, 1], [0, 1], color="k", lw=0.7, ls=":")
        for (regime, cal), (colour, marker) in _SHOWN.items():
            sel = res[(res["method"] == method) & (res["training anomalies"] == regime) & (res["calibration"] == cal)]
            rel = list(sel[f"rel_{ev}"])
            count = np.sum([r["count"] for r in rel], axis=0)
            conf = np.sum([np.nan_to_num(r["conf"]) * np.array(r["count"]) for r in rel], axis=0)
            freq = np.sum([np.nan_to_num(r["freq"]) * np.array(r["count"]) for r in rel], axis=0)
            ok = count > 0
            x, y = conf[ok] / count[ok], freq[ok] / count[ok]
            ax.plot(x, y, "-", lw=1.0, alpha=0.7, color=colour)
            ax.scatter(x, y, s=6 + 120 * count[ok] / count.sum(), marker=marker, color=colour, zorder=3,
                       label=REGIME_LABELS[(regime, cal)])
        ax.set_title(method, fontsize=10)
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction anomalous")
    for ax in axes[1]:
        ax.set_xlabel(r"mean $\hat\eta$ in bin")
    axes[0, 2].tick_params(labelbottom=True)
    legend_ax = axes.flat[-1]
    legend_ax.axis("off")
    legend_ax.legend(*axes.flat[0].get_legend_handles_labels(), loc="center", fontsize=9, frameon=False,
                     title="regime", title_fontsize=9, markerscale=1.5)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def ece_figure(summary):
    """ECE of every method in the four shown regimes, on held-out OE (top) and on real anomalies (bottom)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7.5, 5.6), sharex=True, sharey=True)
    width = 0.8 / len(_SHOWN)
    x = np.arange(len(METHODS))
    for ax, ev, title in zip(axes, ["oe", "real"], ["normal + held-out OE", "normal + real anomalies"]):
        for i, ((regime, cal), (colour, _)) in enumerate(_SHOWN.items()):
            vals = [summary.loc[(m, regime, cal), f"ece_{ev}"] for m in METHODS]
            ax.bar(x - 0.4 + (i + 0.5) * width, vals, width, color=colour, label=REGIME_LABELS[(regime, cal)])
        ax.set(title=f"ECE on {title}", ylabel="ECE")
    axes[1].set_xticks(x, METHODS)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
