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

import matplotlib.pyplot as plt

from .detection import METHOD_LABELS as DETECTION_LABELS
from .detection import loss_order
from .localization import METHOD_LABELS as LOCALIZATION_LABELS
from .metrics import format_p as _p
from .metrics import spearman, wilcoxon_p
from .records import finite
from .report import status_of
from .report import table as html

__all__ = ["PREDICTORS", "stable_beta", "stable_beta_verdicts", "predictor_correlations", "predictor_verdicts",
           "adaptive_summary", "adaptive_verdicts", "status", "describe_runs", "adaptive_table", "verdict_table",
           "stable_beta_text", "answers", "records_q1", "records_q2", "records_q3", "adaptive_figure",
           "stable_beta_figure", "predictor_figure", "labelled", "stable_beta_styled"]

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
                    "verdict": verdict, "difference": r["stable − Platt"] / 100, "p": r["p"]})
    return pd.DataFrame(out, columns=["loss", "metric", "evidence", "verdict", "difference", "p"])


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
_ADAPTIVE = ("location_platt_oe", "location_platt_spectral", "local_oe", "local_spectral", "local_network_oe",
             "local_network_spectral")
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
                        "verdict": verdict, "reference": "per_pixel" if ref_label.startswith("best") else "fully_trained",
                        "auroc_gain": float(da.mean()), "aupro_gain": float(dp.mean()),
                        "margin": float(min(da.mean(), dp.mean()) - tol), "runs": len(da)})
    return pd.DataFrame(out, columns=["loss", "claim", "evidence", "verdict", "reference", "auroc_gain", "aupro_gain",
                                      "margin", "runs"])


# --- what the chapter shows ------------------------------------------------------------------------------
_STATUS = {"yes": "holds", "matches platt": "holds", "beats platt": "holds", "predicts κ": "holds",
           "no": "fails", "worse than platt": "fails", "no usable relationship": "fails",
           "differs, not significantly": "open", "weak relationship": "open",
           "predicts κ pooled, not within every loss": "open"}


def status(verdict: str) -> str:
    """The status (``holds``/``fails``/``open``/``n/a``) of one of this module's verdicts, for
    :func:`calad_lib.report.verdicts`: a "yes" from too few runs, a weak or loss-level relationship and a
    difference that is not significant are open."""
    v = str(verdict).strip().lower()
    return _STATUS.get(v) or status_of(v)


_LOC_LABELS = {"fcdd": "FCDD", "ssim_pixel": "SSIM", "unet": "LGS"}
_DET_LABELS = {"svdd": "SVDD", "ssim": "SSIM", "logistic": "logistic", "hsc": "HSC"}
_METRIC_LABELS = {"auroc": "AUROC", "auroc_perturbed": "AUROC perturbed", "ece": "ECE", "pixel_auroc": "pixel AUROC",
                  "aupro": "AUPRO", "pixel_ece": "pixel ECE", "pixel_auroc_perturbed": "pixel AUROC perturbed",
                  "aupro_perturbed": "AUPRO perturbed", "pixel_ece_patch": "ECE pasted"}


def _loss_label(loss: str) -> str:
    return _LOC_LABELS.get(loss) or _DET_LABELS.get(loss, loss)


def describe_runs(det: pd.DataFrame, loc: pd.DataFrame, det_preset: str, loc_preset: str) -> str:
    """The runs this chapter reads, counted (two lines)."""
    loc_runs = loc.groupby(["dataset", "loss", "seed"]).ngroups if len(loc) else 0
    return (f"detection ({det_preset}): {det.run_key.nunique()} experiments, {len(det)} models\n"
            f"localization ({loc_preset}): {loc_runs} runs, {len(loc)} models")


def adaptive_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`adaptive_summary` for the reader: loss and model labels, short metric names."""
    t = summary.rename(index=_LOC_LABELS, level="loss").rename(columns=_METRIC_LABELS)
    t["method"] = t["method"].map(lambda m: LOCALIZATION_LABELS.get(m, m))
    return t.rename(columns={"pixel AUROC": "AUROC", "pixel AUROC perturbed": "AUROC pert.",
                             "AUPRO perturbed": "AUPRO pert.", "pixel ECE": "ECE"})


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the reader's names of losses and metrics in its ``loss`` and ``metric`` index levels."""
    out = frame
    for level, names in (("loss", {**_DET_LABELS, **_LOC_LABELS}), ("metric", _METRIC_LABELS)):
        if level in (out.index.names or []):
            out = out.rename(index=names, level=level)
    return out


def stable_beta_styled(table: pd.DataFrame, caption: str | None = None):
    """A :func:`stable_beta` table as HTML: two decimals, p-values to two significant digits."""
    fmt = {c: "{:.2f}" for c in table.columns} | {"p": "{:.2g}"}   # every column: a partial mapping drops the rest
    return html(labelled(table), fmt=fmt, caption=caption)


def verdict_table(verdicts: pd.DataFrame, index=("loss", "claim"), columns=("evidence", "verdict")) -> pd.DataFrame:
    """A verdict frame of this module reduced to what the reader needs, loss names labelled."""
    t = verdicts.copy()
    t["loss"] = t["loss"].map(_loss_label)
    if "metric" in t:
        t["metric"] = t["metric"].map(lambda m: _METRIC_LABELS.get(m, m))
    return t.set_index(list(index))[list(columns)]


def stable_beta_text(q2: pd.DataFrame) -> str:
    """Markdown: how many loss × metric cells of each task say stable β matches or beats Platt."""
    parts = []
    for task, g in q2.groupby("task", sort=False):
        good = g.verdict.isin(["matches Platt", "beats Platt"]).sum()
        worse = (g.verdict == "worse than Platt").sum()
        parts.append(f"{task}: stable β matches or beats Platt in **{good} of {len(g)}** loss × metric cells"
                     + (f" and is significantly worse in {worse}" if worse else ""))
    return "; ".join(parts) + "."


def answers(q1: pd.DataFrame, q2: pd.DataFrame, q3: pd.DataFrame) -> pd.DataFrame:
    """The three open questions with the answer the verdicts give (one row each)."""
    yes = q1.verdict.str.startswith("yes")
    few = q1.verdict.str.contains("too few").any()
    if len(q1) and yes.all():
        v1 = "yes at this scale (too few runs to conclude)" if few else "yes"
    else:
        v1 = "no" if not yes.any() else f"mixed ({int(yes.sum())} of {len(q1)})"
    good = q2.verdict.isin(["matches Platt", "beats Platt"])
    v2 = "yes" if len(q2) and good.all() else ("no" if not good.any() else f"mixed ({int(good.sum())} of {len(q2)})")
    pred = [r.predictor for r in q3.itertuples() if r.verdict == "predicts κ"]
    weak = [r.predictor for r in q3.itertuples() if r.verdict != "predicts κ" and status(r.verdict) == "open"]
    v3 = "yes" if pred else "no"
    return pd.DataFrame([
        {"question": "location-adaptive calibration improves localization",
         "answer": f"{int(yes.sum())} of {len(q1)} comparisons say yes", "verdict": v1},
        {"question": "stable β matches or beats Platt",
         "answer": f"{int(good.sum())} of {len(q2)} loss × metric cells", "verdict": v2},
        {"question": "a measurable property predicts κ",
         "answer": (", ".join(pred) if pred else "none of the candidates")
                   + (f" (weaker: {', '.join(weak)})" if weak else ""), "verdict": v3},
    ]).set_index("question")


def records_q1(q1: pd.DataFrame) -> dict:
    """``{loss: {reference: {auroc_gain, aupro_gain, margin}}}`` (fractions) for ``calad.record``."""
    out: dict = {}
    for r in q1.itertuples():
        out.setdefault(r.loss, {})[r.reference] = {"auroc_gain": r.auroc_gain, "aupro_gain": r.aupro_gain,
                                                   "margin": r.margin}
    return finite(out)


def records_q2(q2: pd.DataFrame) -> dict:
    """``{task: {loss: {metric: {stable_minus_platt, p}}}}`` (differences as fractions) for ``calad.record``;
    a p-value that is not defined (no non-zero difference) is left out."""
    out: dict = {}
    for r in q2.itertuples():
        out.setdefault(r.task, {}).setdefault(r.loss, {})[r.metric] = {"stable_minus_platt": r.difference, "p": r.p}
    return finite(out)


def records_q3(corr: pd.DataFrame) -> dict:
    """``{predictor: {rho, p, median_within_rho}}`` for ``calad.record``."""
    return finite({pred: {"rho": r["pooled ρ"], "p": r["pooled p"], "median_within_rho": r["median within-group ρ"]}
                    for pred, r in corr.iterrows()})


# --- figures ---------------------------------------------------------------------------------------------
def adaptive_figure(summary: pd.DataFrame, title: str, width: float = 7.2):
    """Bars of pixel AUROC and AUPRO per loss for the three models of :func:`adaptive_summary`."""
    metrics = [("pixel_auroc", "pixel AUROC (%)"), ("aupro", "AUPRO (%)")]
    losses = list(dict.fromkeys(summary.index.get_level_values("loss")))
    models = list(dict.fromkeys(summary.index.get_level_values("model")))
    colours, hatches = ["#4c4c4c", "#d62728", "#1f77b4"], ["", "//", ".."]
    fig, axes = plt.subplots(1, 2, figsize=(width, 3.4))
    w = 0.8 / max(len(models), 1)
    for ax, (col, label) in zip(axes, metrics):
        for k, model in enumerate(models):
            vals = [summary[col].get((loss, model), np.nan) for loss in losses]
            ax.bar(np.arange(len(losses)) + (k - (len(models) - 1) / 2) * w, vals, w, label=model,
                   color=colours[k % 3], hatch=hatches[k % 3], edgecolor="white")
        ax.set_xticks(range(len(losses)), [_loss_label(l) for l in losses])
        ax.set_ylabel(label)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=10, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def stable_beta_figure(det: pd.DataFrame, title: str, width: float = 7.2):
    """Mean AUROC (unperturbed and perturbed) of Platt, stable β and naive β per detection loss, two panels a row."""
    methods = [m for m in ("platt_oe", "beta_oe", "beta_naive_oe", "platt_spectral", "beta_spectral",
                           "beta_naive_spectral") if m in set(det.method)]
    losses = loss_order(det.loss.unique())
    rows = -(-len(losses) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(width, 2.9 * rows + 0.9), squeeze=False, sharex=True)
    for ax, loss in zip(axes.flat, losses):
        mean = det[det.loss == loss].groupby("method")[["auroc", "auroc_perturbed"]].mean().reindex(methods)
        ax.plot(range(len(methods)), 100 * mean.auroc, "o", label="unperturbed", ms=7)
        ax.plot(range(len(methods)), 100 * mean.auroc_perturbed, "^", label="perturbed", ms=7, mfc="none")
        ax.set_title(_loss_label(loss), fontsize=11)
        ax.set_ylabel("AUROC (%)")
        ax.locator_params(axis="y", nbins=4)
    for ax in axes.flat[len(losses):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xticks(range(len(methods)), [DETECTION_LABELS.get(m, m) for m in methods], rotation=45, ha="right")
    for ax in axes.flat:
        ax.tick_params(axis="x", labelsize=9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=10, frameon=False)
    fig.suptitle(title, fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def predictor_figure(models: pd.DataFrame, predictors, title: str, width: float = 7.2):
    """κ on the test set against each of ``predictors`` (at most three), one colour and marker per loss."""
    predictors = list(predictors)[:3]
    fig, axes = plt.subplots(1, len(predictors), figsize=(width, 3.3), sharey=True, squeeze=False)
    markers = ["o", "s", "^", "D"]
    for ax, pred in zip(axes[0], predictors):
        rho, p = spearman(models.kappa, models[pred])
        for k, loss in enumerate(loss_order(models.loss.unique())):
            g = models[models.loss == loss]
            ax.scatter(g[pred], g.kappa, s=18, marker=markers[k % 4], label=_loss_label(loss), alpha=0.8)
        ax.set_title(f"ρ = {rho:+.2f} (p = {_p(p)})", fontsize=10)
        ax.set_xlabel(pred.removeprefix("pred_"), fontsize=10)
    axes[0, 0].set_ylabel("κ (test set)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=10, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
