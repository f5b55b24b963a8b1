"""Localization experiments: per-pixel post-hoc calibration, AUPRO, Table 4.3 (thesis §4.1.3–4, §4.2, §4.3.2).

One run is a :class:`LocalizationConfig` — a dataset class × pixel-wise base loss (``fcdd``, ``ssim_pixel``,
``unet`` = the per-pixel logistic loss, "LGS") × seed — and gives one result row per *method*:

======================  ==================================================================================
method                  model
======================  ==================================================================================
``fully_trained``       the base loss trained on all normal training images (§4.2.1's comparison)
``base``                the base loss trained on the 3/4 split, uncalibrated (what the calibrators start from)
``platt_<src>``         per-pixel Platt scaling of ``base`` (one transform for every pixel, Proposition 1)
``beta_<src>``          per-pixel β calibration, ``stable`` variant; ``beta_naive_<src>`` the float32 variant
``location_platt_<src>``  one Platt transform per map location (:class:`calad_lib.adaptive.LocationPlatt`)
``local_<src>``         :class:`calad_lib.adaptive.LocalCalibrator` on logit, context and position, fitted on
                        pasted patches (beyond the thesis)
``head_<src>``          the same on logit and the network's last feature map: a 1×1-convolution head
======================  ==================================================================================

``<src>`` is ``oe`` (outlier-exposure images of the ``calib`` part) or ``spectral`` (random 1/f^α images,
§3.4). Per-pixel Platt/β follow §4.2.1: every pixel of a normal calibration image is labelled 0, every
pixel of a synthetic anomaly 1, and the average per-pixel logistic loss is minimised. Each row holds the
pixel AUROC and AUPRO, unperturbed and after gradient input perturbation (ε = 1.4·10⁻³, §4.2.2), the
pixel ECE and MCE of §4.2.2 (normal test images against as many held-out *whole* synthetic anomalies),
the same on held-out *pasted* anomalies (``_patch``, pixels labelled by their masks), the fitted Platt/β
parameters (``cal_params``, JSON) and two diagnostics: ``rank_corr`` (mean within-image Spearman
correlation with the ``base`` map: 1 when a method cannot reorder the pixels of an image) and
``pixel_auroc_eta32`` (pixel AUROC when the ranking uses η̂ = σ(z) rounded to float32, where saturated
pixels tie). Runs are cached in a :class:`~calad_lib.store.ResultStore`
under ``results/06_localization/<preset>/`` and resume after an interruption. Tables and verdicts
are in :mod:`calad_lib.localization_tables`.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from .progress import bar as progress_bar

from . import metrics
from .adaptive import calibrate_adaptive_set, paste_patches, within_image_rank_corr
from .paths import results_dir
from .provenance import code_fingerprint
from .store import ResultStore

__all__ = ["METHODS", "PAPER_METHODS", "LOSSES", "LOSS_LABELS", "LocalizationConfig", "Prepared", "prepare",
           "evaluate_prepared", "run", "run_grid", "store_for", "check_configs", "configs_from_params",
           "heatmap_data", "load_heatmaps", "heatmaps_for", "heatmap_figure", "HEATMAP_METHODS", "METHOD_LABELS", "RESULTS_VERSION"]

#: bump when a change of the code changes the numbers (old results are then not reused)
RESULTS_VERSION = 1
#: the code a run's rows depend on: its fingerprint is part of the run's key
CODE = ("calad_lib.localization", "calad_lib.adaptive", "calad_lib.train", "calad_lib.calibration",
        "calad_lib.perturbation", "calad_lib.metrics", "calad_lib.aupro", "calad_lib.detector", "calad_lib.nets",
        "calad_lib.losses", "calad_lib.data", "calad_lib.synthesis")
LOSSES = ("fcdd", "ssim_pixel", "unet")
#: the thesis' names of our losses (Table 4.3 rows)
LOSS_LABELS = {"fcdd": "FCDD", "ssim_pixel": "SSIM", "unet": "LGS"}
_THESIS_LOSS = {"fcdd": "fcdd", "ssim_pixel": "ssim", "unet": "logistic"}
PAPER_METHODS = ("fully_trained", "platt_oe", "platt_spectral", "beta_oe", "beta_spectral")
METHODS = ("fully_trained", "base", "platt_oe", "platt_spectral", "beta_oe", "beta_spectral", "beta_naive_oe",
           "beta_naive_spectral", "location_platt_oe", "location_platt_spectral", "local_oe", "local_spectral",
           "head_oe", "head_spectral")
_SCALAR = ("platt", "beta", "beta_naive")
#: adaptive calibrators: (kind, features, calibrator options) for calad.adaptive.calibrate_adaptive_set
_ADAPTIVE = {"location_platt": ("location_platt", (), None), "local": ("local", ("logit", "context", "position"), None),
             "head": ("local", ("logit", "network"), None)}
#: methods whose maps the heatmap figure shows
HEATMAP_METHODS = ("fully_trained", "base", "platt_spectral", "location_platt_spectral", "local_spectral",
                   "head_spectral")
_TABLE_DIR = Path(__file__).resolve().parent / "thesis_tables"


@dataclass(frozen=True)
class LocalizationConfig:
    """One localization run (validated on construction; see the module doc).

    ``size``: the model's input side (textures: any 8·2^k ≥ 32; thesis: 256, FCDD 224); ``crop``: resize
    to 292 (256) and train on random ``size`` crops (§4.2.1); ``net``, ``gauss_std`` and ``weights`` (a local
    VGG11-BN file, FCDD only) go to :class:`calad_lib.train.TrainConfig`. ``n_oe``: OE training images (FCDD, U-Net);
    ``n_calib``: normal draws (augmented) and synthetic anomalies per calibrator; ``n_eval``: held-out
    synthetic anomalies for ECE/MCE; ``n_test``: evaluate on this many test images only (a third good, the
    rest defective, evenly spread; ``None``: all). ``patches``/``radius``: pasted patches per image and their
    semi-axes (fractions of the side) for the adaptive calibrators.
    """

    dataset: str
    loss: str
    seed: int = 0
    size: int = 64
    crop: bool = False
    epochs: int = 10
    milestones: tuple[int, ...] = ()
    lr: float = 1e-4
    batch_size: int = 128
    net: str | None = None
    gauss_std: float | None = None
    weights: str | None = None
    n_oe: int = 1000
    n_calib: int = 500
    n_eval: int = 100
    n_test: int | None = None
    eps: float = 1.4e-3
    methods: tuple[str, ...] = METHODS
    patches: tuple[int, int] = (1, 3)
    radius: tuple[float, float] = (0.04, 0.15)
    n_bins: int = 10

    def __post_init__(self):
        from .data import parse_name

        kind, cls = parse_name(self.dataset)
        if cls is None or kind not in ("textures", "mvtec", "mpdd"):
            raise ValueError(f"localization needs textures:<class>, mvtec:<class> or mpdd:<class>, "
                             f"got {self.dataset!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown localization loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        for name in ("seed", "size", "epochs", "batch_size", "n_oe", "n_calib", "n_eval", "n_bins"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "seed" else 1):
                raise ValueError(f"{name} = {v!r} must be a positive integer")
        if self.n_test is not None and (isinstance(self.n_test, bool) or int(self.n_test) < 4):
            raise ValueError(f"n_test = {self.n_test!r} must be None or at least 4")
        if self.size < 16:
            raise ValueError(f"size = {self.size} is too small; use at least 32 (the autoencoder needs 8·2^k >= 32)")
        if not (self.eps >= 0 and self.lr > 0):
            raise ValueError(f"need eps >= 0 and lr > 0, got eps={self.eps}, lr={self.lr}")
        methods = tuple(self.methods)
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise ValueError(f"unknown method {bad[0] if bad else None!r}; choose from {', '.join(METHODS)}")
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "patches", tuple(int(v) for v in self.patches))
        object.__setattr__(self, "radius", tuple(float(v) for v in self.radius))

    @property
    def class_name(self) -> str:
        return self.dataset.partition(":")[2]

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("milestones", "methods", "patches", "radius"):
            d[k] = list(d[k])
        return {**d, "version": RESULTS_VERSION, "code": code_fingerprint(*CODE)}


def configs_from_params(P) -> list[LocalizationConfig]:
    """The runs of chapter 06's parameters ``P`` (class × loss × seed; FCDD at ``fcdd_size`` when given)."""
    out = []
    for dataset in P["classes"]:
        for loss in P["losses"]:
            for seed in P["seeds"]:
                size = P["fcdd_size"] if loss == "fcdd" and P.get("fcdd_size") else P["size"]
                out.append(LocalizationConfig(
                    dataset=dataset, loss=loss, seed=seed, size=size, crop=P["crop"], epochs=P["epochs"],
                    milestones=tuple(P["milestones"]), lr=P["lr"], batch_size=P["batch_size"],
                    gauss_std=P.get("gauss_std"), weights=P.get("fcdd_weights"), n_oe=P["n_oe"],
                    n_calib=P["n_calib"], n_eval=P["n_eval"], n_test=P.get("n_test"), eps=P["eps"],
                    methods=tuple(P["methods"]), patches=tuple(P["patches"]), radius=tuple(P["radius"])))
    return out


def check_configs(configs: Iterable[LocalizationConfig]) -> list[LocalizationConfig]:
    """Fail in one line, before any training, if a dataset of ``configs`` is not available."""
    from .data import DataNotFound, class_folder, parse_name
    from .synthesis import TEXTURE_CLASSES

    configs = list(configs)
    for cfg in configs:
        kind, cls = parse_name(cfg.dataset)
        if kind == "textures":
            if cls not in TEXTURE_CLASSES:
                raise ValueError(f"unknown texture class {cls!r}; choose one of {', '.join(TEXTURE_CLASSES)}")
        elif not class_folder(kind, cls, None).is_dir():
            folder = f"{'mvtec_ad' if kind == 'mvtec' else 'mpdd'}/{cls}"
            raise DataNotFound(f"{cfg.dataset} not found under $CALAD_DATA (MVTec layout: <root>/{folder}); "
                               "install it there or use textures:<class>")
    return configs


def store_for(preset: str) -> ResultStore:
    """The results store of chapter 06 for ``preset``: ``results/06_localization/<preset>/``."""
    return ResultStore(results_dir() / "06_localization" / str(preset))


# ---------------------------------------------------------------------------------------------
class Prepared(NamedTuple):
    """A run's data, trained and calibrated models and evaluation sets."""

    config: LocalizationConfig
    data: object                  # calad.data.PerClass
    models: dict                  # method -> AnomalyModel
    fit_seconds: dict             # method -> seconds spent calibrating (training is cached)
    eval_anomalies: torch.Tensor  # held-out whole synthetic anomalies (ECE/MCE, §4.2.2)
    patch_x: torch.Tensor         # good test images with held-out patches pasted in
    patch_masks: torch.Tensor


def _interleave(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    n = min(len(a), len(b))
    out = torch.stack([a[:n], b[:n]], dim=1).flatten(0, 1)
    return torch.cat([out, a[n:], b[n:]])


def _scalar_models(base, kinds: Sequence[str], *, normal, anomalous, n: int, augment, augment_anomalous: bool,
                   seed: int, progress: bool, batch_size: int = 256) -> list:
    """Per-pixel Platt/β models of ``kinds`` (``platt``, ``beta``, ``beta_naive``) fitted on *one* set of logits.

    The draws are exactly those of :func:`calad_lib.calibration.calibrate` with the same arguments, so
    each model equals ``calibrate(base, kind, ...)``; the logits are computed once for all kinds.
    """
    from .calibration import calibrate_many

    if not kinds:
        return []
    models = calibrate_many(base, list(kinds), normal=normal, anomalous=anomalous, n=int(n), augment=augment,
                            augment_anomalous=augment_anomalous, seed=seed, batch_size=batch_size,
                            progress=progress, quiet_platt=True)   # a reversing fit is recorded in the rows
    return [models[k] for k in kinds]


def _subset_test(data, n: int | None):
    """``data`` with at most ``n`` test images: the first third good ones, the defective ones evenly spread."""
    if n is None or n >= len(data.test_y):
        return data
    good, bad = torch.nonzero(data.test_y == 0).flatten(), torch.nonzero(data.test_y == 1).flatten()
    n_good = min(len(good), max(1, n // 3))
    n_bad = min(len(bad), n - n_good)
    idx = torch.cat([good[:n_good], bad[torch.linspace(0, len(bad) - 1, n_bad).round().long()]])
    return data._replace(test_x=data.test_x[idx], test_y=data.test_y[idx], test_masks=data.test_masks[idx],
                         defect_types=tuple(data.defect_types[i] for i in idx.tolist()))


def prepare(cfg: LocalizationConfig, methods: Sequence[str] | None = None, *, progress: bool = True) -> Prepared:
    """Load the data, train (or load) the base networks and fit every calibrator of ``methods``."""
    from . import data as D
    from . import synthesis as S
    from .losses import SUPERVISED
    from .train import TrainConfig, train

    methods = tuple(cfg.methods if methods is None else methods)
    check_configs([cfg])
    data = _subset_test(D.per_class(cfg.dataset, size=cfg.size, seed=cfg.seed, crop=cfg.crop, progress=progress),
                        cfg.n_test)
    ch = int(data.test_x.shape[1])
    in_size = D.pre_crop_size(cfg.size) if cfg.crop else cfg.size
    supervised = cfg.loss in SUPERVISED
    oe_train = S.oe_images(cfg.n_oe, ch, in_size, seed=cfg.seed, part="train") if supervised else None
    hflip = D.hflip_ok(cfg.dataset)
    common = dict(loss=cfg.loss, dataset=cfg.dataset, normal_class=cfg.class_name, seed=cfg.seed, epochs=cfg.epochs,
                  milestones=cfg.milestones, lr=cfg.lr, batch_size=cfg.batch_size, hflip=hflip,
                  oe_source="photos" if supervised else None, crop=cfg.size if cfg.crop else None, net=cfg.net,
                  gauss_std=cfg.gauss_std, weights=cfg.weights if cfg.loss == "fcdd" else None)
    models, seconds = {}, {}
    base = train(TrainConfig(**common, split="train"), data.train, oe_train, progress=progress)
    if "fully_trained" in methods:
        models["fully_trained"] = train(TrainConfig(**common, split="full"), data.full_train, oe_train,
                                        progress=progress)
    aug = D.Augment(hflip=hflip, crop=cfg.size if cfg.crop else None)
    oe_cal = S.oe_images(cfg.n_calib, ch, in_size, seed=cfg.seed, part="calib")
    # the adaptive calibrators take anomalies at the model's input size (they are pasted, or used whole, unaugmented)
    oe_patch = oe_cal if not cfg.crop else S.oe_images(cfg.n_calib, ch, cfg.size, seed=cfg.seed, part="calib")
    spec = S.spectral(cfg.n_calib, ch, cfg.size, seed=10_000 + cfg.seed)
    patch_kw = {"patches": cfg.patches, "radius": cfg.radius}
    for src, anomalies in (("oe", oe_cal), ("spectral", spec)):
        scalar = [m for m in methods if m.rsplit("_", 1) in ([k, src] for k in _SCALAR)]
        t0 = time.perf_counter()
        fitted = _scalar_models(base, [m.rsplit("_", 1)[0] for m in scalar], normal=data.calib, anomalous=anomalies,
                                n=cfg.n_calib, augment=aug, augment_anomalous=src == "oe", seed=cfg.seed,
                                progress=progress)
        for m, model in zip(scalar, fitted):
            models[m], seconds[m] = model, (time.perf_counter() - t0) / len(scalar)
        for paste in (False, True):
            specs = {m: _ADAPTIVE[m.rsplit("_", 1)[0]] for m in methods
                     if m.endswith("_" + src) and m.rsplit("_", 1)[0] in _ADAPTIVE
                     and (m.rsplit("_", 1)[0] != "location_platt") == paste}
            if not specs:
                continue
            t0 = time.perf_counter()
            fitted = calibrate_adaptive_set(base, specs, normal=data.calib, n=cfg.n_calib, paste=paste, augment=aug,
                                            anomalous=oe_patch if src == "oe" else spec,
                                            patch_kw=patch_kw, seed=cfg.seed, progress=progress)
            for m, model in fitted.items():
                models[m], seconds[m] = model, (time.perf_counter() - t0) / len(fitted)
    if "base" in methods:
        models["base"] = base
    models = {m: models[m] for m in methods if m in models}
    half = (cfg.n_eval + 1) // 2
    held = _interleave(S.oe_images(half, ch, cfg.size, seed=cfg.seed, part="test"),
                       S.spectral(cfg.n_eval - half, ch, cfg.size, seed=20_000 + cfg.seed))
    good = data.test_x[data.test_y == 0]
    px, pm = paste_patches(good, held, seed=30_000 + cfg.seed, **patch_kw)
    return Prepared(cfg, data, models, seconds, held, px, pm)


def _scores(model, x: torch.Tensor, logits: dict, key: str, batch_size: int = 64):
    """Unperturbed ``(score, eta, logit)`` of ``model`` on ``x``; calibrators of a shared base reuse its logits.

    ``logits`` caches the base network's logit maps per evaluation set ``key``, so each Platt/β/location/
    local calibrator only applies its transform — exactly what its ``outputs`` computes.
    """
    from .adaptive import AdaptiveCalibratedModel
    from .calibration import CalibratedModel
    from .perturbation import perturbed_outputs

    shared = (isinstance(model, CalibratedModel) and model.method != "head") or \
        (isinstance(model, AdaptiveCalibratedModel) and not model.calibrator.needs_network)
    if not shared:
        o = perturbed_outputs(model, x, batch_size=batch_size)
        return o.score, o.eta, o.logit
    if key not in logits:
        logits[key] = perturbed_outputs(model.base, x, batch_size=batch_size).logit
    with torch.no_grad():
        z = model.calibrator.transform(logits[key])
    return z, torch.sigmoid(z), z


def evaluate_prepared(p: Prepared, *, progress: bool = True) -> list[dict]:
    """One row per method of a :func:`prepare`'d run (module doc lists the columns).

    The metrics are those of :func:`calad_lib.metrics.evaluate` (pixel AUROC and AUPRO, unperturbed and
    perturbed with label 0; pixel ECE/MCE on the normal test images against as many held-out synthetic
    anomalies) plus the ``_patch`` calibration errors and the diagnostics; the unperturbed base logits
    are computed once and shared by the calibrators of that base.
    """
    from .perturbation import perturbed_outputs

    cfg, d = p.config, p.data
    masks = d.test_masks[:, 0]
    good = d.test_x[d.test_y == 0]
    m = min(len(good), len(p.eval_anomalies))
    ece_labels = torch.cat([torch.zeros(m, *good.shape[-2:]), torch.ones(m, *good.shape[-2:])])
    patch_labels = torch.cat([torch.zeros(good.shape[0], *good.shape[-2:]), p.patch_masks.cpu()])
    sets = {"test": d.test_x, "good": good, "eval": p.eval_anomalies[:m], "patch": p.patch_x}
    logits: dict = {}
    base = p.models.get("base") or next((mod.base for mod in p.models.values() if hasattr(mod, "base")), None)
    ref = _scores(base, d.test_x, logits, "test")[0] if base is not None else None
    rows = []
    for method, model in progress_bar(p.models.items(), desc=f"evaluating {cfg.loss} {cfg.dataset}", disable=not progress,
                              leave=False):
        t0 = time.perf_counter()
        out = {k: _scores(model, x, logits, k) for k, x in sets.items()}
        score, eta, logit = out["test"]
        r = {"method": method, "pixel_auroc": metrics.pixel_auroc(masks, score), "aupro": metrics.aupro(masks, score)}
        if cfg.eps > 0:
            sp = perturbed_outputs(model, d.test_x, eps=cfg.eps, y=0).score
            r.update(pixel_auroc_perturbed=metrics.pixel_auroc(masks, sp), aupro_perturbed=metrics.aupro(masks, sp))
            r["kappa"] = metrics.kappa(r["pixel_auroc_perturbed"], r["pixel_auroc"])
        eta_ece = torch.cat([out["good"][1][:m], out["eval"][1]])
        eta_patch = torch.cat([out["good"][1], out["patch"][1]])
        r.update({
            "pixel_ece": metrics.pixel_ece(ece_labels, eta_ece, cfg.n_bins),
            "pixel_mce": metrics.pixel_mce(ece_labels, eta_ece, cfg.n_bins),
            "pixel_ece_patch": metrics.pixel_ece(patch_labels, eta_patch, cfg.n_bins),
            "pixel_mce_patch": metrics.pixel_mce(patch_labels, eta_patch, cfg.n_bins),
            "rank_corr": within_image_rank_corr(ref, score) if ref is not None else float("nan"),
            "pixel_auroc_eta32": metrics.pixel_auroc(masks, torch.sigmoid(logit.float())),
            "cal_params": json.dumps({k: round(v, 6) for k, v in model.calibrator.params().items()})
            if hasattr(getattr(model, "calibrator", None), "params") else "",
            "fit_seconds": p.fit_seconds.get(method, 0.0), "eval_seconds": time.perf_counter() - t0,
        })
        rows.append(r)
    return rows


def _heatmap_path(store: ResultStore, cfg: LocalizationConfig) -> Path:
    return store.path(cfg.as_dict()).with_suffix(".heatmaps.npz")


def _save_heatmaps(path: Path, hm: dict) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"image": hm["image"].astype(np.float16), "mask": hm["mask"].astype(np.uint8),
              "defect": np.array(hm["defect"]), **{f"map_{k}": v.astype(np.float16) for k, v in hm["maps"].items()}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_heatmaps(cfg: LocalizationConfig, store: ResultStore) -> dict | None:
    """The heatmap data :func:`run` saved for ``cfg`` (see :func:`heatmap_data`), or ``None``."""
    path = _heatmap_path(store, cfg)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {"image": z["image"].astype(np.float32), "mask": z["mask"].astype(bool),
                    "defect": [str(v) for v in z["defect"]],
                    "maps": {k[4:]: z[k].astype(np.float32) for k in z.files if k.startswith("map_")}}
    except (OSError, ValueError, KeyError):
        return None


def run(cfg: LocalizationConfig, store: ResultStore | None = None, *, heatmaps: int = 0,
        progress: bool = True) -> list[dict]:
    """The rows of one run: read from ``store`` when complete there, else computed and stored atomically.

    With ``heatmaps > 0`` (and a store) the maps of that many defective test images are saved beside the
    rows for :data:`HEATMAP_METHODS` (recomputed if a finished run lacks them).
    """
    key = cfg.as_dict()
    need_rows = store is None or not store.done(key)
    need_maps = bool(heatmaps) and store is not None and load_heatmaps(cfg, store) is None
    if not (need_rows or need_maps):
        return store.read(key)
    prepared = prepare(cfg, methods=None if need_rows else [m for m in HEATMAP_METHODS if m in cfg.methods],
                       progress=progress)
    if need_maps:
        _save_heatmaps(_heatmap_path(store, cfg), heatmap_data(prepared, HEATMAP_METHODS, heatmaps))
    if not need_rows:
        return store.read(key)
    rows = evaluate_prepared(prepared, progress=progress)
    if store is not None:
        store.write(key, rows)
    return rows


def run_grid(configs: Iterable[LocalizationConfig], store: ResultStore | None = None, *, heatmaps: int = 0,
             heatmap_seed: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Run (or read) every configuration; one row per configuration × method, with the configuration's fields.

    Heatmaps (``heatmaps`` images) are saved for the runs whose seed is ``heatmap_seed`` (default: the first).
    ``progress`` shows one bar over the runs (the work inside each run is quiet).
    """
    configs = check_configs(configs)
    if heatmap_seed is None and configs:
        heatmap_seed = configs[0].seed
    out = []
    bar = progress_bar(configs, desc="localization runs", disable=not progress)
    for cfg in bar:
        bar.set_postfix_str(f"{cfg.class_name} {cfg.loss} seed {cfg.seed}")
        rows = run(cfg, store, heatmaps=heatmaps if cfg.seed == heatmap_seed else 0, progress=False)
        for row in rows:
            out.append({"dataset": cfg.dataset, "family": cfg.dataset.partition(":")[0], "class": cfg.class_name,
                        "loss": cfg.loss, "seed": cfg.seed, **row})
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------
def heatmap_data(p: Prepared, methods: Sequence[str], n: int = 3) -> dict:
    """Images, masks and maps of ``n`` defective test images for ``methods`` (for the heatmap figure).

    Each map is the method's anomaly score scaled by its 1st and 99th percentile over the whole test
    set (one scale per method, as a single threshold sees it), clipped to [0, 1].
    """
    from .perturbation import perturbed_outputs

    d = p.data
    defective = torch.nonzero(d.test_y == 1).flatten()
    pick = defective[torch.linspace(0, len(defective) - 1, min(n, len(defective))).round().long()]
    out = {"image": d.test_x[pick].permute(0, 2, 3, 1).numpy(), "mask": d.test_masks[pick, 0].numpy(),
           "defect": [d.defect_types[i] for i in pick.tolist()], "maps": {}}
    for m in methods:
        if m not in p.models:
            continue
        s = perturbed_outputs(p.models[m], d.test_x).score.double()
        lo, hi = torch.quantile(s.flatten()[::max(1, s.numel() // 200_000)], torch.tensor([0.01, 0.99], dtype=s.dtype))
        out["maps"][m] = ((s[pick] - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1).numpy()
    return out


#: column labels of tables and figures
METHOD_LABELS = {"fully_trained": "Fully Trained", "base": "Base (3/4 split)", "platt_oe": "Platt OE",
                 "platt_spectral": "Platt Spectral", "beta_oe": "β OE", "beta_spectral": "β Spectral",
                 "beta_naive_oe": "β naive OE", "beta_naive_spectral": "β naive Spectral",
                 "location_platt_oe": "Platt/location OE", "location_platt_spectral": "Platt/location Spectral",
                 "local_oe": "Local OE", "local_spectral": "Local Spectral", "head_oe": "1×1 head OE",
                 "head_spectral": "1×1 head Spectral"}


def heatmaps_for(configs: Sequence[LocalizationConfig], store: ResultStore, loss: str) -> tuple[str, dict | None]:
    """``(title, heatmap data)`` of the first run of ``loss`` in ``configs`` (its first seed) that saved maps."""
    for cfg in configs:
        if cfg.loss == loss and cfg.seed == configs[0].seed:
            hm = load_heatmaps(cfg, store)
            if hm is not None:
                return f"{LOSS_LABELS.get(loss, loss)}, {cfg.class_name}", hm
    return LOSS_LABELS.get(loss, loss), None


def heatmap_figure(title: str, hm: dict | None, methods: Sequence[str] = HEATMAP_METHODS, *, index: int = 0,
                   width: float = 7.2):
    """One defective test image of ``hm`` (see :func:`heatmap_data`) in rows of three panels: the image,
    its ground truth and the scaled map of each of ``methods``, with one colour bar for the maps.
    ``title`` heads the figure (with the defect type). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    if hm is None:
        fig, ax = plt.subplots(figsize=(width, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no heatmaps saved for this preset", ha="center", va="center", fontsize=11)
        return fig
    methods = [m for m in methods if m in hm["maps"]]
    n = 2 + len(methods)
    rows = -(-n // 3)
    fig, axes = plt.subplots(rows, 3, figsize=(width, width / 3.4 * rows + 0.5), squeeze=False)
    img = np.clip(hm["image"][index], 0, 1)
    axes[0, 0].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
    axes[0, 1].imshow(hm["mask"][index], cmap="gray", vmin=0, vmax=1)
    shown = None
    for j, m in enumerate(methods, start=2):
        shown = axes.flat[j].imshow(hm["maps"][m][index], cmap="inferno", vmin=0, vmax=1)
    for j, label in enumerate(["image", "ground truth", *[METHOD_LABELS.get(m, m) for m in methods]]):
        axes.flat[j].set_title(label, fontsize=10)
    for j, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if j >= n:
            ax.axis("off")
    fig.suptitle(f"{title}: {hm['defect'][index]}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    if shown is not None:
        cax = fig.add_axes((0.91, 0.15, 0.02, 0.7), label="<colorbar>")
        bar = fig.colorbar(shown, cax=cax)
        bar.set_label("score, scaled per model", fontsize=10)
        bar.ax.tick_params(labelsize=9)
    return fig
