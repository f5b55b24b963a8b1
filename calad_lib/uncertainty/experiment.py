"""Chapter 08's experiment (part C): every uncertainty method, trained without and with outlier exposure,
calibrated post hoc (Platt, β) and evaluated on held-out OE and on real anomalies.

:func:`run_experiments` runs every task × method × training regime through the one executor, storing each
run's rows as it finishes, so an interrupted run resumes; :func:`evaluate` gives the rows of one model.
"""
from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import torch

from ..calibration import calibrate
from ..data import one_vs_all
from ..detector import AnomalyModel
from ..metrics import auroc, ece, mce, reliability
from ..paths import results_dir
from ..perturbation import perturbed_outputs
from ..provenance import code_fingerprint
from ..runs import ResultStore, run_all
from ..synthesis import oe_images, spectral, uniform_noise
from .training import CODE, METHODS, fit_method

__all__ = ["evaluate", "OE_SOURCE", "REGIMES", "CALIBRATIONS", "REGIME_LABELS", "train_sources", "task_data",
           "run_config", "fit_task", "run_one", "run_experiments", "store_for", "COLUMNS"]

#: what every row of a finished run holds
COLUMNS = ("calibration", "auroc", "ece_oe", "ece_real", "mce_oe", "mce_real")


def _reliability_lists(y, eta, n_bins: int) -> dict[str, list]:
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
    p = _params(params)
    model = fit_task(p, data, normal_class, method, regime, device=device)
    # a weak model may get a Platt slope <= 0 (a reversed ranking); its rows show it, no warning needed
    cals = calibrate(model, ["platt", "beta"], normal=data["split"].calib, anomalous=data["oe_calib"],
                     n=p["n_calib"], augment_anomalous=True, seed=p["seed"], progress=False, quiet=True)
    return evaluate(model, normal=data["eval_normal"], anomalies=data["eval_sets"], test_x=data["test_x"],
                    test_y=data["test_y"], calibrated=[cals["platt"], cals["beta"]], n_bins=p["n_bins"])


@functools.lru_cache(maxsize=1)
def _cached_task_data(params_json: str, normal_class: int) -> dict:
    return task_data(json.loads(params_json), normal_class)     # one task's data at a time, per process


def _work(config: dict, params_json: str) -> list[dict]:
    c = int(config["normal_class"])
    data = _cached_task_data(params_json, c)
    return run_one(json.loads(params_json), data, c, config["method"], config["training anomalies"])


def store_for(preset: str | None) -> ResultStore:
    """The results store of chapter 08 for ``preset``: ``results/08_oe_uncertainty/<preset>/``."""
    return ResultStore(results_dir() / "08_oe_uncertainty" / str(preset or "custom"), columns=COLUMNS)


def run_experiments(params, *, store=None, progress: bool = True, engine: str = "local", workers: int | None = None,
                    threads: int | None = None) -> pd.DataFrame:
    """Every run of chapter 08's part C: task × method × training regime, three calibrations each.

    ``params``: the chapter's parameters (``calad.setup``'s result). Each run's rows are written to
    ``store`` (default :func:`store_for` the preset) as soon as it finishes and are read back instead of
    recomputed on a later call, so an interrupted run resumes (:func:`calad_lib.runs.run_all`). Returns one
    row per run and calibration: the :func:`run_config` fields and the :func:`evaluate` metrics.
    """
    p = _params(params)
    preset = p.get("preset")
    store = store if store is not None else store_for(preset)
    runs = [(int(c), m, r) for c in p["normal_classes"] for m in METHODS for r in REGIMES]
    configs = [run_config(p, c, m, r) for c, m, r in runs]
    params_json = json.dumps({k: p[k] for k in (*_PARAMS, "preset") if k in p}, sort_keys=True)
    summary = run_all(configs, functools.partial(_work, params_json=params_json), store=store, preset=preset,
                      engine=engine, workers=workers, threads=threads, progress=progress, desc="chapter 08 runs",
                      label=lambda c: f"class {c['normal_class']} {c['method']} {c['training anomalies']}")
    return pd.DataFrame([{**cfg, **row} for cfg in summary.configs for row in store.read(cfg)])
