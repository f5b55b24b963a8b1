"""The paper, the authors' protocol and calad's variants side by side (chapter 07, section 9).

:func:`side_by_side` sets summary tables of several sources (the paper's Table 1, our runs under
each protocol) next to each other, :func:`headline` decides the paper's two headline claims (EAP
has the best average rank and the best mean AUC_QLT) for every source, :func:`variant_summary`
and :func:`variant_claims` do the same for the variant study (the authors' protocol with one
choice set to calad's), and :func:`k_hat_table` lays out k̂ under each rule.
"""
from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

from .. import report
from . import paper
from . import protocols as PR
from .tables import LABELS, _bold_best, _verdict, count, lower_is_better, position

__all__ = ["TIES", "PAPER_RUNS", "side_by_side", "headline", "variant_label", "variant_summary", "variant_claims",
           "k_hat_table"]

#: differences smaller than these make a "best" claim a near tie (inconclusive)
TIES = {"auc_qlt": 0.005, "avg_rank": 0.05}
#: experiments (dataset × seed) behind the paper's Table 1
PAPER_RUNS = {"tabular": 220, "image": 180}


def side_by_side(tables: dict[str, pd.DataFrame], columns=("auc_qlt", "avg_rank"), *,
                 caption: str | None = None) -> Styler:
    """Methods (rows) × (metric, source) columns; the best method of each column in bold."""
    parts = {(LABELS[c], src): t[c] for c in columns for src, t in tables.items() if c in t.columns}
    df = pd.DataFrame(parts)
    order = [m for m in next(iter(tables.values())).index if m in df.index]
    df = df.loc[order + [m for m in df.index if m not in order]]
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    keys = [c for c in columns for src, t in tables.items() if c in t.columns]
    fmt = {col: "{:.3f}" if key == "auc_qlt" else "{:.2f}" for col, key in zip(df.columns, keys)}
    lower = {col: lower_is_better(key) for col, key in zip(df.columns, keys)}
    return _bold_best(report.table(df, fmt=fmt, caption=caption), df, lower)


def _best_claim(t: pd.DataFrame, column: str) -> tuple[bool, str, float]:
    """Whether EAP is first on ``column`` of ``t`` by more than a near tie; the runner-up and the margin."""
    others = t[column].drop("EAP")
    lower = lower_is_better(column)
    rival = others.idxmin() if lower else others.idxmax()
    margin = (others[rival] - t.loc["EAP", column]) if lower else (t.loc["EAP", column] - others[rival])
    return position(t, column) == 1, rival, float(margin)


def headline(summaries: dict[str, dict[str, pd.DataFrame]], n_experiments: dict[str, dict[str, int]],
             *, with_paper: bool = True) -> pd.DataFrame:
    """The two headline claims for the paper (if ``with_paper``) and each source of ``summaries``.

    ``summaries[source][kind]`` is a summary table (:func:`~calad_lib.eap.evaluation.summary_table`),
    ``n_experiments[source][kind]`` its number of runs. A margin below :data:`TIES` is a near tie
    ("inconclusive"); fewer than 10 runs qualify a verdict "at this scale".
    """
    sources = dict(summaries)
    counts = dict(n_experiments)
    if with_paper:
        kinds = sorted({k for s in summaries.values() for k in s})
        sources = {"paper": {k: paper.table1(k) for k in kinds}, **sources}
        counts = {"paper": {k: PAPER_RUNS[k] for k in kinds}, **counts}
    rows = []
    for src, tables in sources.items():
        for kind, t in tables.items():
            n = counts[src][kind]
            for claim, col in (("EAP has the best average rank", "avg_rank"), ("EAP has the best mean AUC_QLT", "auc_qlt")):
                first, rival, margin = _best_claim(t, col)
                digits = 3 if col == "auc_qlt" else 2
                verdict = ("inconclusive: a near tie" + ("" if n >= 10 else " at this scale")
                           if abs(margin) < TIES[col] else _verdict(first, n))
                rows.append({"source": src, "group": f"{kind} ({count(n, 'run')})", "claim": claim,
                             "EAP": f"{t.loc['EAP', col]:.{digits}f}",
                             "best other": f"{rival} {t.loc[rival, col]:.{digits}f}",
                             "margin": round(margin, digits), "verdict": verdict})
    return pd.DataFrame(rows).set_index(["source", "group", "claim"])


def variant_label(v: str) -> str:
    """``"none"`` → "authors' protocol"; ``"calad"`` → calad's whole protocol; a choice → "<choice> → <calad's value>"."""
    if v in ("none", "calad"):
        return {"none": "authors' protocol", "calad": "calad's protocol (every choice)"}[v]
    return f"{v} → {PR.CHOICES[v][1]}"


def variant_summary(study: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Mean AUC_QLT per variant (rows) and method (columns), EAP's place among all methods, the best
    other method and EAP's margin over it, and EAP's mean k̂."""
    means = study.groupby(["variant", "method"]).auc_qlt.mean().unstack()
    order = [v for v in study.variant.unique()]
    means = means.loc[order]
    out = means[[m for m in (methods or means.columns) if m in means.columns]].copy()
    others = means.drop(columns="EAP")
    out["EAP's place"] = (others.gt(means["EAP"], axis=0)).sum(axis=1) + 1
    out["best other"] = others.idxmax(axis=1)
    out["its AUC_QLT"] = others.max(axis=1)
    out["margin"] = means["EAP"] - others.max(axis=1)
    out["k̂"] = study[study.method == "EAP"].groupby("variant").k_hat.mean().reindex(order)
    out.index = [variant_label(v) for v in order]
    return out


def variant_claims(summary: pd.DataFrame, n_runs: int) -> pd.DataFrame:
    """"EAP has the best mean AUC_QLT" for each row of :func:`variant_summary`."""
    rows = []
    for label, r in summary.iterrows():
        near = abs(r["margin"]) < TIES["auc_qlt"]
        verdict = ("inconclusive: a near tie" + ("" if n_runs >= 10 else " at this scale")) if near \
            else _verdict(r["EAP's place"] == 1, n_runs)
        rival = f"{r['best other']} {r['its AUC_QLT']:.3f}"
        rows.append({"variant": label, "EAP": f"{r['EAP']:.3f}", "best other": rival,
                     "margin": round(float(r["margin"]), 3), "verdict": verdict})
    return pd.DataFrame(rows).set_index("variant")


def k_hat_table(study: pd.DataFrame, calad_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean k̂ per dataset: the authors' rule and calad's on the authors' split, calad's on calad's split.

    ``study``: rows of :func:`~calad_lib.eap.experiment.variant_study` (the ``k_rule`` variant gives
    calad's rule on the authors' split); ``calad_rows``: the calad protocol's main rows.
    """
    eap = study[study.method == "EAP"]
    base = eap[eap.variant == "none"]
    cols = {"n": base.groupby("dataset").n.mean(), "authors' rule": base.groupby("dataset").k_hat.mean()}
    if (eap.variant == "k_rule").any():
        cols["calad's rule"] = eap[eap.variant == "k_rule"].groupby("dataset").k_hat.mean()
    if calad_rows is not None:
        cal = calad_rows[calad_rows.method == "EAP"].groupby("dataset")
        cols["n, calad's split"] = cal.n.mean()
        cols["calad's rule, calad's split"] = cal.k_hat.mean()
    return pd.DataFrame(cols).loc[list(base.dataset.unique())]
