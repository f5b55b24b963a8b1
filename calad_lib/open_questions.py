"""The thesis' three open questions, answered from the book's own runs (chapter 09).

The summary of the thesis lists three questions it leaves open; each function here turns the
result rows of chapters 05 (detection, :mod:`calad_lib.grid`) and 06 (localization,
:mod:`calad_lib.localization`) into a table and a verdict that the numbers decide:

* :func:`stable_beta` — does β calibration without its float32 saturation (§4.3.1) match or beat
  Platt scaling?
* :func:`predictor_correlations` and :func:`predictor_verdicts` — is there a measurable property of
  a model that predicts the gain κ of gradient input perturbation, where ECE and MCE did not
  (§4.3.1)? The candidates are the ``pred_*`` columns of :func:`calad_lib.experiment._predictors`,
  measured on calibration data before any test input is seen.
* :func:`adaptive_summary` — can calibration that adapts to the image improve localization, where
  per-pixel Platt/β, one monotone map for every pixel, did not (§4.3.2)?
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .metrics import format_p as _p
from .metrics import spearman, wilcoxon_p

__all__ = ["PREDICTORS", "stable_beta", "stable_beta_verdicts", "predictor_correlations", "predictor_verdicts",
           "adaptive_summary", "adaptive_verdicts"]

#: candidate predictors of κ: column → what it measures (all label-free on the test set)
PREDICTORS = {
    "ece": "ECE on normal test images + held-out synthetic anomalies (the thesis' candidate)",
    "mce": "MCE on the same set (the thesis' candidate)",
    "pred_grad_log_ratio": "log of median ‖∇ₓℓ‖₁, synthetic anomalies over normal calibration images",
    "pred_loss_drop_gap": "mean loss drop under the step, synthetic anomalies minus normal images",
    "pred_loss_drop_anomalous": "mean loss drop of synthetic anomalies under the step",
    "pred_proxy_auroc": "AUROC of normal calibration images vs synthetic anomalies (unperturbed)",
    "pred_proxy_kappa": "κ of that proxy task: the perturbation gain on synthetic anomalies",
}
_LEVEL = 0.05


# --- Q2: stable β ------------------------------------------------------------------------------------
def _paired_columns(df: pd.DataFrame, keys: list[str], col: str) -> pd.DataFrame:
    return df.pivot_table(index=keys, columns="method", values=col)


def stable_beta(df: pd.DataFrame, *, keys=("loss", "dataset", "normal_class", "seed"), metrics=None,
                sources=("oe", "spectral")) -> pd.DataFrame:
    """Platt, stable β and naive β side by side, per loss: means (%) and stable β − Platt, paired over runs.

    ``df``: rows of chapter 05 (``auroc``, ``auroc_perturbed``, ``ece``) or 06 (pass ``metrics`` such as
    ``("pixel_auroc", "pixel_auroc_perturbed", "aupro", "pixel_ece")``). One row per loss × metric;
    columns ``Platt``, ``β stable``, ``β naive`` (means over sources and runs), ``stable − Platt``, ``p``
    (two-sided Wilcoxon over paired runs × sources), ``naive − stable`` (NaN where naive β was not run)
    and ``runs``.
    """
    metrics = list(metrics or ("auroc", "auroc_perturbed", "ece"))
    keys = [k for k in keys if k in df.columns]
    rows = []
    for loss, g in df.groupby("loss", sort=False):
        for metric in metrics:
            w = _paired_columns(g, keys, metric)
            pairs = [s for s in sources if {f"platt_{s}", f"beta_{s}"} <= set(w.columns)]
            if not pairs:
                continue
            platt = pd.concat([w[f"platt_{s}"] for s in pairs])
            stable = pd.concat([w[f"beta_{s}"] for s in pairs])
            naive = pd.concat([w[f"beta_naive_{s}"] if f"beta_naive_{s}" in w else w[f"beta_{s}"] * np.nan
                               for s in pairs])
            d = (stable - platt).to_numpy()
            rows.append({"loss": loss, "metric": metric, "Platt": 100 * platt.mean(), "β stable": 100 * stable.mean(),
                         "β naive": 100 * naive.mean(), "stable − Platt": 100 * np.nanmean(d),
                         "p": wilcoxon_p(d), "naive − stable": 100 * (naive - stable).mean(),
                         "runs": int(np.isfinite(d).sum())})
    cols = ["loss", "metric", "Platt", "β stable", "β naive", "stable − Platt", "p", "naive − stable", "runs"]
    return pd.DataFrame(rows, columns=cols).set_index(["loss", "metric"])


def stable_beta_verdicts(table: pd.DataFrame, *, tol: float = 0.5) -> pd.DataFrame:
    """Per loss and metric: does stable β *match* Platt (within ``tol`` points or not significantly
    different), *beat* it (better and significant at 5 %), or fall behind? ECE/MCE: lower is better."""
    out = []
    for (loss, metric), r in table.iterrows():
        better = -r["stable − Platt"] if metric.endswith(("ece", "mce")) else r["stable − Platt"]
        sig = math.isfinite(r["p"]) and r["p"] < _LEVEL
        if abs(r["stable − Platt"]) <= tol and not (sig and abs(r["stable − Platt"]) > tol / 5):
            verdict = "matches Platt"
        elif better > 0 and sig:
            verdict = "beats Platt"
        elif better < 0 and sig:
            verdict = "worse than Platt"
        else:
            verdict = "differs, not significantly"
        out.append({"loss": loss, "metric": metric,
                    "evidence": f"stable − Platt {r['stable − Platt']:+.2f} pts (p = {_p(r['p'])}, "
                                f"{int(r['runs'])} pairs)" + ("" if not math.isfinite(r["naive − stable"]) else
                                                               f"; naive − stable {r['naive − stable']:+.2f} pts"),
                    "verdict": verdict})
    return pd.DataFrame(out)


# --- Q3: what predicts the perturbation gain κ ---------------------------------------------------------
def predictor_correlations(df: pd.DataFrame, predictors=None, *, target: str = "kappa",
                           by: str = "loss") -> pd.DataFrame:
    """Spearman ρ (and p) between ``target`` and each predictor: pooled over all models, and within each
    value of ``by`` (so a correlation that only separates losses is seen as such)."""
    predictors = [p for p in (predictors or PREDICTORS) if p in df.columns]
    rows = []
    for pred in predictors:
        rho, p = spearman(df[target], df[pred])
        row = {"predictor": pred, "pooled ρ": rho, "pooled p": p,
               "n": int((np.isfinite(df[target].astype(float)) & np.isfinite(df[pred].astype(float))).sum())}
        within = []
        for level, g in df.groupby(by, sort=False):
            if len(g) >= 4 and g[pred].nunique() > 1:
                r, _ = spearman(g[target], g[pred])
                row[f"ρ {level}"] = r
                within.append(r)
        row["median within-group ρ"] = float(np.nanmedian(within)) if within else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("predictor")


def predictor_verdicts(corr: pd.DataFrame, *, strong: float = 0.5, weak: float = 0.3) -> pd.DataFrame:
    """A verdict per predictor. *predicts κ*: |pooled ρ| ≥ ``strong`` at p < 0.01, a within-group median of
    the same sign with magnitude ≥ ``weak``, and no group where ρ has the opposite sign beyond ``weak``;
    with such a group, *predicts κ pooled, not within every loss*; *weak relationship*: |ρ| ≥ ``weak`` at
    p < 0.05; else *no usable relationship*."""
    out = []
    for pred, r in corr.iterrows():
        rho, p, med = r["pooled ρ"], r["pooled p"], r["median within-group ρ"]
        within = [v for k, v in r.items() if str(k).startswith("ρ ") and math.isfinite(v)]
        against = [v for v in within if np.sign(v) != np.sign(rho) and abs(v) >= weak]
        if not math.isfinite(rho):
            v = "n/a"
        elif abs(rho) >= strong and p < 0.01 and math.isfinite(med) and np.sign(med) == np.sign(rho) \
                and abs(med) >= weak:
            v = "predicts κ" if not against else "predicts κ pooled, not within every loss"
        elif abs(rho) >= weak and p < _LEVEL:
            v = "weak relationship"
        else:
            v = "no usable relationship"
        out.append({"predictor": pred, "measures": PREDICTORS.get(pred, pred),
                    "evidence": f"ρ = {rho:+.2f} (p = {_p(p)}, n = {int(r['n'])}); within losses median "
                                f"ρ = {med:+.2f}", "verdict": v})
    return pd.DataFrame(out)


# --- Q1: location-adaptive calibration ----------------------------------------------------------------
_ADAPTIVE = ("location_platt_oe", "location_platt_spectral", "local_oe", "local_spectral", "head_oe",
             "head_spectral")
_PER_PIXEL = ("platt_oe", "platt_spectral", "beta_oe", "beta_spectral")


def adaptive_summary(df: pd.DataFrame, metrics=("pixel_auroc", "aupro", "pixel_auroc_perturbed",
                                               "aupro_perturbed", "pixel_ece", "pixel_ece_patch")) -> pd.DataFrame:
    """Per loss: the fully trained model, the best per-pixel Platt/β column and the best adaptive
    calibrator (chosen by mean pixel AUROC), with means in % of ``metrics``."""
    rows = []
    for loss, g in df.groupby("loss", sort=False):
        mean = g.groupby("method")[[m for m in metrics if m in g.columns]].mean()
        groups = {"fully trained": [m for m in ("fully_trained",) if m in mean.index],
                  "best per-pixel Platt/β": [m for m in _PER_PIXEL if m in mean.index],
                  "best adaptive": [m for m in _ADAPTIVE if m in mean.index]}
        for label, cand in groups.items():
            if not cand:
                continue
            best = mean.loc[cand, "pixel_auroc"].idxmax()
            rows.append({"loss": loss, "model": label, "method": best, **(100 * mean.loc[best]).to_dict()})
    return pd.DataFrame(rows).set_index(["loss", "model"])


def adaptive_verdicts(df: pd.DataFrame, *, tol: float = 0.005, min_runs: int = 3) -> pd.DataFrame:
    """Does the best adaptive calibrator localize better (pixel AUROC *and* AUPRO, by more than ``tol``)
    than per-pixel Platt/β and than the fully trained network? Paired over runs, with the win count;
    a "yes" from fewer than ``min_runs`` runs says so."""
    out = []
    summary = adaptive_summary(df)
    for loss, g in df.groupby("loss", sort=False):
        if (loss, "best adaptive") not in summary.index:
            continue
        best = summary.loc[(loss, "best adaptive"), "method"]
        for ref_label in ("best per-pixel Platt/β", "fully trained"):
            if (loss, ref_label) not in summary.index:
                continue
            ref = summary.loc[(loss, ref_label), "method"]
            key = [k for k in ("dataset", "normal_class", "class", "seed") if k in g.columns]
            w = g.pivot_table(index=key, columns="method", values=["pixel_auroc", "aupro"])
            da = (w["pixel_auroc"][best] - w["pixel_auroc"][ref]).dropna()
            dp = (w["aupro"][best] - w["aupro"][ref]).dropna()
            holds = bool(da.mean() > tol and dp.mean() > tol)
            verdict = ("yes" if len(da) >= min_runs else "yes at this scale (too few runs to conclude)") if holds \
                else "no"
            out.append({"loss": loss, "claim": f"adaptive ({best}) localizes better than {ref_label} ({ref})",
                        "evidence": f"pixel AUROC {100 * da.mean():+.1f} pts (better in {int((da > 0).sum())}/{len(da)}), "
                                    f"AUPRO {100 * dp.mean():+.1f} pts (better in {int((dp > 0).sum())}/{len(dp)})",
                        "verdict": verdict})
    return pd.DataFrame(out)
