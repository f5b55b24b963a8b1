"""One detection experiment of thesis §4.2–§4.3.1: dataset × normal class × base loss × seed.

:func:`run_experiment` trains (or loads from the trainer's cache) two base models —
one on the 3/4 training split, to be post-hoc calibrated, and one on the full normal
training data, the *Fully Trained* column — calibrates the first with every method
and anomaly source of the thesis' tables, and evaluates all of them (§4.2.2):

=====================  =============================================================
method                 model
=====================  =============================================================
``fully_trained``      base loss on all normal training data (train + calibration split)
``base``               base loss on the 3/4 split, uncalibrated (not a thesis column)
``calhead_{src}``      calibration head (§3.2.3) on the frozen base
``platt_{src}``        Platt scaling (§3.2.1)
``beta_{src}``         β calibration (§3.2.2), numerically stable variant
``beta_naive_{src}``   β calibration on float32 η̂ clipped to [ε, 1 − ε] (§4.3.1's instability)
=====================  =============================================================

``src`` is ``oe`` (outlier exposure, OE part ``"calib"``) or ``spectral`` (1/f^α images,
§3.4). Each model gets one result row with AUROC on the test set unperturbed and after
gradient input perturbation (§3.3; label y = 0 for every input, ε in raw pixel units —
the conventions of :mod:`calad_lib.perturbation`), κ, and ECE/MCE (§4.2.2) on the normal
test images plus an equal number of **held-out** synthetic anomalies that were used
neither in training nor in calibration: OE part ``"test"`` (``ece_oe``, ``mce_oe``) and
spectral images of another seed (``ece_spectral``, ``mce_spectral``). ``ece``/``mce`` are
those of the source the model was calibrated with (OE for the uncalibrated models, the
source supervised losses are trained with). Conformal anomaly detection adds split-conformal
p-values of the test scores against the scores of the (unaugmented) normal calibration split,
the false-alarm rate ``P(p ≤ α)`` on normal test images, and Benjamini–Hochberg at level α
over the whole test set (``bh_fdr``, ``bh_power``).

Each row also carries label-free candidate predictors of the perturbation gain (``pred_*``,
:func:`~calad_lib.detection.evaluation.predictors`), measured on calibration data, for the open question of what predicts κ.

Unperturbed outputs of Platt/β/head models are computed from one pass of the base model
(they are functions of its logit or head features); perturbed outputs always go through
the whole calibrated model, as eq. 3.3 differentiates it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import data
from .. import train as T
from ..calibration import calibrate
from ..config import check_config
from ..data import Augment, hflip_ok
from ..device import seed_everything
from ..provenance import code_fingerprint, stamp
from ..synthesis import oe_images, spectral
from ..scoring import SharedOutputs
from .evaluation import SOURCES, evaluate_model, predictors

__all__ = ["ExperimentConfig", "run_experiment", "prepare", "METHODS", "THESIS_METHODS", "METHOD_LABELS", "SOURCES",
           "PER_CLASS_KINDS", "ONE_VS_ALL_KINDS", "EXPERIMENT_VERSION", "loss_order", "CODE"]

#: bump when a change of this module changes the numbers (stored results are then not reused)
EXPERIMENT_VERSION = 2
#: the code an experiment's rows depend on: its fingerprint is part of the experiment's key
CODE = ("calad_lib.detection.experiment", "calad_lib.detection.evaluation", "calad_lib.scoring", "calad_lib.train",
        "calad_lib.calibration",
        "calad_lib.perturbation", "calad_lib.metrics", "calad_lib.detector", "calad_lib.nets", "calad_lib.losses",
        "calad_lib.data", "calad_lib.synthesis")
THESIS_METHODS = ("fully_trained", "calhead_oe", "calhead_spectral", "platt_oe", "platt_spectral",
                  "beta_oe", "beta_spectral")
METHODS = THESIS_METHODS[:1] + ("base",) + THESIS_METHODS[1:] + ("beta_naive_oe", "beta_naive_spectral")
METHOD_LABELS = {"fully_trained": "Fully Trained", "base": "Base (3/4 split)", "calhead_oe": "CalHead OE",
                 "calhead_spectral": "CalHead Spectral", "platt_oe": "Platt OE", "platt_spectral": "Platt Spectral",
                 "beta_oe": "β OE", "beta_spectral": "β Spectral", "beta_naive_oe": "β naive OE",
                 "beta_naive_spectral": "β naive Spectral"}
ONE_VS_ALL_KINDS = ("fashion_mnist", "cifar10", "cifar100")
PER_CLASS_KINDS = ("mvtec", "mpdd", "textures")
#: |z| above which float32 σ(z) is clipped by naive β calibration: ln((1 − ε)/ε), ε = float32 eps
SATURATION = math.log((1 - np.finfo(np.float32).eps) / np.finfo(np.float32).eps)


def loss_order(losses) -> list[str]:
    """``losses`` in the thesis' order: SVDD, SSIM, logistic, HSC."""
    return [l for l in ("svdd", "ssim", "logistic", "hsc") if l in set(losses)]



def _bad(msg: str):
    raise ValueError(msg)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines one experiment's numbers (validated on construction).

    ``n_train`` caps the 3/4 training split (the calibration split is cut to a third of it,
    keeping 3:1, and the fully trained model sees both); ``n_calib``: augmented normal
    draws and synthetic anomalies per calibration (§4.2.1: 10,000); ``n_test_normal`` and
    ``n_test_anomalous`` cap the normal and anomalous test images (random subsets; ``None``:
    all, as the thesis); ``n_heldout``: held-out
    synthetic anomalies per source for ECE/MCE (at most as many as normal test images
    are used); ``n_predictor``: normal calibration images and held-out synthetic anomalies
    on which the candidate predictors of perturbation success are measured (:func:`~calad_lib.detection.evaluation.predictors`);
    ``image_size``: per-class datasets only (``None``: 224, or 256 for SSIM, §4.2.1).
    """

    dataset: str
    normal_class: int | str
    loss: str
    seed: int = 0
    epochs: int = 200
    milestones: tuple[int, ...] = (100, 150)
    lr: float = 1e-4
    batch_size: int = 128
    n_train: int | None = None
    n_calib: int = 10_000
    n_test_normal: int | None = None
    n_test_anomalous: int | None = None
    n_heldout: int = 10_000
    n_oe: int = 10_000
    oe_source: str = "photos"
    eps: float = 1.4e-3
    head_epochs: int = 200
    head_lr: float = 1e-4
    alpha: float = 0.1
    n_bins: int = 10
    n_predictor: int = 500
    image_size: int | None = None
    version: int = EXPERIMENT_VERSION
    code: str = dataclasses.field(default_factory=lambda: code_fingerprint(*CODE))

    def __post_init__(self):
        check_config(self, "experiment")      # ranges: params/schema/configs/experiment.yaml
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))

    @classmethod
    def from_params(cls, params, **fields) -> "ExperimentConfig":
        """The experiment of chapter 05's validated parameters ``params``: every field found there, ``fields``
        (the grid's dataset, class, loss, seed, ...) overriding."""
        names = {f.name for f in dataclasses.fields(cls)} - {"version", "code"}
        return cls(**{**{k: v for k, v in dict(params).items() if k in names}, **fields})

    @property
    def data_name(self) -> str:
        """The loader's name: ``fashion_mnist`` or ``mvtec:bottle``."""
        return f"{self.dataset}:{self.normal_class}" if self.dataset in PER_CLASS_KINDS else self.dataset

    @property
    def label(self) -> str:
        return f"{self.dataset}:{self.normal_class} {self.loss} seed {self.seed}"

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        return cls(**{**d, "milestones": tuple(d.get("milestones", ()))})


# --- data --------------------------------------------------------------------------------------
def _data(cfg: ExperimentConfig) -> dict:
    """Training, calibration and test images of ``cfg`` (subsets as configured)."""
    crop = None
    if cfg.dataset in PER_CLASS_KINDS:
        size = cfg.image_size or (256 if cfg.loss == "ssim" else 224)
        train = data.per_class(cfg.data_name, size=size, seed=cfg.seed, crop=True, progress=False)
        ev = data.per_class(cfg.data_name, size=size, seed=cfg.seed, crop=False, progress=False)
        tr, ca, full, tx, ty, crop = train.train, ev.calib, train.full_train, ev.test_x, ev.test_y, size
    else:
        s = data.one_vs_all(cfg.dataset, normal_class=cfg.normal_class, seed=cfg.seed)
        tr, ca, full, tx, ty = s.train, s.calib, s.full_train, s.test_x, s.test_y
    if cfg.n_train is not None and cfg.n_train < len(tr):
        if crop is not None:  # per-class: the calibration split is stored at another size
            _bad("n_train subsets are for one-vs-all datasets; use n_train=None for per-class datasets")
        tr, ca = tr[:cfg.n_train], ca[:max(1, math.ceil(cfg.n_train / 3))]
        full = torch.cat([tr, ca])
    idx = data.test_subset(ty, n_normal=cfg.n_test_normal, n_anomalous=cfg.n_test_anomalous, seed=cfg.seed)
    return {"train": tr, "calib": ca, "full": full, "test_x": tx[idx], "test_y": ty[idx], "crop": crop,
            "shape": tuple(tx.shape[1:]) if crop is None else (tx.shape[1], crop, crop)}


def _synthetic(cfg: ExperimentConfig, d: dict) -> dict:
    """OE and spectral images: training OE (shaped like the training images), calibration sets, and
    the held-out sets, disjoint from both (OE part ``"test"``; spectral images of another seed)."""
    c, h, w = d["shape"]
    src = cfg.oe_source
    n_cal, n_held = cfg.n_calib, cfg.n_heldout
    s = 1000 * cfg.seed
    return {"oe_train": oe_images(cfg.n_oe, c, tuple(d["train"].shape[-2:]), seed=s, part="train", source=src,
                                  device="cpu"),
            "calib": {"oe": oe_images(n_cal, c, (h, w), seed=s + 1, part="calib", source=src, device="cpu"),
                      "spectral": spectral(n_cal, c, (h, w), seed=s + 1, device="cpu")},
            # held out for ECE/MCE: OE part "test" (disjoint photographs) and spectral images of another seed
            "heldout": {"oe": oe_images(n_held, c, (h, w), seed=s + 2, part="test", source=src, device="cpu"),
                        "spectral": spectral(n_held, c, (h, w), seed=s + 2 + 7919, device="cpu")}}


# --- models --------------------------------------------------------------------------------------
def _train_config(cfg: ExperimentConfig, split: str, crop: int | None) -> T.TrainConfig:
    return T.TrainConfig.from_params(cfg, dataset=cfg.data_name, split=split, crop=crop,
                                     milestones=tuple(m for m in cfg.milestones if m < cfg.epochs),
                                     hflip=hflip_ok(cfg.data_name))


def _models(cfg: ExperimentConfig, d: dict, syn: dict, progress: bool) -> tuple[dict, dict]:
    """The ten models of :data:`METHODS` and, for the two base models, whether they came from the cache
    and their median epoch time."""
    models, info = {}, {}
    for method, split, x in (("base", "train", d["train"]), ("fully_trained", "full", d["full"])):
        tc = _train_config(cfg, split, d["crop"])
        models[method] = T.train(tc, x, syn["oe_train"], progress=progress)
        fit = models[method].fit_info
        info[f"{method}_cached"] = fit["cached"]              # loaded from the cache, not merely present there
        info[f"{method}_epoch_seconds"] = float(np.median(fit["epoch_seconds"])) if fit.get("epoch_seconds") else math.nan
    base = models["base"]
    aug = Augment(hflip=hflip_ok(cfg.data_name), crop=d["crop"])
    for src in SOURCES:
        # one draw of calibration data per source: Platt, β and naive β share its logits, the head its features;
        # OE is augmented like normal data (§4.2.1), spectral images are not
        cals = calibrate(base, ["head", "platt", "beta", "beta_naive"], normal=d["calib"],
                         anomalous=syn["calib"][src], n=cfg.n_calib, augment=aug, augment_anomalous=src == "oe",
                         seed=cfg.seed, epochs=cfg.head_epochs, lr=cfg.head_lr, progress=False, quiet=True)
        for m, model in cals.items():
            models[f"{'calhead' if m == 'head' else m}_{src}"] = model
    return models, info


def prepare(cfg: ExperimentConfig, *, progress: bool = False) -> dict:
    """Data, synthetic sets and the ten trained/calibrated models of one experiment (no evaluation).

    Returns ``{"data": ..., "synthetic": ..., "models": {method: model}, "cached": {...}}``.
    """
    seed_everything(cfg.seed)
    d = _data(cfg)
    syn = _synthetic(cfg, d)
    models, info = _models(cfg, d, syn, progress)
    return {"data": d, "synthetic": syn, "models": models, "cached": info}


def run_experiment(cfg: ExperimentConfig, *, preset: str | None = None, threads: int | None = None,
                   progress: bool = False) -> list[dict]:
    """Train, calibrate and evaluate one experiment; one row per method of :data:`METHODS`.

    Every row carries the metrics, every configuration field, the git commit and ``preset``.
    ``threads`` sets torch's CPU threads for the experiment (``None``: leave them); like the
    trainer's cache, results are keyed without it, and a CPU run is bit-reproducible for a given
    thread count.
    """
    if not isinstance(cfg, ExperimentConfig):
        raise TypeError(f"cfg must be an ExperimentConfig, got {type(cfg).__name__}")
    start, cpu_start = time.perf_counter(), time.process_time()
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        prep = prepare(cfg, progress=progress)
        d, syn, models = prep["data"], prep["synthetic"], prep["models"]
        t_models = time.perf_counter() - start
        n_normal = int((d["test_y"] == 0).sum())
        sets = {"test": d["test_x"], "calib": d["calib"],
                **{f"heldout_{k}": v[:n_normal] for k, v in syn["heldout"].items()}}
        scores = SharedOutputs(sets)
        base_logit = scores.base_outputs(models["base"], "test").logit
        saturated = float((base_logit.abs() >= SATURATION).float().mean())
        k = min(cfg.n_predictor, len(d["calib"]), n_normal)
        pred_normal = d["calib"][torch.randperm(len(d["calib"]), generator=torch.Generator().manual_seed(cfg.seed))[:k]]
        pred_anom = torch.cat([syn["heldout"]["oe"][:(k + 1) // 2], syn["heldout"]["spectral"][:k // 2]])
        rows = []
        for method in METHODS:
            model = models[method]
            row = evaluate_model(method, model, scores, d["test_y"], d["test_x"], eps=cfg.eps, alpha=cfg.alpha,
                                 n_bins=cfg.n_bins)
            row.update(predictors(model, pred_normal, pred_anom, cfg.eps))
            cal = getattr(model, "calibrator", None)
            params = cal.coefficients() if cal is not None else {}
            rows.append({"method": method, "method_label": METHOD_LABELS[method],
                         "calibration": getattr(model, "method", "none"),
                         "anomalies": method.rsplit("_", 1)[-1] if method.endswith(SOURCES) else "none",
                         **row, **{f"cal_{k}": float(v) for k, v in params.items()},
                         "base_saturated": saturated if method != "fully_trained" else float("nan"),
                         # measured sizes; the configuration's caps n_test_* are added below under their own names
                         "test_normal_images": n_normal, "test_anomalous_images": int(d["test_y"].sum()),
                         "train_images": len(d["full" if method == "fully_trained" else "train"])})
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(saved_threads)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    prov = stamp(preset)
    for r in rows:
        r.update(cfg.as_dict())
        r.update(prep["cached"], seconds=total, cpu_seconds=cpu, seconds_models=t_models, commit=prov["commit"],
                 preset=prov["preset"], threads=used_threads)
    return rows
