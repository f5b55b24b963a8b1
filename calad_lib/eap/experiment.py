"""Seeded, resumable runs of the EAP protocol (§5.1): one result file per dataset × seed.

:func:`run_one` builds the split, fits SSDO once, scores the auxiliary set with every
method, and measures AUC_QLT and the learning curves; the EAP prior variants of Q5
(``EAP_<w>``, prior ``(w, 1 − w)``) get AUC_QLT and ACC_G. :func:`run_grid` runs the
missing configurations (in parallel processes if asked) and stores each in a
:class:`calad_lib.store.ResultStore` under ``results/07_eap/<preset>/`` keyed by its
configuration, so an interrupted grid resumes where it stopped.
"""
from __future__ import annotations

import time
from typing import Iterable

import numpy as np
import pandas as pd

from ..paths import results_dir
from ..provenance import code_fingerprint
from ..runs import ResultStore, run_all
from .baselines import METHODS, get_method
from .datasets import FEATURES, KINDS, kind_of, make_split
from .posterior import EAP
from .evaluation import LearningCurves, auc_qlt, aulc, curve_counts, ranking
from .ssdo import SSDO

__all__ = ["PROTOCOL_VERSION", "run_config", "run_one", "run_grid", "store_for", "definition_check", "stretch_study"]

#: bump when a change of the code changes the numbers (old results are then not reused)
PROTOCOL_VERSION = 1
#: the code a run's rows depend on: its fingerprint is part of the run's key
CODE = tuple(f"calad_lib.eap.{m}" for m in ("experiment", "baselines", "datasets", "evaluation", "posterior",
                                              "rarity", "scaler", "ssdo", "valuation"))


def run_config(dataset: str, seed: int, *, methods: Iterable[str] = METHODS, priors: Iterable[float] = (),
               max_normals: int = 600, max_anomalies: int = 200, n_sources: int = 5,
               unrealistic_scale: float = 3.0, lc_steps: int = 6, rf_trees: int = 50, n_models: int = 50,
               curves: bool = True, features: str = "svdd", feature_epochs: int = 20) -> dict:
    """The configuration (and store key) of one run; validates names and ranges before any work.

    ``curves=False`` skips the learning curves (AUC_QLT only), for cheap sensitivity studies.
    """
    kind_of(dataset)  # raises on an unknown dataset
    if features not in FEATURES:
        raise ValueError(f"unknown feature map {features!r}; choose one of {', '.join(FEATURES)}")
    methods = [str(m) for m in methods]
    for m in methods:
        get_method(m)
    priors = [float(w) for w in priors]
    for w in priors:
        if not 0 < w < 1:
            raise ValueError(f"prior weight {w} must lie in (0, 1)")
    if lc_steps < 2 or rf_trees < 1 or n_models < 2:
        raise ValueError("need lc_steps >= 2, rf_trees >= 1 and n_models >= 2")
    return {"dataset": dataset, "seed": int(seed), "methods": methods, "priors": priors,
            "max_normals": int(max_normals), "max_anomalies": int(max_anomalies), "n_sources": int(n_sources),
            "unrealistic_scale": float(unrealistic_scale), "lc_steps": int(lc_steps), "rf_trees": int(rf_trees),
            "n_models": int(n_models), "curves": bool(curves), "version": PROTOCOL_VERSION,
            "code": code_fingerprint(*CODE),
            # the image feature map only matters for image datasets
            **({"features": features, "feature_epochs": int(feature_epochs)} if kind_of(dataset) == "image" else {})}


def run_one(config: dict) -> list[dict]:
    """All result rows of one configuration (see :func:`run_config`)."""
    c = config
    split = make_split(c["dataset"], c["seed"], max_normals=c["max_normals"], max_anomalies=c["max_anomalies"],
                       n_sources=c["n_sources"], unrealistic_scale=c["unrealistic_scale"],
                       features=c.get("features", "svdd"), feature_epochs=c.get("feature_epochs", 20))
    Xtr, ytr, Xa = split.X_train, split.y_train, split.X_aux
    l = len(Xa)
    detector = SSDO(k=10, random_state=c["seed"]).fit(Xtr, ytr)
    lc = LearningCurves(Xtr, ytr, Xa, split.X_test, split.y_test,
                        model="svm" if kind_of(c["dataset"]) == "image" else "rf",
                        n_estimators=c["rf_trees"], random_state=c["seed"])
    counts_g = curve_counts(l, 1 / 3, c["lc_steps"])
    counts_p = curve_counts(l, 2 / 3, c["lc_steps"])
    base = {**split.summary(), "kind": kind_of(c["dataset"]), "sources": ",".join(split.sources)}
    rows = []
    for name in c["methods"]:
        t0 = time.perf_counter()
        q = get_method(name, n_models=c["n_models"]).score_auxiliary(Xtr, ytr, Xa, detector=detector,
                                                                    random_state=c["seed"])
        seconds = time.perf_counter() - t0
        row = {**base, "study": "main", "method": name, "auc_qlt": auc_qlt(q, split.good), "score_seconds": seconds,
               **{f"mean_q_{k}": float(np.mean(q[split.aux_kind == i])) for i, k in enumerate(KINDS)}}
        if c["curves"]:
            order = ranking(q, c["seed"])
            lc_g, lc_p = lc.curve(order, counts_g), lc.curve(order[::-1], counts_p)
            row.update({"aulc_g": aulc(counts_g, lc_g, l), "acc_g": float(lc_g[-1]), "aulc_p": aulc(counts_p, lc_p, l),
                        "lc_g": lc_g.tolist(), "lc_p": lc_p.tolist(), "x_g": (counts_g / l).tolist(),
                        "x_p": (counts_p / l).tolist()})
        rows.append(row)
    # Q5: EAP with prior (w, 1 - w), beside the default prior (m/n, 1 - m/n)
    for name in ([f"EAP_{w:g}" for w in c["priors"]] + ["EAP"]) if c["priors"] else []:
        q = get_method(name).score_auxiliary(Xtr, ytr, Xa, detector=detector)
        order = ranking(q, c["seed"])
        rows.append({**base, "study": "prior", "method": name, "auc_qlt": auc_qlt(q, split.good),
                     "acc_g": lc.accuracy(order[:counts_g[-1]])})
    for r in rows:
        r["classifier_fits"] = lc.fits
    return rows


def store_for(preset: str) -> ResultStore:
    """The results store of chapter 07 for ``preset``: ``results/07_eap/<preset>/``."""
    return ResultStore(results_dir() / "07_eap" / preset, columns=("method", "auc_qlt", "study"))


def run_grid(datasets: Iterable[str], seeds: Iterable[int], *, preset: str, n_jobs: int = 1, progress: bool = True,
             **options) -> pd.DataFrame:
    """Run every dataset × seed not yet in the store (``options`` as in :func:`run_config`); return all rows.

    ``n_jobs > 1`` runs them on that many single-threaded Dask worker processes (:func:`calad_lib.runs.run_all`).
    """
    configs = [run_config(d, s, **options) for d in datasets for s in seeds]  # validate everything first
    summary = run_all(configs, run_one, store=store_for(preset), preset=preset,
                      engine="dask" if n_jobs > 1 else "local", workers=n_jobs if n_jobs > 1 else None,
                      progress=progress, desc="EAP protocol runs", label=lambda c: f"{c['dataset']} seed {c['seed']}")
    return summary.frame()


def stretch_study(main: pd.DataFrame, datasets: Iterable[str], seeds: Iterable[int], scales: Iterable[float], *,
                  preset: str, unrealistic_scale: float, methods: Iterable[str], n_jobs: int = 1,
                  **options) -> pd.DataFrame:
    """Mean AUC_QLT of ``methods`` (rows) at the protocol's stretch and at each of ``scales`` (columns).

    The protocol's column comes from its ``main`` rows; every other stretch is a run of the
    grid without learning curves or prior variants (stored, so it resumes like the main grid).
    ``options`` as in :func:`run_config`. Columns are named ``"scale <s>"``.
    """
    methods = list(methods)
    cols = {unrealistic_scale: main[main.method.isin(methods)].groupby("method").auc_qlt.mean()}
    for s in scales:
        f = run_grid(datasets, seeds, preset=preset, n_jobs=n_jobs, progress=False, priors=[], unrealistic_scale=s,
                     curves=False, **{**options, "methods": methods})
        cols[s] = f.groupby("method").auc_qlt.mean()
    table = pd.DataFrame(cols).loc[methods]
    table.columns = [f"scale {c:g}" for c in table.columns]
    return table


def definition_check(dataset: str, seed: int = 0, **split_options) -> pd.DataFrame:
    """How the auxiliary kinds of one split meet Definition 3.1 under EAP's estimators.

    One row per kind: the mean conditional probability ``P̂(Y=1|x)``, the fractions with
    ``P̂(Y=1|x) ≥ 0.5`` (the theorem's premise) and above the prior mean (what its proof
    needs for R > U), the fraction with null density (rarity 0) and the mean EAP.
    """
    split = make_split(dataset, seed, **split_options)
    model = EAP(random_state=seed).fit(split.X_train, split.y_train)
    c = model.components(split.X_aux)
    prior_mean = model.alpha0_ / (model.alpha0_ + model.beta0_)
    rows = []
    for i, kind in enumerate(KINDS):
        sel = split.aux_kind == i
        rows.append({"dataset": dataset, "kind": kind, "mean P(Y=1|x)": c.conditional[sel].mean(),
                     "frac P(Y=1|x)>=0.5": (c.conditional[sel] >= 0.5).mean(),
                     "frac P(Y=1|x)>prior mean": (c.conditional[sel] > prior_mean).mean(),
                     "frac null density": (c.rarity[sel] == 0).mean(), "mean EAP": c.eap[sel].mean(),
                     "k_hat": model.rarity_.k_})
    return pd.DataFrame(rows)
