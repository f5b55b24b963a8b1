"""How chapter 07 shows its results: the paper's tables as HTML, and the claims its prose rests on.

The paper's tables put methods in rows and metrics in columns and mark the best method of each
*column*; AULC_P and every rank are better when lower. :func:`summary` shows one of our
summary tables that way, :func:`compare_columns` sets ours beside the paper's (each cell
``ours / paper``, tinted by the difference, as :func:`calad_lib.report.compare` draws it, but with
the best per column in bold), and :func:`claims` turns the paper's findings into verdicts decided
by the numbers.
"""
from __future__ import annotations


import pandas as pd
from pandas.io.formats.style import Styler

from .. import report
from . import paper
from .evaluation import LOWER_IS_BETTER, METRICS

__all__ = ["LABELS", "VALUATION", "DENSITY_AWARE", "lower_is_better", "summary", "compare_columns", "position",
           "paper_checks", "claims", "FEW_EXPERIMENTS", "key", "keyed", "count"]

#: column labels of the paper's tables
LABELS = {"auc_qlt": "AUC_QLT", "aulc_g": "AULC_G", "acc_g": "ACC_G", "aulc_p": "AULC_P ↓", "avg_rank": "average",
          **{f"r{m}": lab for m, lab in (("auc_qlt", "AUC_QLT"), ("aulc_g", "AULC_G"), ("acc_g", "ACC_G"),
                                          ("aulc_p", "AULC_P"))}}
#: the data-valuation baselines built on a model's utility
VALUATION = ("LOO", "KNNShap", "AME", "INF", "DataBanzhaf")
#: the scores that use the density (EAP and the two density baselines that combine or rank by it)
DENSITY_AWARE = ("EAP", "Rarity", "P_y|x+NP_x")
#: fewer experiments (dataset × seed) than this make a ranking a statement "at this scale" only
FEW_EXPERIMENTS = 10


def lower_is_better(column: str) -> bool:
    """AULC_P and every rank (``r…``, ``avg_rank``) are better when lower."""
    return column in LOWER_IS_BETTER or column.startswith("r") or column == "avg_rank"


def _bold_best(sty: Styler, df: pd.DataFrame, lower: dict) -> Styler:
    """Bold the best value of each column of ``df`` (lowest where ``lower[column]``)."""
    num = df.apply(pd.to_numeric, errors="coerce")
    best = pd.DataFrame(False, index=df.index, columns=df.columns)
    for c in df.columns:
        col = num[c]
        if col.notna().sum() > 1:
            best[c] = col.eq(col.min() if lower[c] else col.max())
    return sty.apply(lambda _: best.replace({True: "font-weight: 700", False: ""}), axis=None)


def summary(table: pd.DataFrame, *, caption: str | None = None, metrics=METRICS) -> Styler:
    """A summary table (:func:`evaluation.summary_table`) in the paper's layout: mean metrics, then mean ranks.

    Two header rows ("mean" / "mean rank"); the best method of each column in bold.
    """
    means = [m for m in metrics if m in table.columns]
    ranks = [f"r{m}" for m in means if f"r{m}" in table.columns] + (["avg_rank"] if "avg_rank" in table else [])
    df = table[means + ranks].copy()
    df.columns = pd.MultiIndex.from_tuples([("mean", LABELS[c]) for c in means] +
                                           [("mean rank", LABELS[c]) for c in ranks])
    df.index.name = None
    fmt = {c: "{:.3f}" if c[0] == "mean" else "{:.2f}" for c in df.columns}
    lower = {c: lower_is_better(key) for c, key in zip(df.columns, means + ranks)}
    return _bold_best(report.table(df, fmt=fmt, caption=caption), df, lower)


def compare_columns(ours: pd.DataFrame, ref: pd.DataFrame, *, ref_name: str = "paper", digits: int = 3,
                    scale: float = 0.1, caption: str | None = None) -> Styler:
    """``ours / ref`` per cell with the difference tinted, the best method of each column in bold.

    Rows are methods, columns metrics (directions from :func:`lower_is_better`).
    """
    cols = [c for c in ours.columns if c in ref.columns]
    higher = {LABELS.get(c, c): not lower_is_better(c) for c in cols}
    return report.compare(ours[cols].rename(columns=LABELS), ref[cols].rename(columns=LABELS), ref_name=ref_name,
                          digits=digits, higher_is_better=higher, best="column", scale=scale, caption=caption)


def position(table: pd.DataFrame, column: str, method: str = "EAP") -> int:
    """1-based position of ``method`` when the rows are sorted best first on ``column`` (ties: shared best)."""
    values = table[column]
    v = values.loc[method]
    better = values < v if lower_is_better(column) else values > v
    return int(better.sum()) + 1


def paper_checks() -> pd.DataFrame:
    """Consistency of the transcribed Tables 1 and 3: do the average ranks equal the mean of the ranks?

    Exact arithmetic on the published numbers (two decimals, so agreement within 0.005).
    """
    rows = []
    for name, t, ranks in (("Table 1, image", paper.table1("image"), ["rauc_qlt", "raulc_g", "racc_g", "raulc_p"]),
                           ("Table 1, tabular", paper.table1("tabular"), ["rauc_qlt", "raulc_g", "racc_g", "raulc_p"]),
                           ("Table 3", paper.table3(), ["rauc_qlt", "racc_g"])):
        gap = (t[ranks].mean(axis=1) - t["avg_rank"]).abs()
        off = gap[gap > 0.005 + 1e-9]
        rows.append({"table": name, "average = mean": f"{int((gap <= 0.005 + 1e-9).sum())} of {len(t)}",
                     "exceptions (printed vs mean)": ", ".join(
                         f"{m}: {t.loc[m, 'avg_rank']:.2f} vs {t.loc[m, ranks].mean():.2f}" for m in off.index) or "none",
                     "column means": ", ".join(f"{t[r].mean():.2f}" for r in ranks),
                     "expected": f"{(len(t) + 1) / 2:.2f}"})
    return pd.DataFrame(rows).set_index("table")


def _verdict(holds: bool, n_exp: int) -> str:
    return ("holds" if holds else "fails") + ("" if n_exp >= FEW_EXPERIMENTS else " at this scale")


def claims(tables: dict[str, pd.DataFrame], n_experiments: dict[str, int], prior: pd.DataFrame | None = None,
           stretch: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's findings (Table 1, Table 3, the LAVA runner-up) against our numbers, one verdict each.

    ``tables``: summary tables by kind (``"tabular"``, ``"image"``); ``n_experiments``: the
    number of dataset × seed runs behind each; ``prior``: the summary of the prior variants;
    ``stretch``: mean AUC_QLT per method (rows) and stretch (columns). Rows are indexed by
    (group with its number of runs, claim); a verdict is "holds" or "fails", qualified "at this
    scale" when fewer than :data:`FEW_EXPERIMENTS` runs support it.
    """
    rows = []

    def add(group, n_exp, claim, ref, ours, holds):
        rows.append({"group": f"{group} ({count(n_exp, 'run')})", "claim": claim, "paper": ref, "ours": ours,
                     "verdict": _verdict(holds, n_exp)})

    for kind, ours in tables.items():
        ref, n_exp = paper.table1(kind), n_experiments[kind]
        p_q, p_r = position(ours, "rauc_qlt"), position(ours, "avg_rank")
        add(kind, n_exp, "EAP ranks first on AUC_QLT", f"1st ({ref.loc['EAP', 'rauc_qlt']:.2f})",
            f"{_ordinal(p_q)} ({ours.loc['EAP', 'rauc_qlt']:.2f}); first: {ours['rauc_qlt'].idxmin()}", p_q == 1)
        add(kind, n_exp, "EAP has the best average rank", f"1st ({ref.loc['EAP', 'avg_rank']:.2f})",
            f"{_ordinal(p_r)} ({ours.loc['EAP', 'avg_rank']:.2f}); first: {ours['avg_rank'].idxmin()}", p_r == 1)
        val = [m for m in VALUATION if m in ours.index]
        dens = [m for m in DENSITY_AWARE if m in ours.index]
        if val and dens:
            v, d = ours.loc[val, "auc_qlt"].mean(), ours.loc[dens, "auc_qlt"].min()
            add(kind, n_exp, "valuation scores (mean AUC_QLT) below every density-aware score",
                f"{ref.loc[val, 'auc_qlt'].mean():.3f} vs {ref.loc[dens, 'auc_qlt'].min():.3f}", f"{v:.3f} vs {d:.3f}",
                v < d)
        if "LAVA" in ours.index:
            p_l = position(ours, "rauc_qlt", "LAVA")
            add(kind, n_exp, "LAVA among the three best on AUC_QLT", _ordinal(position(ref, "rauc_qlt", "LAVA")),
                _ordinal(p_l), p_l <= 3)
    n_all = sum(n_experiments.values())
    if prior is not None and len(prior):
        ref3 = paper.table3()
        worst, best = prior["avg_rank"].idxmax(), prior["avg_rank"].idxmin()
        add("prior", n_all, "EAP_0.4 is the worst variant", ref3["avg_rank"].idxmax(), worst, worst == "EAP_0.4")
        add("prior", n_all, "the default w = m/n is the best variant", ref3["avg_rank"].idxmin(), best, best == "EAP")
    if stretch is not None and len(stretch.columns) > 1 and "EAP" in stretch.index:
        spread = stretch.max(axis=1) - stretch.min(axis=1)
        add("stretch", n_all, "EAP is the score least sensitive to the stretch", "not studied",
            f"{spread.idxmin()} (range {spread.min():.3f})", spread.idxmin() == "EAP")
    return pd.DataFrame(rows).set_index(["group", "claim"])


def count(k: int, noun: str) -> str:
    """``"1 dataset"``, ``"3 datasets"``."""
    return f"{k} {noun}{'' if k == 1 else 's'}"


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def key(name) -> str:
    """A record-name part for a method, dataset or column: ``"P_y|x+NP_x"`` → ``"p_yx_plus_np_x"``."""
    s = str(name).strip().lower()
    for a, b in ((" ", "_"), (":", "_"), ("|", ""), ("+", "_plus_"), ("'", "_prime"), ("/", "_")):
        s = s.replace(a, b)
    return s


def keyed(df: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """``df`` with its index (and columns) turned into record-name parts by :func:`key`."""
    out = df.rename(index=key)
    return out.rename(columns=key) if isinstance(out, pd.DataFrame) else out
