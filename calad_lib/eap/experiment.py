"""Seeded, resumable runs of the EAP protocol (§5.1): one result file per dataset × seed × protocol choices.

:func:`run_one` builds the split, fits SSDO once, scores the auxiliary set with every method, and
measures AUC_QLT and the learning curves; the EAP prior variants of Q5 (``EAP_<w>``, prior
``(w, 1 − w)``) get AUC_QLT and ACC_G. A run follows a protocol, ``"authors"`` (their public code)
or ``"calad"``, with any of its choices overridden (:mod:`.protocols`). :func:`run_grid` runs the
missing configurations through :func:`calad_lib.runs.run_all` (in parallel processes if asked)
and stores each in a :class:`~calad_lib.runs.ResultStore` under ``results/07_eap/<preset>/``
keyed by its configuration, so an interrupted grid resumes where it stopped. :func:`variant_study`
and :func:`stretch_study` rerun the grid with one choice changed (AUC_QLT only).
"""
from __future__ import annotations

import time
from typing import Iterable

import numpy as np
import pandas as pd

from ..paths import results_dir
from ..provenance import code_fingerprint
from ..runs import ResultStore, run_all
from . import protocols as PR
from .baselines import FAMILY, METHODS, family_scores, get_method
from .datasets import FEATURES, KINDS, kind_of, make_split
from .evaluation import LearningCurves, auc_qlt, aulc, curve_counts, ranking
from .posterior import EAP
from .ssdo import SSDO

__all__ = ["PROTOCOL_VERSION", "run_config", "run_one", "run_grid", "run_configs", "run_protocols", "store_for",
           "definition_check", "stretch_study", "variant_study"]

#: bump when a change of the code changes the numbers (old results are then not reused)
PROTOCOL_VERSION = 2
#: the code a run's rows depend on: its fingerprint is part of the run's key
CODE = tuple(f"calad_lib.eap.{m}" for m in ("experiment", "baselines", "datasets", "evaluation", "posterior",
                                              "protocols", "rarity", "scaler", "ssdo", "unrealistic", "valuation"))


def run_config(dataset: str, seed: int, *, protocol: str = "authors", methods: Iterable[str] = METHODS,
               priors: Iterable[float] = (), max_normals: int = 600, max_anomalies: int = 200, n_sources: int = 5,
               unrealistic_scale: float = 3.0, eap_subsets: int = 100, lc_steps: int | None = None,
               rf_trees: int = 100, n_models: int = 50, curves: bool = True, features: str = "svdd",
               feature_epochs: int = 20, **choices) -> dict:
    """The configuration (and store key) of one run; validates names and ranges before any work.

    ``choices`` override the protocol's (:data:`calad_lib.eap.protocols.CHOICES`); ``lc_steps=None``
    evaluates the learning curves at every count (one anomaly at a time, as the authors);
    ``curves=False`` skips them (AUC_QLT only), for cheap sensitivity studies.
    """
    kind_of(dataset)  # raises on an unknown dataset
    resolved = PR.resolve(protocol, **choices)
    if features not in FEATURES:
        raise ValueError(f"unknown feature map {features!r}; choose one of {', '.join(FEATURES)}")
    methods = [str(m) for m in methods]
    for m in methods:
        get_method(m)
    priors = [float(w) for w in priors]
    for w in priors:
        if not 0 < w < 1:
            raise ValueError(f"prior weight {w} must lie in (0, 1)")
    if (lc_steps is not None and lc_steps < 2) or rf_trees < 1 or n_models < 2 or eap_subsets < 1:
        raise ValueError("need lc_steps >= 2 (or None), rf_trees >= 1, n_models >= 2 and eap_subsets >= 1")
    return {"dataset": dataset, "seed": int(seed), "protocol": protocol, **resolved, "methods": methods,
            "priors": priors, "max_normals": int(max_normals), "max_anomalies": int(max_anomalies),
            "n_sources": int(n_sources), "unrealistic_scale": float(unrealistic_scale), "eap_subsets": int(eap_subsets),
            "lc_steps": None if lc_steps is None else int(lc_steps), "rf_trees": int(rf_trees),
            "n_models": int(n_models), "curves": bool(curves), "version": PROTOCOL_VERSION,
            "code": code_fingerprint(*CODE),
            # the image feature map only matters for image datasets
            **({"features": features, "feature_epochs": int(feature_epochs)} if kind_of(dataset) == "image" else {})}


def _split(c: dict):
    return make_split(c["dataset"], c["seed"], max_normals=c["max_normals"], max_anomalies=c["max_anomalies"],
                      n_sources=c["n_sources"], unrealistic_scale=c["unrealistic_scale"], **PR.split_options(c),
                      features=c.get("features", "svdd"), feature_epochs=c.get("feature_epochs", 20))


def run_one(config: dict) -> list[dict]:
    """All result rows of one configuration (see :func:`run_config`)."""
    c = config
    split = _split(c)
    Xtr, ytr, Xa = split.X_train, split.y_train, split.X_aux
    l, third = len(Xa), int((split.aux_kind == 0).sum())
    options = PR.estimator_options(c, c["eap_subsets"])
    detector = SSDO(k=10, random_state=c["seed"], prior=c["ssdo_prior"]).fit(Xtr, ytr)
    lc = LearningCurves(Xtr, ytr, Xa, split.X_test, split.y_test,
                        model="svm" if kind_of(c["dataset"]) == "image" else "rf",
                        n_estimators=c["rf_trees"], random_state=c["seed"])
    counts_g = curve_counts(l, 1 / 3, c["lc_steps"], c["aulc"])
    counts_p = curve_counts(l, 2 / 3, c["lc_steps"], c["aulc"])
    base = {**split.summary(), "kind": kind_of(c["dataset"]), "sources": ",".join(split.sources),
            "protocol": c["protocol"], "changed": ",".join(PR.changed(c, c["protocol"]))}
    model, family, rows = None, {}, []
    for name in c["methods"]:
        t0 = time.perf_counter()
        if name in FAMILY:
            if model is None:
                model = EAP(detector=detector, prefit=True, random_state=c["seed"], **options).fit(Xtr, ytr)
                family = family_scores(model, Xa)
            q = family[name]
        else:
            q = get_method(name, n_models=c["n_models"], options=options).score_auxiliary(
                Xtr, ytr, Xa, detector=detector, random_state=c["seed"])
        seconds = time.perf_counter() - t0
        row = {**base, "study": "main", "method": name, "auc_qlt": auc_qlt(q, split.good), "score_seconds": seconds,
               **{f"mean_q_{k}": float(np.mean(q[split.aux_kind == i])) for i, k in enumerate(KINDS)}}
        if name in FAMILY:
            row.update({"k_hat": model.rarity_.k_, "lambda": model.scaler_.lambda_})
        if c["curves"]:
            order = ranking(q, c["seed"])
            lc_g, lc_p = lc.curve(order, counts_g), lc.curve(order[::-1], counts_p)
            row.update({"aulc_g": aulc(counts_g, lc_g, third, c["aulc"]), "acc_g": float(lc_g[-1]),
                        "aulc_p": aulc(counts_p, lc_p, 2 * third, c["aulc"]), "lc_g": lc_g.tolist(),
                        "lc_p": lc_p.tolist(), "x_g": (counts_g / l).tolist(), "x_p": (counts_p / l).tolist()})
        rows.append(row)
    # Q5: EAP with prior (w, 1 - w), beside the default prior (m/n, 1 - m/n); the subsamples are shared
    if c["priors"]:
        if model is None:
            model = EAP(detector=detector, prefit=True, random_state=c["seed"], **options).fit(Xtr, ytr)
        for w in [*c["priors"], None]:
            q = model.components(Xa, prior=None if w is None else (w, 1.0 - w)).eap
            order = ranking(q, c["seed"])
            rows.append({**base, "study": "prior", "method": "EAP" if w is None else f"EAP_{w:g}",
                         "auc_qlt": auc_qlt(q, split.good), "acc_g": lc.accuracy(order[:counts_g[-1]])})
    for r in rows:
        r["classifier_fits"] = lc.fits
    return rows


def store_for(preset: str) -> ResultStore:
    """The results store of chapter 07 for ``preset``: ``results/07_eap/<preset>/``."""
    return ResultStore(results_dir() / "07_eap" / preset, columns=("method", "auc_qlt", "study"))


def run_configs(configs: list[dict], *, preset: str, engine: str = "local", workers: int | None = None,
                progress: bool = True, desc: str = "EAP protocol runs") -> pd.DataFrame:
    """Run the configurations not yet in the store (``engine``, ``workers`` as in :func:`calad_lib.runs.run_all`);
    return all rows."""
    summary = run_all(configs, run_one, store=store_for(preset), preset=preset, engine=engine, workers=workers,
                      progress=progress, desc=desc,
                      label=lambda c: f"{c['dataset']} seed {c['seed']} {c['protocol']}")
    return summary.frame()


def run_grid(datasets: Iterable[str], seeds: Iterable[int], *, preset: str, engine: str = "local",
             workers: int | None = None, progress: bool = True, **options) -> pd.DataFrame:
    """Run every dataset × seed not yet in the store (``options`` as in :func:`run_config`); return all rows."""
    configs = [run_config(d, s, **options) for d in datasets for s in seeds]  # validate everything first
    return run_configs(configs, preset=preset, engine=engine, workers=workers, progress=progress)


def run_protocols(datasets: Iterable[str], seeds: Iterable[int], *, preset: str, main: str = "authors",
                  priors: Iterable[float] = (), engine: str = "local", workers: int | None = None,
                  progress: bool = True, **options) -> dict[str, pd.DataFrame]:
    """The grid under both protocols (one batch of runs); the prior study only under ``main``.

    Returns ``{protocol: rows}``; ``options`` as in :func:`run_config`.
    """
    configs = {p: [run_config(d, s, protocol=p, priors=priors if p == main else [], **options)
                   for d in datasets for s in seeds] for p in PR.PROTOCOLS}
    frame = run_configs([c for p in PR.PROTOCOLS for c in configs[p]], preset=preset, engine=engine,
                        workers=workers, progress=progress)
    return {p: frame[frame.protocol == p].reset_index(drop=True) for p in PR.PROTOCOLS}


def variant_study(main: pd.DataFrame, datasets: Iterable[str], seeds: Iterable[int], variants: Iterable[str], *,
                  preset: str, methods: Iterable[str], engine: str = "local", workers: int | None = None,
                  **options) -> pd.DataFrame:
    """The authors' protocol with each choice of ``variants`` set to calad's value, one at a time.

    Returns the AUC_QLT rows (``dataset, seed, method, auc_qlt, k_hat``) of the protocol itself
    (``variant == "none"``, from the ``main`` rows) and of each variant; a variant reruns only the
    methods its choice can change (:func:`calad_lib.eap.protocols.affected_methods`) and reuses
    the protocol's rows for the others. ``options`` as in :func:`run_config` (``protocol="authors"``).
    """
    methods, variants = list(methods), list(variants)
    keep = ["dataset", "seed", "kind", "n", "m", "method", "auc_qlt", "k_hat"]
    ref = main[main.method.isin(methods)].reindex(columns=keep)
    configs = {v: [run_config(d, s, methods=PR.affected_methods(v, methods), priors=[], curves=False,
                              **{**options, "protocol": "authors"}, **PR.flip(v)) for d in datasets for s in seeds]
               for v in variants}
    flat = [c for v in variants for c in configs[v]]
    ran = run_configs(flat, preset=preset, engine=engine, workers=workers, progress=False) if flat else pd.DataFrame()
    frames = [ref.assign(variant="none")]
    for v in variants:
        mine = ran[ran.changed == v].reindex(columns=keep)
        reused = ref[~ref.method.isin(PR.affected_methods(v, methods))]
        frames.append(pd.concat([mine, reused]).assign(variant=v))
    return pd.concat(frames, ignore_index=True)


def stretch_study(main: pd.DataFrame, datasets: Iterable[str], seeds: Iterable[int], scales: Iterable[float], *,
                  preset: str, unrealistic_scale: float, methods: Iterable[str], engine: str = "local",
                  workers: int | None = None, **options) -> pd.DataFrame:
    """Mean AUC_QLT of ``methods`` (rows) at the protocol's stretch and at each of ``scales`` (columns).

    The protocol's column comes from its ``main`` rows (a protocol with ``unrealistic="stretch"``);
    every other stretch is a run of the grid without learning curves or prior variants (stored,
    so it resumes like the main grid). ``options`` as in :func:`run_config`. Columns are named
    ``"scale <s>"``.
    """
    methods = list(methods)
    cols = {unrealistic_scale: main[main.method.isin(methods)].groupby("method").auc_qlt.mean()}
    for s in scales:
        f = run_grid(datasets, seeds, preset=preset, engine=engine, workers=workers, progress=False, priors=[],
                     unrealistic_scale=s, curves=False, **{**options, "methods": methods})
        cols[s] = f.groupby("method").auc_qlt.mean()
    table = pd.DataFrame(cols).loc[methods]
    table.columns = [f"scale {c:g}" for c in table.columns]
    return table


def definition_check(dataset: str, seed: int = 0, *, protocol: str = "authors", eap_subsets: int = 100,
                     choices: dict | None = None, **split_options) -> pd.DataFrame:
    """How the auxiliary kinds of one split meet Definition 3.1 under EAP's estimators.

    One row per kind: the mean conditional probability ``P̂(Y=1|x)``, the fractions with
    ``P̂(Y=1|x) ≥ 0.5`` (the theorem's premise) and above the prior mean (what its proof
    needs for R > U), the fraction with null density (rarity 0) and the mean EAP. The split
    and the estimators follow ``protocol`` (with ``choices`` overridden).
    """
    ch = PR.resolve(protocol, **(choices or {}))
    split = make_split(dataset, seed, **PR.split_options(ch), **split_options)
    model = PR.model(protocol, eap_subsets, random_state=seed, **(choices or {})).fit(split.X_train, split.y_train)
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
