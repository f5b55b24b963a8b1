"""Localization results as tables and verdicts: Table 4.3's layout, the thesis' Tables 4.3 and C.1–C.12, §4.3.2.

Reads the rows of :func:`calad_lib.localization.run_grid` (one per run × method) and the transcribed
thesis tables in ``calad_lib/thesis_tables/``; every verdict on a claim of §4.3.2 is decided here by
code from the numbers it prints as evidence.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..records import finite
from ..report import table
from .experiment import LOSS_LABELS, LOSSES, METHOD_LABELS, METHODS, PAPER_METHODS

_TABLE_DIR = Path(__file__).resolve().parent.parent / "thesis_tables"
#: our losses by the thesis' names
_THESIS_LOSS = {"fcdd": "fcdd", "ssim_pixel": "ssim", "unet": "logistic"}

__all__ = ["table_4_3", "thesis_table_4_3", "thesis_per_class", "thesis_layout", "thesis_class_counts",
           "EXTRA_ROWS", "LOWER_IS_BETTER", "DATA_LABELS", "styled", "thesis_by_dataset", "class_counts_table",
           "per_loss", "side_by_side", "describe_grid", "headline", "fitted_params"]

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
LOWER_IS_BETTER = ("MCE", "ECE", "ECE pasted", "MCE pasted")
#: labels that get no bold (diagnostics, not scores)
_NO_BEST = ("rank ρ", "rank corr", "AUROC f32", "AUROC float32 η̂", "κ")
#: how the book names the thesis' datasets
DATA_LABELS = {"mvtec": "MVTec AD", "mpdd": "MPDD", "textures": "defect textures"}
#: short column labels of the per-loss tables
_SHORT = {"AUROC perturbed": "AUROC pert.", "AUPRO perturbed": "AUPRO pert.", "rank corr": "rank ρ",
          "AUROC float32 η̂": "AUROC f32"}


def styled(df: pd.DataFrame, *, best: str | None = "row", digits: int = 1, caption: str | None = None):
    """``df`` as an HTML table (:func:`calad_lib.report.table`) with the best value of each row (or column)
    in bold, as the thesis marks it: highest for AUROC/AUPRO, lowest for ECE/MCE (:data:`LOWER_IS_BETTER`);
    the label of a row is the last level of its index."""

    sty = table(df, digits=digits, caption=caption)
    if best not in ("row", "column"):
        return sty
    num = df.apply(pd.to_numeric, errors="coerce")
    mask = pd.DataFrame("", index=df.index, columns=df.columns)
    lines = num.iterrows() if best == "row" else num.items()
    for key, vals in lines:
        label = key[-1] if isinstance(key, tuple) else key
        if label in _NO_BEST or vals.notna().sum() < 2:
            continue
        target = vals.min() if label in LOWER_IS_BETTER else vals.max()
        for other in vals.index[vals.eq(target)]:
            cell = (key, other) if best == "row" else (other, key)
            mask.loc[cell] = "font-weight: 700"
    return sty.apply(lambda _: mask, axis=None)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:

    return frame.rename(columns=METHOD_LABELS)


def thesis_by_dataset() -> dict[str, pd.DataFrame]:
    """The thesis' Table 4.3 split by dataset: ``{"MVTec AD": frame, "MPDD": frame}``, rows (loss, metric),
    one column per model (labelled), values in %."""
    lay = thesis_layout()
    return {DATA_LABELS[ds]: _labelled(lay.xs(ds, level="data")) for ds in ("mvtec", "mpdd")}


def class_counts_table() -> pd.DataFrame:
    """:func:`thesis_class_counts` compact: rows (dataset, loss, metric), short column names (see the chapter)."""
    c = thesis_class_counts().replace({"dataset": DATA_LABELS, "metric": {"pixel_auroc": "AUROC", "aupro": "AUPRO"}})
    c = c.sort_values("dataset", key=lambda d: d.map({"MVTec AD": 0, "MPDD": 1}), kind="stable")
    c = c.set_index(["dataset", "loss", "metric"])
    return c.rename(columns={"post-hoc below fully trained": "post-hoc < FT",
                             "perturbed post-hoc below unperturbed fully trained": "perturbed post-hoc < FT",
                             "perturbation helps fully trained": "perturbation helps FT"})


def per_loss(ours: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """:func:`table_4_3` output split into one narrow table per (data family and) loss: one row per model,
    one column per metric (short labels). Keys: the loss label, prefixed by the family when there are several."""

    fams = list(dict.fromkeys(ours.index.get_level_values("data")))
    out = {}
    for fam in fams:
        for loss in dict.fromkeys(ours.xs(fam, level="data").index.get_level_values("loss")):
            t = ours.xs((fam, loss), level=("data", "loss")).T.rename(columns=_SHORT)
            t.index = [METHOD_LABELS.get(m, m) for m in t.index]
            out[loss if len(fams) == 1 else f"{DATA_LABELS.get(fam, fam)}, {loss}"] = t
    return out


def side_by_side(ours: pd.DataFrame, thesis: pd.DataFrame | None = None,
                 methods: Sequence[str] = PAPER_METHODS) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, str]]:
    """Per loss, our Table 4.3 and the thesis' in the same shape for :func:`calad_lib.report.compare`:
    ``{loss: (ours, thesis, caption)}``, rows (thesis dataset, metric), columns the thesis' models.

    Where our runs include the thesis' dataset (the ``thesis`` preset) that dataset is compared with
    itself; otherwise our data (the defect textures) stand beside each of the thesis' datasets.
    """
    thesis = thesis_layout() if thesis is None else thesis
    methods = [m for m in methods if m in ours.columns and m in thesis.columns]
    fams = list(dict.fromkeys(ours.index.get_level_values("data")))
    out = {}
    for loss in dict.fromkeys(ours.index.get_level_values("loss")):
        a, b, used = [], [], []
        for ds in ("mvtec", "mpdd"):
            fam = ds if ds in fams else fams[0]
            if (fam, loss) not in ours.droplevel("metric").index or (ds, loss) not in thesis.droplevel("metric").index:
                continue
            th = thesis.xs((ds, loss), level=("data", "loss"))[methods]
            mine = ours.xs((fam, loss), level=("data", "loss")).reindex(th.index)[methods]
            key = pd.MultiIndex.from_product([[DATA_LABELS[ds]], th.index], names=["thesis data", "metric"])
            a.append(mine.set_axis(key))
            b.append(th.set_axis(key))
            used.append(DATA_LABELS.get(fam, fam))
        if a:
            data = " and ".join(dict.fromkeys(used))
            out[loss] = (_labelled(pd.concat(a)), _labelled(pd.concat(b)),
                         f"{loss}: ours ({data}) / thesis, % (Δ = ours − thesis)")
    return out


def describe_grid(configs, df: pd.DataFrame, ours: pd.DataFrame, width: int = 90) -> str:
    """The shape of the experiment in a few lines of at most ``width`` characters: runs, rows, models."""


    classes = sorted({c.dataset for c in configs})
    losses = list(dict.fromkeys(c.loss for c in configs))
    seeds = sorted({c.seed for c in configs})
    models = [METHOD_LABELS.get(m, m) for m in ours.columns]
    lines = [f"{len(configs)} runs = {len(classes)} class(es) × {len(losses)} loss(es) × {len(seeds)} seed(s); "
             f"{len(df)} result rows",
             f"losses: {', '.join(LOSS_LABELS.get(l, l) for l in losses)}",
             f"metrics per loss: {len(dict.fromkeys(ours.index.get_level_values('metric')))}",
             *textwrap.wrap(f"models ({len(models)}): {', '.join(models)}", width, subsequent_indent="  ")]
    return "\n".join(lines)


_RECORDED = ("pixel_auroc", "aupro", "pixel_auroc_perturbed", "aupro_perturbed", "pixel_ece", "pixel_mce")


def headline(df: pd.DataFrame, metrics: Sequence[str] = _RECORDED) -> dict:
    """``{loss: {method: {metric: mean}}}`` over classes and seeds (fractions), for ``calad.record``."""
    means = df.groupby(["loss", "method"], sort=False)[[m for m in metrics if m in df.columns]].mean()
    out: dict = {}
    for (loss, method), r in means.iterrows():
        out.setdefault(loss, {})[method] = {k: float(v) for k, v in r.items()}
    return finite(out)


def fitted_params(df: pd.DataFrame) -> dict:
    """The fitted per-pixel Platt/β parameters, ``{loss: {method: {a, (b,) c}}}``, means over runs."""

    rows = df[df.method.str.match(r"^(platt|beta|beta_naive)_(oe|spectral)$") & df.cal_params.astype(bool)]
    out: dict = {}
    for (loss, method), g in rows.groupby(["loss", "method"], sort=False):
        params = pd.DataFrame([json.loads(p) for p in g.cal_params]).mean()
        out.setdefault(loss, {})[method] = {k: float(v) for k, v in params.items()}
    return finite(out)
