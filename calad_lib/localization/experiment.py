"""Localization experiments: per-pixel post-hoc calibration, AUPRO, Table 4.3 (thesis §4.1.3–4, §4.2, §4.3.2).

One run is a :class:`LocalizationConfig` — a dataset class × pixel-wise base loss (``fcdd``, ``ssim_pixel``,
``unet`` = the per-pixel logistic loss, "LGS") × seed — and gives one result row per *method*:

===========================  =============================================================================
method                       model
===========================  =============================================================================
``fully_trained``            the base loss trained on all normal training images (§4.2.1's comparison)
``base``                     the base loss trained on the 3/4 split, uncalibrated (what the calibrators start from)
``platt_<src>``              per-pixel Platt scaling of ``base`` (one transform for every pixel, Proposition 1)
``beta_<src>``               per-pixel β calibration, ``stable`` variant; ``beta_naive_<src>`` the float32 variant
``location_platt_<src>``     one Platt transform per map location (:class:`~calad_lib.calibration.LocationPlatt`)
``local_<src>``              :class:`~calad_lib.calibration.LocalCalibrator` on logit, context and position,
                             fitted on pasted patches (beyond the thesis)
``local_network_<src>``      the same on logit and the network's last feature map (a 1×1 convolution)
===========================  =============================================================================

``<src>`` is ``oe`` (outlier-exposure images of the ``calib`` part) or ``spectral`` (random 1/f^α images,
§3.4). Platt, β and Platt per location follow §4.2.1 (:func:`calad_lib.calibration.calibrate`): every pixel
of a normal calibration image is labelled 0, every pixel of a synthetic anomaly 1. The local calibrators
see the same normal draws and, as anomalies, normal images with patches of the synthetic ones pasted in,
labelled by their masks. Each row holds the pixel AUROC and AUPRO, unperturbed and after gradient input
perturbation (ε = 1.4·10⁻³, §4.2.2), the pixel ECE and MCE of §4.2.2 (normal test images against as many
held-out *whole* synthetic anomalies), the same on held-out *pasted* anomalies (``_patch``), the fitted
parameters (``cal_params``, JSON) and two diagnostics: ``rank_corr`` (mean within-image Spearman
correlation with the ``base`` map: 1 when a method cannot reorder the pixels of an image) and
``pixel_auroc_eta32`` (pixel AUROC when the ranking uses η̂ = σ(z) rounded to float32, where saturated
pixels tie). Runs are stored under ``results/06_localization/<preset>/`` and resume after an interruption.
"""
from __future__ import annotations

import dataclasses
import io
import json
import time
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch

from .. import data as D
from .. import metrics
from .. import synthesis as S
from ..calibration import calibrate
from ..config import check_config
from ..losses import SUPERVISED
from ..paths import results_dir
from ..perturbation import perturbed_outputs
from ..progress import bar as progress_bar
from ..provenance import code_fingerprint
from ..runs import ResultStore, run_all
from ..scoring import SharedOutputs
from ..train import TrainConfig, train

__all__ = ["METHODS", "PAPER_METHODS", "LOSSES", "LOSS_LABELS", "METHOD_LABELS", "LocalizationConfig", "Prepared",
           "prepare", "evaluate_prepared", "run", "run_grid", "store_for", "check_configs", "configs_from_params",
           "RESULTS_VERSION", "COLUMNS", "HEATMAP_METHODS", "heatmap_data", "encode_heatmaps"]

#: bump when a change of the code changes the numbers (old results are then not reused)
RESULTS_VERSION = 2
#: the code a run's rows depend on: its fingerprint is part of the run's key
CODE = ("calad_lib.localization.experiment", "calad_lib.localization.heatmaps", "calad_lib.train",
        "calad_lib.calibration", "calad_lib.scoring", "calad_lib.perturbation", "calad_lib.metrics",
        "calad_lib.detector", "calad_lib.nets", "calad_lib.losses", "calad_lib.data", "calad_lib.synthesis")
LOSSES = ("fcdd", "ssim_pixel", "unet")
#: the thesis' names of our losses (Table 4.3 rows)
LOSS_LABELS = {"fcdd": "FCDD", "ssim_pixel": "SSIM", "unet": "LGS"}
PAPER_METHODS = ("fully_trained", "platt_oe", "platt_spectral", "beta_oe", "beta_spectral")
METHODS = ("fully_trained", "base", "platt_oe", "platt_spectral", "beta_oe", "beta_spectral", "beta_naive_oe",
           "beta_naive_spectral", "location_platt_oe", "location_platt_spectral", "local_oe", "local_spectral",
           "local_network_oe", "local_network_spectral")
#: calibrators fitted on whole synthetic anomalies (§4.2.1) and on pasted patches
_WHOLE = ("platt", "beta", "beta_naive", "location_platt")
_PASTED = ("local", "local_network")
#: column labels of tables and figures
METHOD_LABELS = {"fully_trained": "Fully Trained", "base": "Base (3/4 split)", "platt_oe": "Platt OE",
                 "platt_spectral": "Platt Spectral", "beta_oe": "β OE", "beta_spectral": "β Spectral",
                 "beta_naive_oe": "β naive OE", "beta_naive_spectral": "β naive Spectral",
                 "location_platt_oe": "Platt/location OE", "location_platt_spectral": "Platt/location Spectral",
                 "local_oe": "Local OE", "local_spectral": "Local Spectral", "local_network_oe": "Local+net OE",
                 "local_network_spectral": "Local+net Spectral"}
#: methods whose maps the heatmap figure shows
HEATMAP_METHODS = ("fully_trained", "base", "platt_spectral", "location_platt_spectral", "local_spectral",
                   "local_network_spectral")
#: what every row of a finished run holds
COLUMNS = ("method", "pixel_auroc", "aupro", "pixel_ece", "pixel_mce", "dataset", "loss", "seed")


@dataclass(frozen=True)
class LocalizationConfig:
    """One localization run (ranges: ``params/schema/configs/localization.yaml``; see the module doc).

    ``size``: the model's input side (textures: any 8·2^k ≥ 32; thesis: 256, FCDD 224); ``crop``: resize
    to 292 (256) and train on random ``size`` crops (§4.2.1); ``net``, ``gauss_std`` and ``weights`` (a local
    VGG11-BN file, FCDD only) go to :class:`calad_lib.train.TrainConfig`. ``n_oe``: OE training images (FCDD, U-Net);
    ``n_calib``: normal draws (augmented) and synthetic anomalies per calibrator; ``n_eval``: held-out
    synthetic anomalies for ECE/MCE; ``n_test``: evaluate on this many test images only (a third good, the
    rest defective, evenly spread; ``None``: all). ``patches``/``radius``: pasted patches per image and their
    semi-axes (fractions of the side) for the local calibrators. ``heatmaps``: save the maps of that many
    defective test images beside the rows, for the heatmap figures.
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
    heatmaps: int = 0

    def __post_init__(self):
        check_config(self, "localization")
        kind, cls = D.parse_name(self.dataset)
        if cls is None or kind not in ("textures", "mvtec", "mpdd"):
            raise ValueError(f"localization needs textures:<class>, mvtec:<class> or mpdd:<class>, "
                             f"got {self.dataset!r}")
        for name in ("methods", "patches", "radius"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))

    @property
    def class_name(self) -> str:
        return self.dataset.partition(":")[2]

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("milestones", "methods", "patches", "radius"):
            d[k] = list(d[k])
        return {**d, "version": RESULTS_VERSION, "code": code_fingerprint(*CODE)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "LocalizationConfig":
        return cls(**{k: v for k, v in d.items() if k not in ("version", "code")})

    @classmethod
    def from_params(cls, params: Mapping, **fields) -> "LocalizationConfig":
        """The run of chapter 06's validated parameters ``params``: every field found there, ``fields`` overriding."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in dict(params).items() if k in names}, **fields})


def configs_from_params(P) -> list[LocalizationConfig]:
    """The runs of chapter 06's parameters ``P`` (class × loss × seed; FCDD at ``fcdd_size`` when given;
    the first seed's runs save ``heatmap_images`` heatmaps)."""
    return [LocalizationConfig.from_params(
                P, dataset=dataset, loss=loss, seed=seed, weights=P.get("fcdd_weights") if loss == "fcdd" else None,
                size=P["fcdd_size"] if loss == "fcdd" and P.get("fcdd_size") else P["size"],
                heatmaps=P.get("heatmap_images", 0) if seed == P["seeds"][0] else 0)
            for dataset in P["classes"] for loss in P["losses"] for seed in P["seeds"]]


def check_configs(configs: Iterable[LocalizationConfig]) -> list[LocalizationConfig]:
    """Fail in one line, before any training, if a dataset of ``configs`` is not available."""
    configs = list(configs)
    for cfg in configs:
        kind, cls = D.parse_name(cfg.dataset)
        if kind == "textures":
            if cls not in S.TEXTURE_CLASSES:
                raise ValueError(f"unknown texture class {cls!r}; choose one of {', '.join(S.TEXTURE_CLASSES)}")
        elif not D.class_folder(kind, cls, None).is_dir():
            folder = f"{'mvtec_ad' if kind == 'mvtec' else 'mpdd'}/{cls}"
            raise D.DataNotFound(f"{cfg.dataset} not found under $CALAD_DATA (MVTec layout: <root>/{folder}); "
                                 "install it there or use textures:<class>")
    return configs


def store_for(preset: str) -> ResultStore:
    """The results store of chapter 06 for ``preset``: ``results/06_localization/<preset>/``."""
    return ResultStore(results_dir() / "06_localization" / str(preset), columns=COLUMNS)


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
    methods = tuple(cfg.methods if methods is None else methods)
    check_configs([cfg])
    data = _subset_test(D.per_class(cfg.dataset, size=cfg.size, seed=cfg.seed, crop=cfg.crop, progress=progress),
                        cfg.n_test)
    ch = int(data.test_x.shape[1])
    in_size = D.pre_crop_size(cfg.size) if cfg.crop else cfg.size
    supervised = cfg.loss in SUPERVISED
    oe_train = S.oe_images(cfg.n_oe, ch, in_size, seed=cfg.seed, part="train") if supervised else None
    hflip = D.hflip_ok(cfg.dataset)
    common = TrainConfig.from_params(cfg, normal_class=cfg.class_name, hflip=hflip, crop=cfg.size if cfg.crop else None,
                                     oe_source="photos" if supervised else None,
                                     weights=cfg.weights if cfg.loss == "fcdd" else None)
    models, seconds = {}, {}
    base = train(dataclasses.replace(common, split="train"), data.train, oe_train, progress=progress)
    if "fully_trained" in methods:
        models["fully_trained"] = train(dataclasses.replace(common, split="full"), data.full_train, oe_train,
                                        progress=progress)
    aug = D.Augment(hflip=hflip, crop=cfg.size if cfg.crop else None)
    oe_cal = S.oe_images(cfg.n_calib, ch, in_size, seed=cfg.seed, part="calib")
    # pasted patches come at the model's input size (they are pasted into augmented, cropped normal images)
    oe_patch = oe_cal if not cfg.crop else S.oe_images(cfg.n_calib, ch, cfg.size, seed=cfg.seed, part="calib")
    spec = S.spectral(cfg.n_calib, ch, cfg.size, seed=10_000 + cfg.seed)
    patch_kw = {"patches": cfg.patches, "radius": cfg.radius}
    for src, whole, pasted in (("oe", oe_cal, oe_patch), ("spectral", spec, spec)):
        for kinds, anomalies, kw in ((_WHOLE, whole, {"augment_anomalous": src == "oe"}),
                                     (_PASTED, pasted, {"anomalies": "pasted", "patch_kw": patch_kw,
                                                        "forward_batch": 64})):
            wanted = {m: m.rsplit("_", 1)[0] for m in methods if m.endswith("_" + src) and m.rsplit("_", 1)[0] in kinds}
            if not wanted:
                continue
            t0 = time.perf_counter()
            fitted = calibrate(base, list(wanted.values()), normal=data.calib, anomalous=anomalies, n=cfg.n_calib,
                               augment=aug, seed=cfg.seed, progress=progress, quiet=True, **kw)
            for m, kind in wanted.items():
                models[m], seconds[m] = fitted[kind], (time.perf_counter() - t0) / len(wanted)
    if "base" in methods:
        models["base"] = base
    models = {m: models[m] for m in methods if m in models}
    half = (cfg.n_eval + 1) // 2
    held = _interleave(S.oe_images(half, ch, cfg.size, seed=cfg.seed, part="test"),
                       S.spectral(cfg.n_eval - half, ch, cfg.size, seed=20_000 + cfg.seed))
    good = data.test_x[data.test_y == 0]
    px, pm = S.paste_patches(good, held, seed=30_000 + cfg.seed, **patch_kw)
    return Prepared(cfg, data, models, seconds, held, px, pm)


def evaluate_prepared(p: Prepared, *, progress: bool = True) -> list[dict]:
    """One row per method of a :func:`prepare`'d run (the module doc lists the columns).

    The metrics are those of :func:`calad_lib.perturbation.evaluate` (pixel AUROC and AUPRO, unperturbed
    and perturbed with label 0; pixel ECE/MCE on the normal test images against as many held-out synthetic
    anomalies) plus the ``_patch`` calibration errors and the diagnostics; the unperturbed base logits are
    computed once and shared by the calibrators of that base (:class:`calad_lib.scoring.SharedOutputs`).
    """
    cfg, d = p.config, p.data
    masks = d.test_masks[:, 0]
    good = d.test_x[d.test_y == 0]
    m = min(len(good), len(p.eval_anomalies))
    ece_labels = torch.cat([torch.zeros(m, *good.shape[-2:]), torch.ones(m, *good.shape[-2:])])
    patch_labels = torch.cat([torch.zeros(good.shape[0], *good.shape[-2:]), p.patch_masks.cpu()])
    shared = SharedOutputs({"test": d.test_x, "good": good, "eval": p.eval_anomalies[:m], "patch": p.patch_x},
                           batch_size=64)
    base = p.models.get("base") or next((mod.base for mod in p.models.values() if hasattr(mod, "base")), None)
    ref = shared.outputs(base, "test").score if base is not None else None
    rows = []
    for method, model in progress_bar(p.models.items(), desc=f"evaluating {cfg.loss} {cfg.dataset}",
                                      disable=not progress, leave=False):
        t0 = time.perf_counter()
        out = {k: shared.outputs(model, k) for k in shared.sets}
        logit, _, score = out["test"]
        r = {"method": method, "pixel_auroc": metrics.pixel_auroc(masks, score), "aupro": metrics.aupro(masks, score)}
        if cfg.eps > 0:
            sp = perturbed_outputs(model, d.test_x, eps=cfg.eps, y=0).score
            r.update(pixel_auroc_perturbed=metrics.pixel_auroc(masks, sp), aupro_perturbed=metrics.aupro(masks, sp))
            r["kappa"] = metrics.kappa(r["pixel_auroc_perturbed"], r["pixel_auroc"])
        eta_ece = torch.cat([out["good"].eta[:m], out["eval"].eta])
        eta_patch = torch.cat([out["good"].eta, out["patch"].eta])
        cal = getattr(model, "calibrator", None)
        coef = cal.coefficients() if cal is not None else {}
        r.update({
            "pixel_ece": metrics.pixel_ece(ece_labels, eta_ece, cfg.n_bins),
            "pixel_mce": metrics.pixel_mce(ece_labels, eta_ece, cfg.n_bins),
            "pixel_ece_patch": metrics.pixel_ece(patch_labels, eta_patch, cfg.n_bins),
            "pixel_mce_patch": metrics.pixel_mce(patch_labels, eta_patch, cfg.n_bins),
            "rank_corr": metrics.within_image_rank_corr(ref, score) if ref is not None else float("nan"),
            "pixel_auroc_eta32": metrics.pixel_auroc(masks, torch.sigmoid(logit.float())),
            "cal_params": json.dumps({k: round(v, 6) for k, v in coef.items()}) if coef else "",
            "fit_seconds": p.fit_seconds.get(method, 0.0), "eval_seconds": time.perf_counter() - t0,
        })
        rows.append(r)
    return rows


def heatmap_data(p: Prepared, methods: Sequence[str], n: int = 3) -> dict:
    """Images, masks and maps of ``n`` defective test images for ``methods`` (for the heatmap figure).

    Each map is the method's anomaly score scaled by its 1st and 99th percentile over the whole test
    set (one scale per method, as a single threshold sees it), clipped to [0, 1].
    """
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


def encode_heatmaps(hm: dict) -> bytes:
    """:func:`heatmap_data` as a compressed ``.npz`` (float16 maps), the run's companion file."""
    buf = io.BytesIO()
    np.savez_compressed(buf, image=hm["image"].astype(np.float16), mask=hm["mask"].astype(np.uint8),
                        defect=np.array(hm["defect"]), **{f"map_{k}": v.astype(np.float16) for k, v in hm["maps"].items()})
    return buf.getvalue()


def run(cfg: LocalizationConfig, *, progress: bool = False) -> tuple[list[dict], dict[str, bytes] | None]:
    """The rows of one run (each with its dataset, loss and seed) and, when ``cfg.heatmaps``, the heatmaps'
    companion file."""
    prepared = prepare(cfg, progress=progress)
    rows = [{"dataset": cfg.dataset, "loss": cfg.loss, "seed": cfg.seed, **r}
            for r in evaluate_prepared(prepared, progress=progress)]
    if not cfg.heatmaps:
        return rows, None
    maps = heatmap_data(prepared, [m for m in HEATMAP_METHODS if m in prepared.models], cfg.heatmaps)
    return rows, {"heatmaps.npz": encode_heatmaps(maps)}


def _work(config: dict) -> tuple[list[dict], dict[str, bytes] | None]:
    return run(LocalizationConfig.from_dict(config))


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.insert(1, "family", df["dataset"].str.partition(":")[0])
    df.insert(2, "class", df["dataset"].str.partition(":")[2])
    return df


def run_grid(configs: Iterable[LocalizationConfig], store: ResultStore | None = None, *, preset: str | None = None,
             engine: str = "local", workers: int | None = None, threads: int | None = None,
             progress: bool = True) -> pd.DataFrame:
    """Run (or read) every configuration; one row per configuration × method, with its dataset, family,
    class, loss and seed. ``engine``, ``workers``, ``threads`` as in :func:`calad_lib.runs.run_all`."""
    configs = check_configs(configs)
    store = store or store_for(preset or "custom")
    summary = run_all([c.as_dict() for c in configs], _work, store=store, preset=preset,
                      engine=engine, workers=workers, threads=threads, progress=progress, desc="localization runs",
                      label=lambda c: f"{c['dataset'].partition(':')[2]} {c['loss']} seed {c['seed']}", tidy=_tidy)
    return summary.frame()
