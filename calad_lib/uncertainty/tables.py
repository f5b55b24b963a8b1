"""Chapter 08's tables, verdicts and figures from the rows of :func:`~calad_lib.uncertainty.run_experiments`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .experiment import CALIBRATIONS, REGIME_LABELS, REGIMES
from .training import METHODS

__all__ = ["summarize", "claims", "metric_table", "regime_table", "spread_table", "reliability_figure", "ece_figure"]


_SUMMARY = ("auroc", "ece_oe", "ece_real", "mce_oe", "mce_real", "eta_normal", "eta_oe", "eta_real")


def summarize(res):
    """Means over the tasks, one row per (method, training anomalies, calibration), in the chapter's order."""
    keys = ["method", "training anomalies", "calibration"]
    out = res.groupby(keys)[[c for c in _SUMMARY if c in res]].mean()
    order = [(m, r, c) for m in METHODS for r in REGIMES for c in CALIBRATIONS if (m, r, c) in out.index]
    return out.reindex(pd.MultiIndex.from_tuples(order, names=keys))


#: chapter 08's claims on calibration: (id, claim, difference per method that is > 0 where it holds)
_CLAIMS = (
    ("C1", "OE lowers the ECE on held-out OE",
     lambda s, m: s.loc[(m, "no OE", "none"), "ece_oe"] - s.loc[(m, "OE", "none"), "ece_oe"]),
    ("C2", "OE-trained models are worse calibrated on real anomalies than on held-out OE",
     lambda s, m: s.loc[(m, "OE", "none"), "ece_real"] - s.loc[(m, "OE", "none"), "ece_oe"]),
    ("C3", "post-hoc Platt (on OE) lowers the ECE on held-out OE, no OE in training",
     lambda s, m: s.loc[(m, "no OE", "none"), "ece_oe"] - s.loc[(m, "no OE", "platt"), "ece_oe"]),
    ("C4", "post-hoc Platt (on OE) lowers the ECE on held-out OE after OE training",
     lambda s, m: s.loc[(m, "OE", "none"), "ece_oe"] - s.loc[(m, "OE", "platt"), "ece_oe"]),
    ("C5", "OE + Platt is worse calibrated on real anomalies than on held-out OE",
     lambda s, m: s.loc[(m, "OE", "platt"), "ece_real"] - s.loc[(m, "OE", "platt"), "ece_oe"]),
    ("C6", "OE raises the AUROC (one-vs-all test set)",
     lambda s, m: s.loc[(m, "OE", "none"), "auroc"] - s.loc[(m, "no OE", "none"), "auroc"]),
)


def _verdict(count: int, n: int) -> str:
    if count == n:
        return f"holds for all {n} methods"
    if count == 0:
        return f"fails for all {n} methods"
    return f"mixed: {count} of {n} methods"


def claims(summary):
    """Claims C1–C6, decided per method from :func:`summarize`'s means.

    Columns: ``claim``, ``holds for`` (the methods), ``count``, ``of``, ``mean_diff`` (the mean
    over the methods of the difference that is positive where the claim holds: ECE or AUROC, as
    a fraction) and ``verdict`` (holds for all / fails for all / mixed: k of n).
    """
    methods = [m for m in METHODS if m in summary.index.get_level_values(0)]
    rows = []
    for key, text, diff in _CLAIMS:
        d = {m: float(diff(summary, m)) for m in methods}
        yes = [m for m in methods if d[m] > 0]
        rows.append({"id": key, "claim": f"{key} {text}", "holds for": ", ".join(yes) or "none", "count": len(yes),
                     "of": len(methods), "mean_diff": float(np.mean(list(d.values()))),
                     "verdict": _verdict(len(yes), len(methods))})
    return pd.DataFrame(rows).set_index("id")


def metric_table(summary, metric: str):
    """``metric`` (``"ece"`` or ``"mce"``) per (method, training regime) × (evaluation set, calibration)."""
    if metric not in ("ece", "mce"):
        raise ValueError(f"metric must be 'ece' or 'mce', got {metric!r}")
    sets = {f"{metric}_oe": "held-out OE", f"{metric}_real": "real anomalies"}
    rows = [(m, r) for m in METHODS for r in REGIMES if (m, r, "none") in summary.index]
    cols = [(label, c) for label in sets.values() for c in CALIBRATIONS]
    out = pd.DataFrame([[summary.loc[(m, r, c), col] for col in sets for c in CALIBRATIONS] for m, r in rows],
                       index=pd.MultiIndex.from_tuples(rows, names=["method", "training anomalies"]),
                       columns=pd.MultiIndex.from_tuples(cols, names=[metric.upper() + " on", "calibration"]))
    return out


def regime_table(summary):
    """Mean ECE and MCE over the methods for each (training regime, calibration), by :data:`REGIME_LABELS`."""
    cols = ["ece_oe", "ece_real", "mce_oe", "mce_real"]
    return pd.DataFrame({label: summary.xs((r, c), level=["training anomalies", "calibration"])[cols].mean()
                         for (r, c), label in REGIME_LABELS.items()}).T


def spread_table(res):
    """Mean spread (members' standard deviation of ``σ(z)``) per set and its AUROC, for MC dropout and ensembles."""
    cols = ["spread_normal", "spread_oe", "spread_real", "spread_auroc_oe", "spread_auroc_real"]
    sel = res[res["method"].isin(["mc_dropout", "ensemble"]) & (res["calibration"] == "none")]
    out = sel.groupby(["method", "training anomalies"])[cols].mean()
    order = [(m, r) for m in METHODS for r in REGIMES if (m, r) in out.index]
    return out.loc[order]


#: colours and markers of the four (regime, calibration) combinations the figures show
_SHOWN = {("no OE", "none"): ("#7f7f7f", "o"), ("no OE", "platt"): ("#ff7f0e", "s"),
          ("OE", "none"): ("#2ca02c", "^"), ("OE", "platt"): ("#d62728", "D")}


def reliability_figure(res, ev: str, *, title: str | None = None):
    """Reliability diagrams of every method on evaluation set ``ev`` (``"oe"`` or ``"real"``), 2 × 3 panels.

    Bins are pooled over the tasks; the marker area is proportional to the images in the bin.
    The sixth panel holds the legend.
    """
    fig, axes = plt.subplots(2, 3, figsize=(7.5, 5.6), sharex=True, sharey=True)
    for ax, method in zip(axes.flat, METHODS):
        ax.plot([0, 1], [0, 1], color="k", lw=0.7, ls=":")
        for (regime, cal), (colour, marker) in _SHOWN.items():
            sel = res[(res["method"] == method) & (res["training anomalies"] == regime) & (res["calibration"] == cal)]
            rel = list(sel[f"rel_{ev}"])
            count = np.sum([r["count"] for r in rel], axis=0)
            conf = np.sum([np.nan_to_num(r["conf"]) * np.array(r["count"]) for r in rel], axis=0)
            freq = np.sum([np.nan_to_num(r["freq"]) * np.array(r["count"]) for r in rel], axis=0)
            ok = count > 0
            x, y = conf[ok] / count[ok], freq[ok] / count[ok]
            ax.plot(x, y, "-", lw=1.0, alpha=0.7, color=colour)
            ax.scatter(x, y, s=6 + 120 * count[ok] / count.sum(), marker=marker, color=colour, zorder=3,
                       label=REGIME_LABELS[(regime, cal)])
        ax.set_title(method, fontsize=10)
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction anomalous")
    for ax in axes[1]:
        ax.set_xlabel(r"mean $\hat\eta$ in bin")
    axes[0, 2].tick_params(labelbottom=True)
    legend_ax = axes.flat[-1]
    legend_ax.axis("off")
    legend_ax.legend(*axes.flat[0].get_legend_handles_labels(), loc="center", fontsize=9, frameon=False,
                     title="regime", title_fontsize=9, markerscale=1.5)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def ece_figure(summary):
    """ECE of every method in the four shown regimes, on held-out OE (top) and on real anomalies (bottom)."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 5.6), sharex=True, sharey=True)
    width = 0.8 / len(_SHOWN)
    x = np.arange(len(METHODS))
    for ax, ev, title in zip(axes, ["oe", "real"], ["normal + held-out OE", "normal + real anomalies"]):
        for i, ((regime, cal), (colour, _)) in enumerate(_SHOWN.items()):
            vals = [summary.loc[(m, regime, cal), f"ece_{ev}"] for m in METHODS]
            ax.bar(x - 0.4 + (i + 0.5) * width, vals, width, color=colour, label=REGIME_LABELS[(regime, cal)])
        ax.set(title=f"ECE on {title}", ylabel="ECE")
    axes[1].set_xticks(x, METHODS)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
