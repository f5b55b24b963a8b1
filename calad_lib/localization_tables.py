"""Localization results as tables and verdicts: Table 4.3's layout, the thesis' Tables 4.3 and C.1–C.12, §4.3.2.

Reads the rows of :func:`calad_lib.localization.run_grid` (one per run × method) and the transcribed
thesis tables in ``calad_lib/thesis_tables/``; every verdict on a claim of §4.3.2 is decided here by
code from the numbers it prints as evidence.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from .localization import _TABLE_DIR, _THESIS_LOSS, LOSS_LABELS, LOSSES, METHODS, PAPER_METHODS

__all__ = ["table_4_3", "thesis_table_4_3", "thesis_per_class", "thesis_layout", "thesis_class_counts", "verdicts",
           "EXTRA_ROWS"]

# --- tables --------------------------------------------------------------------------------------
_METRIC_ROWS = [("pixel_auroc", "AUROC"), ("pixel_auroc_perturbed", "AUROC perturbed"), ("aupro", "AUPRO"),
                ("aupro_perturbed", "AUPRO perturbed"), ("pixel_mce", "MCE"), ("pixel_ece", "ECE")]


#: labels of the extra rows :func:`table_4_3` can add
EXTRA_ROWS = {"pixel_ece_patch": "ECE pasted", "pixel_mce_patch": "MCE pasted", "rank_corr": "rank corr",
              "pixel_auroc_eta32": "AUROC float32 η̂", "kappa": "κ"}


def table_4_3(df: pd.DataFrame, methods: Sequence[str] | None = None, *, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Our results in the layout of Table 4.3: % means over classes and seeds; rows (family, loss, metric).

    ``extra`` adds metric rows (columns of ``df``, labelled by :data:`EXTRA_ROWS`, e.g. ``"pixel_ece_patch"``).
    Methods are columns in ``methods`` order.
    """
    methods = [m for m in (methods or METHODS) if m in set(df["method"])]
    rows = _METRIC_ROWS + [(e, EXTRA_ROWS.get(e, e)) for e in extra]
    parts = []
    order = {loss: i for i, loss in enumerate(LOSSES)}
    for (family, loss), g in sorted(df.groupby(["family", "loss"], sort=False),
                                    key=lambda kv: (kv[0][0], order.get(kv[0][1], len(order)))):
        means = g.groupby("method")[[r for r, _ in rows]].mean() * 100
        for col, label in rows:
            parts.append(pd.Series(means[col].reindex(methods).to_numpy(), index=methods,
                                   name=(family, LOSS_LABELS.get(loss, loss), label)))
    out = pd.DataFrame(parts)
    out.index = pd.MultiIndex.from_tuples(out.index, names=["data", "loss", "metric"])
    return out


def thesis_table_4_3() -> pd.DataFrame:
    """The thesis' Table 4.3 (transcribed; %), long format: dataset, loss, metric, perturbed, one column per method."""
    return pd.read_csv(_TABLE_DIR / "table_4_3.csv")


def thesis_layout(thesis: pd.DataFrame | None = None) -> pd.DataFrame:
    """The thesis' Table 4.3 in the layout of :func:`table_4_3` (rows: data, loss, metric)."""
    t = thesis_table_4_3() if thesis is None else thesis
    name = {v: LOSS_LABELS[k] for k, v in _THESIS_LOSS.items()}
    label = dict(_METRIC_ROWS)
    idx = [(r.dataset, name[r.loss], label[r.metric + ("_perturbed" if r.perturbed else "")]) for r in t.itertuples()]
    out = t[list(PAPER_METHODS)].copy()
    out.index = pd.MultiIndex.from_tuples(idx, names=["data", "loss", "metric"])
    return out


def thesis_per_class(dataset: str, loss: str, metric: str) -> pd.DataFrame:
    """One of the thesis' Tables C.1–C.12 (%): ``dataset`` ``mvtec``/``mpdd``, our ``loss`` name, ``metric``
    ``pixel_auroc``/``aupro``; columns class, perturbed and the five methods."""
    index = pd.read_csv(_TABLE_DIR / "table_c_index.csv")
    th_loss = _THESIS_LOSS.get(loss, loss)
    hit = index[(index.dataset == dataset) & (index.loss == th_loss) & (index.metric == metric)]
    if hit.empty:
        raise ValueError(f"no thesis table for {dataset}/{loss}/{metric}; datasets mvtec, mpdd; losses "
                         f"{', '.join(LOSSES)}; metrics pixel_auroc, aupro")
    return pd.read_csv(_TABLE_DIR / f"{hit.iloc[0].table}.csv")


def thesis_class_counts() -> pd.DataFrame:
    """From Tables C.1–C.12: per dataset, loss and metric, in how many classes post-hoc calibration
    (best of the four Platt/β columns) falls below the fully trained model, unperturbed and perturbed."""
    index = pd.read_csv(_TABLE_DIR / "table_c_index.csv")
    names = {v: k for k, v in _THESIS_LOSS.items()}
    post = [m for m in PAPER_METHODS if m != "fully_trained"]
    rows = []
    for r in index.itertuples():
        c = pd.read_csv(_TABLE_DIR / f"{r.table}.csv")
        c = c[c["class"] != "Average"]
        u, p = c[c.perturbed == 0].set_index("class"), c[c.perturbed == 1].set_index("class")
        rows.append({"dataset": r.dataset, "loss": LOSS_LABELS[names[r.loss]], "metric": r.metric, "classes": len(u),
                     "post-hoc below fully trained": int((u[post].max(1) < u.fully_trained).sum()),
                     "perturbed post-hoc below unperturbed fully trained":
                         int((p[post].max(1) < u.fully_trained).sum()),
                     "perturbation helps fully trained": int((p.fully_trained > u.fully_trained).sum())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# verdicts on §4.3.2, decided from the numbers
def _paired(df: pd.DataFrame, a: str, b: str, col: str) -> tuple[float, float, int, int]:
    """Mean of ``col`` for methods ``a`` and ``b`` and how often ``a`` beats ``b`` over paired runs."""
    p = df.pivot_table(index=["dataset", "seed"], columns="method", values=col)
    if a not in p or b not in p:
        return float("nan"), float("nan"), 0, 0
    both = p[[a, b]].dropna()
    return float(both[a].mean()), float(both[b].mean()), int((both[a] > both[b]).sum()), len(both)


def verdicts(df: pd.DataFrame, *, tol: float = 0.005, marginal: float = 0.02) -> pd.DataFrame:
    """Each claim of §4.3.2 (and the adaptive question) per loss, with the evidence and a verdict.

    ``tol``: a difference of pixel AUROC/AUPRO below it counts as "no change"; ``marginal``: the largest
    mean perturbation gain still called marginal. Values are fractions (0.005 = half a point). The adaptive
    calibrators are compared with ``base`` — the ranking every increasing per-pixel transform keeps (a
    Platt fit with a negative slope reverses it) — and with the fully trained network, run by run.
    """
    out = []

    def add(claim, loss, evidence, holds):
        out.append({"claim": claim, "loss": LOSS_LABELS.get(loss, loss), "evidence": evidence,
                    "verdict": "n/a" if holds is None else ("holds" if holds else "does not hold")})

    posthoc = [m for m in ("platt_oe", "platt_spectral", "beta_oe", "beta_spectral") if m in set(df.method)]
    adaptive = [m for m in ("local_oe", "local_spectral", "head_oe", "head_spectral") if m in set(df.method)]
    for loss, g in df.groupby("loss", sort=False):
        mean = g.groupby("method").mean(numeric_only=True)
        have = set(mean.index)
        if "fully_trained" in have and posthoc:
            ft = mean.loc["fully_trained"]
            best = mean.loc[posthoc, ["pixel_auroc", "aupro"]].max()
            best_p = mean.loc[posthoc, ["pixel_auroc_perturbed", "aupro_perturbed"]].max()
            add("per-pixel Platt/β do not improve localization over the fully trained model", loss,
                f"AUROC {100 * ft.pixel_auroc:.1f} vs best post-hoc {100 * best.pixel_auroc:.1f}; "
                f"AUPRO {100 * ft.aupro:.1f} vs {100 * best.aupro:.1f}",
                bool(best.pixel_auroc <= ft.pixel_auroc + tol and best.aupro <= ft.aupro + tol))
            add("perturbing post-hoc models does not overcome the deficit", loss,
                f"perturbed best post-hoc AUROC {100 * best_p.pixel_auroc_perturbed:.1f}, AUPRO "
                f"{100 * best_p.aupro_perturbed:.1f} vs fully trained {100 * ft.pixel_auroc:.1f}, {100 * ft.aupro:.1f}",
                bool(best_p.pixel_auroc_perturbed <= ft.pixel_auroc + tol and best_p.aupro_perturbed <= ft.aupro + tol))
        cols = [m for m in ["fully_trained", *posthoc] if m in have]
        if cols and "pixel_auroc_perturbed" in mean:
            gain = (mean.loc[cols, "pixel_auroc_perturbed"] - mean.loc[cols, "pixel_auroc"])
            gain_pro = (mean.loc[cols, "aupro_perturbed"] - mean.loc[cols, "aupro"])
            add("perturbation gains are marginal", loss,
                f"mean gain AUROC {100 * gain.mean():+.2f}, AUPRO {100 * gain_pro.mean():+.2f} points "
                f"(largest {100 * max(gain.max(), gain_pro.max()):+.2f})",
                bool(max(gain.max(), gain_pro.max()) < marginal))
            add("perturbation improves every model", loss,
                f"{int((gain > 0).sum())}/{len(gain)} AUROC and {int((gain_pro > 0).sum())}/{len(gain_pro)} "
                "AUPRO gains > 0",
                bool((gain > 0).all() and (gain_pro > 0).all()))
        if loss == "unet" and "fully_trained" in have and posthoc:
            ft = mean.loc["fully_trained"]
            ece, mce = mean.loc[posthoc, "pixel_ece"].min(), mean.loc[posthoc, "pixel_mce"].min()
            add("for the logistic loss the fully trained model is better calibrated than post-hoc", loss,
                f"ECE {100 * ft.pixel_ece:.2f} vs best post-hoc {100 * ece:.2f}; "
                f"MCE {100 * ft.pixel_mce:.1f} vs {100 * mce:.1f}",
                bool(ft.pixel_ece < ece and ft.pixel_mce < mce))
        shared = "base" if "base" in have else "platt_spectral"
        if shared in have and "location_platt_spectral" in have:
            a, b, wins, n = _paired(g, "location_platt_spectral", shared, "pixel_auroc")
            add("one Platt per location lowers pixel AUROC (a reading of the thesis' drop)", loss,
                f"AUROC {100 * a:.1f} vs {100 * b:.1f} for the ranking a shared Platt keeps ({shared}); "
                f"higher in {wins}/{n} runs", bool(a < b - tol))
        refs = {"base": "the per-pixel Platt/β ranking (base)", "fully_trained": "the fully trained network"}
        if "base" not in have and "platt_spectral" in have:
            refs = {"platt_spectral": "per-pixel Platt (spectral)", "fully_trained": refs["fully_trained"]}
        for ref, ref_name in refs.items():
            if ref not in have or not adaptive:
                continue
            best = max(adaptive, key=lambda m: mean.loc[m, "pixel_auroc"])
            a, b, wins, n = _paired(g, best, ref, "pixel_auroc")
            a2, b2, wins2, _ = _paired(g, best, ref, "aupro")
            add(f"the best adaptive calibrator ({best}) localizes better than {ref_name}", loss,
                f"AUROC {100 * a:.1f} vs {100 * b:.1f} (better in {wins}/{n}); AUPRO {100 * a2:.1f} vs "
                f"{100 * b2:.1f} (better in {wins2}/{n})", bool(a > b + tol and a2 > b2 + tol))
    return pd.DataFrame(out, columns=["claim", "loss", "evidence", "verdict"])
