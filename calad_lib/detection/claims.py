"""The claims of thesis §4.3.1 on one-vs-all detection, checked on result rows with verdicts decided by code.

:func:`claims` reads rows as :func:`calad_lib.detection.results` returns them (one per experiment ×
method) — or the thesis' own per-class AUROCs (:func:`calad_lib.detection.thesis_frame`), where only the
AUROC claims apply — and returns one row per claim with its evidence and verdict.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scipy import stats

from ..metrics import format_p, spearman, wilcoxon_p
from ..report import STATUS_COLOURS, status_of, verdicts
from .experiment import METHOD_LABELS, METHODS, THESIS_METHODS, loss_order

__all__ = ["claims", "numbers", "verdict_table", "kappa_correlations", "conformal", "conformal_view",
           "conformal_sentence"]


def _wilcoxon_greater(x) -> float:
    return wilcoxon_p(x, alternative="greater")


def _verdict(holds: bool, p: float, n: int, *, n_min: int = 6, level: float = 0.05) -> str:
    """``supported`` needs the direction *and* significance; small samples say so instead of guessing."""
    if n < n_min:
        return ("consistent, but not enough evidence at this scale" if holds
                else "not supported at this scale (too few experiments to conclude)")
    if holds:
        return "supported" if (p is not None and math.isfinite(p) and p < level) else \
            "consistent, not significant at this scale"
    return "not supported by these runs"


def _pivot(d: pd.DataFrame, col: str) -> pd.DataFrame:
    """Experiments (loss, class, seed) × methods for one column."""
    return d.pivot_table(index=["loss", "class_label", "seed"], columns="method", values=col)


def claims(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Each claim of §4.3.1 (one-vs-all detection) checked on ``df`` with a verdict decided by code.

    ``df`` holds rows as from :func:`results` (or :func:`thesis_frame`, where only AUROC claims apply).
    A claim is ``supported`` when its direction holds and a one-sided test over experiments rejects
    the opposite at 5 % (Wilcoxon signed-rank, or Mann–Whitney for two groups); a direction that holds
    without significance is "consistent, not significant at this scale"; with fewer than 6 experiments
    the verdict says the evidence is not enough. C5 and C8 compare against fixed tolerances instead.

    Columns: ``claim``, ``evidence`` (text), ``verdict``, and the numbers the verdict rests on:
    ``statistic`` (C1 mean gain; C2 gain supervised − unsupervised; C3 smallest margin best − runner-up
    and C4 smallest margin best calibrated − fully trained over the losses; C5 largest |spectral − OE|;
    C6 mean OE − spectral; C7 mean best calibrated − fully trained; C8 largest |AUROC − base AUROC|;
    C9 naive β AUROC drop; C10 Spearman ρ of κ and ECE; AUROC differences as fractions) and ``p``
    (the test's p-value, NaN where the claim has no test).
    """

    d = df[df["dataset"] == dataset]
    a0, ap, dl = _pivot(d, "auroc"), _pivot(d, "auroc_perturbed"), _pivot(d, "delta")
    losses = loss_order(d["loss"])
    cal = [m for m in THESIS_METHODS[1:] if m in dl.columns]
    out = []

    def add(cid, claim, evidence, verdict, statistic=float("nan"), p=float("nan")):
        out.append({"id": cid, "claim": claim, "evidence": evidence, "verdict": verdict,
                    "statistic": float(statistic), "p": float(p)})

    # C1: perturbation raises the AUROC of every post-hoc calibrated model
    cell = dl[cal].groupby(level="loss").mean()
    pos = int((cell > 0).to_numpy().sum())
    n1 = len(dl)
    gain1, p1 = float(np.nanmean(dl[cal])), _wilcoxon_greater(dl[cal].to_numpy().ravel())
    add("C1", "Perturbation raises the AUROC of every post-hoc calibrated model",
        f"mean gain > 0 in {pos} of {cell.size} loss × method cells; mean gain {100 * gain1:.2f} pts; "
        f"one-sided Wilcoxon p = {format_p(p1)}",
        _verdict(pos == cell.size, p1, n1), gain1, p1)
    # C2: ... and fully trained supervised models more than fully trained unsupervised ones
    ft = dl["fully_trained"] if "fully_trained" in dl else pd.Series(dtype=float)
    sup = ft[ft.index.get_level_values("loss").isin(["logistic", "hsc"])].dropna()
    uns = ft[ft.index.get_level_values("loss").isin(["svdd", "ssim"])].dropna()
    if len(sup) and len(uns):

        p2 = float(stats.mannwhitneyu(sup, uns, alternative="greater").pvalue)
        holds = sup.mean() > 0 and sup.mean() > uns.mean()
        add("C2", "Fully trained: perturbation helps supervised losses (logistic, HSC), unsupervised ones "
            "(SVDD, SSIM) only marginally",
            f"mean gain supervised {100 * sup.mean():.2f} pts vs unsupervised {100 * uns.mean():.2f} pts; "
            f"Mann–Whitney p = {format_p(p2)}", _verdict(holds, p2, min(len(sup), len(uns)), n_min=3),
            sup.mean() - uns.mean(), p2)
    # C3: fully trained supervised models give the best perturbed AUROC (one-vs-all)
    for cid, group, claim, best_of in (
            ("C3", ["logistic", "hsc"], "One-vs-all: fully trained supervised models have the best perturbed AUROC",
             lambda m: m == "fully_trained"),
            ("C4", ["svdd", "ssim"], "Unsupervised losses gain from post-hoc calibration, most with the "
             "calibration head", lambda m: m.startswith("calhead"))):
        present = [l for l in group if l in losses]
        if not present:
            continue
        means = ap[list(THESIS_METHODS)].groupby(level="loss").mean().loc[present]
        best = means.idxmax(axis=1)
        texts, ok, pvals, margins = [], [], [], []
        for l in present:
            runner = means.loc[l].drop(best[l]).idxmax()
            diff = ap.loc[l][best[l]] - ap.loc[l][runner]
            pvals.append(_wilcoxon_greater(diff))
            if cid == "C4":
                gain = means.loc[l][cal].max() - means.loc[l]["fully_trained"]
                margins.append(gain)
                ok.append(best_of(best[l]) and gain > 0)
                texts.append(f"{l}: best {METHOD_LABELS[best[l]]} {100 * means.loc[l].max():.1f}, "
                             f"best calibrated − fully trained {100 * gain:+.1f} pts")
            else:
                margins.append(means.loc[l][best[l]] - means.loc[l][runner])
                ok.append(best_of(best[l]))
                texts.append(f"{l}: best {METHOD_LABELS[best[l]]} {100 * means.loc[l].max():.1f}, "
                             f"runner-up {METHOD_LABELS[runner]} {100 * means.loc[l][runner]:.1f}")
        p = max(pvals) if all(ok) else float("nan")
        add(cid, claim, "; ".join(texts) + f"; Wilcoxon p (best vs runner-up) = {format_p(p)}",
            _verdict(all(ok), p, len(ap.loc[present[0]])), min(margins), p)
    # C5: spectral ≈ OE for Platt and β ...
    diffs = pd.concat([(ap[f"{m}_spectral"] - ap[f"{m}_oe"]) for m in ("platt", "beta")
                       if f"{m}_oe" in ap]).dropna()
    if len(diffs):
        worst = diffs.groupby(level="loss").mean().abs().max()
        add("C5", "Spectral anomalies are as good as OE for Platt and β calibration",
            f"mean perturbed AUROC spectral − OE per loss within ±{100 * worst:.2f} pts (tolerance 1 pt)",
            ("supported" if worst < 0.01 else "not supported by these runs") if len(ap) >= 6 else
            ("consistent, but not enough evidence at this scale" if worst < 0.01 else
             "not supported at this scale (too few experiments to conclude)"), worst)
    # C6: ... but worse for the calibration head
    if "calhead_oe" in ap:
        diff = (ap["calhead_oe"] - ap["calhead_spectral"]).dropna()
        p6 = _wilcoxon_greater(diff)
        add("C6", "Spectral anomalies are worse than OE for the calibration head",
            f"mean perturbed AUROC OE − spectral {100 * diff.mean():+.2f} pts; one-sided Wilcoxon p = {format_p(p6)}",
            _verdict(diff.mean() > 0, p6, len(diff)), diff.mean(), p6)
    # C7: unperturbed post-hoc calibrated models are no better than the fully trained one (supervised losses)
    sup_l = [l for l in ("logistic", "hsc") if l in losses]
    if sup_l:
        diff = (a0.loc[sup_l][cal].max(axis=1) - a0.loc[sup_l]["fully_trained"]).dropna()
        p7 = _wilcoxon_greater(-diff + 0.005)
        add("C7", "Supervised losses: unperturbed post-hoc calibrated models are worse than or equal to the fully "
            "trained model", f"best calibrated − fully trained {100 * diff.mean():+.2f} pts on average "
            f"(worse or equal within 0.5 pt: {int((diff <= 0.005).sum())} of {len(diff)})",
            _verdict(diff.mean() <= 0.005, p7, len(diff)), diff.mean(), p7)
    if "base" in a0:  # our runs only: the uncalibrated 3/4-split base model
        _monotone_claims(d, a0, add)
        kp = d[d["method"].isin(THESIS_METHODS)]
        rho_e, p_e = spearman(kp["kappa"], kp["ece"])
        rho_m, p_m = spearman(kp["kappa"], kp["mce"])
        n = int(np.isfinite(kp["kappa"]).sum())
        contra = (p_e < 0.05 and abs(rho_e) > 0.185) or (p_m < 0.05 and abs(rho_m) > 0.45)
        add("C10", "ECE and MCE do not predict the gain κ from perturbation (thesis: |ρ| ≤ 0.185 ECE, ≤ 0.45 MCE)",
            f"Spearman κ–ECE ρ = {rho_e:+.2f} (p = {format_p(p_e)}), κ–MCE ρ = {rho_m:+.2f} (p = {format_p(p_m)}), "
            f"n = {n}", ("not supported: a stronger monotone relationship than the thesis' range" if contra else
                         "supported" if n >= 30 else "consistent, but not enough evidence at this scale"),
            rho_e, p_e)
    return pd.DataFrame(out).set_index("id")


def _monotone_claims(d: pd.DataFrame, a0: pd.DataFrame, add) -> None:
    """C8 (Platt and β keep the base ranking) and C9 (naive β collapses for the logistic loss)."""
    base = a0["base"]
    slope = d[d["method"] == "platt_oe"].set_index(["loss", "class_label", "seed"])["cal_a"]
    exact = {}
    for m in ("platt_oe", "platt_spectral", "beta_oe", "beta_spectral"):
        if m not in a0:
            continue
        diff = (a0[m] - base).abs()
        if m.startswith("platt"):  # a fitted slope a < 0 reverses the ranking: AUROC becomes 1 − AUROC
            s = d[d["method"] == m].set_index(["loss", "class_label", "seed"])["cal_a"].reindex(diff.index)
            diff = diff.where(s > 0, (a0[m] - (1 - base)).abs())
        exact[m] = diff
    diff = pd.concat(exact.values())
    reversed_ = int((slope <= 0).sum()) + int((d[d["method"] == "platt_spectral"]["cal_a"] <= 0).sum())
    # float32 logits: a monotone map can merge two nearly equal scores into a tie (a few pairs of the test set)
    ok = bool((diff < 1e-4).all())
    add("C8", "Platt scaling and β calibration leave the unperturbed AUROC unchanged (monotone maps)",
        f"max |AUROC − base AUROC| = {diff.max():.1e} over {len(diff)} calibrated models (tolerance 1e-4: "
        "float32 ties)"
        + (f"; {reversed_} Platt fit(s) with slope a ≤ 0 reverse the ranking (AUROC → 1 − AUROC)" if reversed_ else ""),
        "supported" if ok else "not supported by these runs", diff.max())
    if "beta_naive_oe" in a0 and "logistic" in set(d["loss"]):
        lg = d[(d["loss"] == "logistic") & (d["method"] == "base")]
        sat = float(lg["base_saturated"].mean())
        drop = float((a0.loc["logistic"]["base"] - a0.loc["logistic"][["beta_naive_oe", "beta_naive_spectral"]]
                      .min(axis=1)).mean())
        stable = float((a0.loc["logistic"][["beta_oe", "beta_spectral"]].sub(a0.loc["logistic"]["base"], axis=0))
                       .abs().max().max())
        if sat < 0.01:
            verdict = "not observable at this scale: the logistic models' logits are not saturated"
        else:
            verdict = "supported" if drop > 0.01 and stable < 1e-4 else "not supported by these runs"
        add("C9", "Naive β calibration collapses for the overconfident logistic loss; stable β does not",
            f"logistic: {100 * sat:.1f} % of test logits beyond |z| = 15.9; naive β AUROC drop {100 * drop:.2f} pts, "
            f"stable β max change {100 * stable:.2g} pts", verdict, drop)


def numbers(frame: pd.DataFrame) -> dict:
    """The numbers behind each verdict of :func:`claims`, for ``calad.record``: ``{"c1": {"statistic": …,
    "p": …}, …}``, leaving out the p-values of claims without a test."""
    return {cid.lower(): {k: float(r[k]) for k in ("statistic", "p") if math.isfinite(r[k])}
            for cid, r in frame.iterrows()}


def verdict_table(frame: pd.DataFrame, thesis: pd.Series | None = None, caption: str | None = None):
    """The claims of :func:`claims` as an HTML table with a coloured status per verdict
    (:func:`calad_lib.report.verdicts`); with ``thesis`` (the verdicts on the thesis' own tables), a
    second tinted column, "n/a" for the claims the thesis' tables cannot decide."""

    show = frame[["claim", "evidence", "verdict"]].copy()
    col = "on the thesis' tables"
    if thesis is not None:
        show[col] = thesis.reindex(show.index).fillna("n/a: not in its tables")
    sty = verdicts(show, column="verdict", caption=caption)
    if thesis is not None:
        def tint(values: pd.Series) -> list[str]:
            return [f"background-color: {STATUS_COLOURS[status_of(v)][0]}; color: {STATUS_COLOURS[status_of(v)][1]}"
                    for v in values]
        sty = sty.apply(tint, subset=[col])
    return sty


def kappa_correlations(df: pd.DataFrame, methods=THESIS_METHODS) -> pd.DataFrame:
    """Spearman's ρ between the relative gain κ and each calibration error, per dataset, over every model of
    ``methods`` (§4.3.1 measures |ρ| ≤ 0.185 for ECE and ≤ 0.45 for MCE); the p-value as the book prints it."""

    rows = []
    for ds, d in df[df["method"].isin(methods)].groupby("dataset"):
        for metric in ("ece", "mce", "ece_oe", "mce_oe", "ece_spectral", "mce_spectral"):
            rho, p = spearman(d["kappa"], d[metric])
            n = int((np.isfinite(d["kappa"]) & np.isfinite(d[metric])).sum())
            rows.append({"dataset": ds, "κ against": metric.upper().replace("_OE", " (OE)")
                         .replace("_SPECTRAL", " (spectral)"), "models": n, "Spearman ρ": rho, "p-value": format_p(p)})
    return pd.DataFrame(rows).set_index(["dataset", "κ against"])


def conformal(df: pd.DataFrame, dataset: str, alpha: float, methods=None) -> pd.DataFrame:
    """Conformal anomaly detection per method, pooled over the experiments of ``dataset``.

    Columns: experiments, normal test images, the false-alarm rate P(p ≤ α) on them, the one-sided
    binomial p-value of "rate > α" (pooled alarms), Benjamini–Hochberg's FDR and power (means over
    experiments), and a verdict: ``exceeds α`` when the binomial test rejects at 5 %, else ``within α``.
    Indexed by method id (``platt_oe``; :data:`~calad_lib.experiment.METHOD_LABELS` names them).
    """


    d = df[df["dataset"] == dataset]
    g = d.groupby("method")
    out = pd.DataFrame({"experiments": g["run_key"].nunique(), "normal images": g["test_normal_images"].sum(),
                        "false-alarm rate": g["conformal_fpr"].mean(), "BH FDR": g["bh_fdr"].mean(),
                        "BH power": g["bh_power"].mean()})
    alarms = (d["conformal_fpr"] * d["test_normal_images"]).round().groupby(d["method"]).sum()
    out.insert(3, "p (rate > α)", [stats.binomtest(int(alarms[m]), int(out.at[m, "normal images"]), alpha,
                                                   alternative="greater").pvalue for m in out.index])
    out["verdict"] = np.where(out["p (rate > α)"] < 0.05, "exceeds α", "within α")
    return out.reindex([m for m in (methods or METHODS) if m in out.index]).rename_axis("method")


#: the models whose reference scores were fitted on (head) or trained on (fully trained) the calibration split
def conformal_view(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`conformal`'s table as the chapter shows it: methods by name, p-values as printed, no counts."""
    out = summary.drop(columns=["experiments", "normal images"]).rename(index=METHOD_LABELS)

    out["p (rate > α)"] = out["p (rate > α)"].map(format_p)
    return out


_OPTIMISTIC = ("fully_trained", "calhead_oe", "calhead_spectral")


def conformal_sentence(summary: pd.DataFrame, alpha: float) -> str:
    """What :func:`conformal`'s table shows, in one or two sentences decided by its verdicts."""
    rates = summary["false-alarm rate"]
    over = [m for m in summary.index if summary.at[m, "verdict"] == "exceeds α"]
    span = f"the measured rates lie between {rates.min():.3f} and {rates.max():.3f}"
    if not over:
        return (f"In this run no model's false-alarm rate exceeds α = {alpha:g} significantly (one-sided "
                f"binomial test at 5 %); {span}. The optimism expected of the calibration head and the fully "
                "trained model does not show at this scale.")
    valid = [METHOD_LABELS.get(m, m) for m in over if m not in _OPTIMISTIC]
    text = (f"In this run the false-alarm rate exceeds α = {alpha:g} significantly (one-sided binomial test at "
            f"5 %) for {', '.join(METHOD_LABELS.get(m, m) for m in over)}; {span}.")
    if valid:
        text += (f" {', '.join(valid)} should be valid; their excess says that the normal test images and the "
                 "calibration split are not exchangeable here.")
    else:
        text += " All of them are models whose reference scores are optimistic, as expected."
    return text
