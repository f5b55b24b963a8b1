"""What chapter 05 shows: Tables 4.1 / 4.2 and Appendix B in the thesis' layouts, ours beside the thesis'.

All tables are in %: :func:`summary_table` (Table 4.1's layout), :func:`class_table` (Appendix B's),
their comparisons with the transcribed numbers (:func:`table_4_1`, :func:`appendix_b`,
:func:`same_classes`, :func:`compare_by_method`), the preset comparison and the recorded headline.
"""
from __future__ import annotations

import textwrap
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .. import data
from ..report import compare, styled
from .experiment import METHOD_LABELS, METHODS, ONE_VS_ALL_KINDS, THESIS_METHODS, ExperimentConfig, loss_order
from .grid import all_classes
from .thesis import METRICS, THESIS_DATASETS, thesis_class_table, thesis_summary, thesis_table

__all__ = ["summary_table", "class_table", "side_by_side", "describe_plan", "preset_table", "table_4_1",
           "same_classes", "appendix_b", "auroc_gap", "headline", "compare_by_method", "HIGHER_IS_BETTER",
           "DATASET_NAMES", "PRESET_KEYS"]

#: whether a higher value is better, per row label of Table 4.1 (the calibration errors: lower)
HIGHER_IS_BETTER = {"AUROC": True, "AUROC (perturbed)": True, "MCE": False, "ECE": False,
                    "unperturbed": True, "perturbed": True}
#: how the tables' captions name the datasets
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "mvtec": "MVTec AD", "mpdd": "MPDD", "textures": "defect textures"}


def summary_table(df: pd.DataFrame, dataset: str, methods=THESIS_METHODS) -> pd.DataFrame:
    """Table 4.1's layout: per loss the four metrics × the methods, in %, mean over classes and seeds."""
    d = df[(df["dataset"] == dataset) & df["method"].isin(methods)]
    parts = []
    for loss in loss_order(d["loss"]):
        m = d[d["loss"] == loss].groupby("method")[[c for _, c in METRICS]].mean() * 100
        m = m.reindex(list(methods)).T.set_axis([lab for lab, _ in METRICS])
        m.index = pd.MultiIndex.from_product([[loss], m.index], names=["loss", "metric"])
        parts.append(m)
    out = pd.concat(parts)
    out.columns = [METHOD_LABELS[c] for c in out.columns]
    return out


def class_table(df: pd.DataFrame, dataset: str, loss: str, methods=THESIS_METHODS) -> pd.DataFrame:
    """Appendix B's layout: per class, AUROC unperturbed and perturbed (%, mean over seeds), and the average."""
    d = df[(df["dataset"] == dataset) & (df["loss"] == loss) & df["method"].isin(methods)]
    g = d.groupby(["class_label", "method"])[["auroc", "auroc_perturbed"]].mean() * 100
    long = g.rename(columns={"auroc": "unperturbed", "auroc_perturbed": "perturbed"}).stack()
    wide = long.unstack("method").reindex(columns=list(methods))
    wide.index.names = ["class", "inputs"]
    avg = wide.groupby(level="inputs").mean()
    avg.index = pd.MultiIndex.from_product([["average"], avg.index], names=["class", "inputs"])
    out = pd.concat([wide.sort_index(level=0), avg]).reindex(["unperturbed", "perturbed"], level="inputs")
    out.columns = [METHOD_LABELS[c] for c in out.columns]
    return out


def side_by_side(ours: pd.DataFrame, thesis: pd.DataFrame) -> pd.DataFrame:
    """Ours, the thesis' and their difference (ours − thesis) for every row of ``ours``, interleaved."""
    th = thesis.reindex(index=ours.index, columns=ours.columns)
    parts = {"ours": ours, "thesis": th, "ours − thesis": ours - th}
    out = pd.concat(parts, names=["source"])
    out = out.reorder_levels([*range(1, out.index.nlevels), 0])
    order = [(*(i if isinstance(i, tuple) else (i,)), s) for i in ours.index for s in parts]
    return out.loc[order]


# --- what the chapter shows: the plan, the preset, and our tables beside the thesis' ---------------------
def describe_plan(configs: Iterable[ExperimentConfig]) -> list[str]:
    """Short lines saying what the grid holds: per dataset its classes, losses and seeds, and the total."""
    configs = list(configs)
    lines = []
    for ds in dict.fromkeys(c.dataset for c in configs):
        cs = [c for c in configs if c.dataset == ds]
        classes = list(dict.fromkeys(c.normal_class for c in cs))
        losses = loss_order({c.loss for c in cs})
        seeds = sorted({c.seed for c in cs})
        lines += [f"{ds}: {len(cs)} experiments = {len(classes)} classes x {len(losses)} losses x "
                  f"{len(seeds)} seed(s)",
                  *textwrap.wrap(f"classes {', '.join(map(str, classes))}", 88, initial_indent="  ",
                                 subsequent_indent="    "),
                  f"  losses {', '.join(losses)}; seeds {', '.join(map(str, seeds))}"]
    lines.append(f"{len(configs)} experiments in all, {len(METHODS)} models each "
                 f"({len(THESIS_METHODS)} thesis columns, base, naive β OE and Spectral)")
    return lines


#: the parameters :func:`preset_table` compares
PRESET_KEYS = ("classes", "seeds", "epochs", "milestones", "lr", "n_train", "n_calib", "n_test_normal",
               "n_test_anomalous", "n_heldout", "n_oe", "oe_source", "head_epochs", "head_lr")


def _full_sizes(dataset: str) -> dict:
    """The sizes that ``None`` stands for in a preset: all classes, the whole splits of class 0."""
    if dataset not in ONE_VS_ALL_KINDS:
        return {"classes": len(all_classes(dataset))}
    s = data.one_vs_all(dataset, normal_class=0, seed=0)
    return {"classes": len(s.classes), "n_train": len(s.train), "n_test_normal": int((s.test_y == 0).sum()),
            "n_test_anomalous": int((s.test_y == 1).sum())}


def preset_table(params: Mapping, other: Mapping, names: tuple[str, str] = ("this run", "thesis"),
                 keys: Iterable[str] = PRESET_KEYS) -> pd.DataFrame:
    """Two presets' values of ``keys`` side by side, as text; ``None`` (the whole split) reads
    ``all (n)`` with the size it stands for in ``params['dataset']`` (class 0's split for the caps)."""
    full = {}

    def text(key: str, v) -> str:
        if v is None:
            if not full:
                full.update(_full_sizes(params["dataset"]))
            n = full.get(key)
            return "all" if n is None else f"all ({n:,d})".replace(",", "\u2009")
        if isinstance(v, (list, tuple)):
            return ", ".join(map(str, v)) if v else "none"
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f"{v:,d}".replace(",", "\u2009")
        return str(v)

    keys = list(keys)
    return pd.DataFrame({names[0]: [text(k, params[k]) for k in keys], names[1]: [text(k, other[k]) for k in keys]},
                        index=pd.Index(keys, name="parameter"))


def table_4_1(df: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Our Table 4.1 (or 4.2) for ``dataset`` (%, :func:`summary_table`) and the thesis' on the same rows
    (``None`` for a dataset the thesis does not report)."""
    ours = summary_table(df, dataset)
    if dataset not in THESIS_DATASETS:
        return ours, None
    thesis = thesis_summary(dataset, ours.index.get_level_values("loss").unique())
    return ours, thesis.reindex(index=ours.index, columns=ours.columns)


def same_classes(df: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The AUROC averages over the classes of this run, ours and the thesis' (Appendix B, same classes).

    Rows (loss, inputs) with inputs ``unperturbed`` / ``perturbed``, columns the seven thesis methods, in %.
    """
    d = df[df["dataset"] == dataset]
    labels = sorted(d["class_label"].unique())
    ours, theirs = {}, {}
    for loss in loss_order(d["loss"].unique()):
        ours[loss] = class_table(df, dataset, loss).loc["average"]
        theirs[loss] = thesis_class_table(dataset, loss, classes=labels).loc["average"]
    ours, theirs = pd.concat(ours, names=["loss", "inputs"]), pd.concat(theirs, names=["loss", "inputs"])
    return ours, theirs.reindex(index=ours.index, columns=ours.columns)


def appendix_b(df: pd.DataFrame, dataset: str, loss: str, average: bool = True
               ) -> tuple[pd.DataFrame, pd.DataFrame | None, str | None]:
    """Appendix B's layout for one loss: ours (:func:`class_table`), the thesis' for the same classes and
    the number of the thesis table (``B.1`` …); the last two ``None`` where the thesis has no numbers.
    ``average=False`` leaves out the rows of the class average (:func:`same_classes` holds them)."""
    ours = class_table(df, dataset, loss)
    if not average:
        ours = ours.drop("average", level="class")
    if dataset not in THESIS_DATASETS:
        return ours, None, None
    labels = sorted(df[(df["dataset"] == dataset)]["class_label"].unique())
    theirs = thesis_class_table(dataset, loss, classes=labels).reindex(index=ours.index, columns=ours.columns)
    src = thesis_table(dataset=dataset, loss=loss)["source_table"]
    return ours, theirs, src[src.str.startswith("B")].iloc[0]


def auroc_gap(ours: pd.DataFrame, thesis: pd.DataFrame) -> pd.Series:
    """Per loss, the mean over methods of |ours − thesis| of the unperturbed AUROC (points, as the tables)."""
    diff = (ours - thesis).xs("AUROC", level="metric")
    return diff.abs().mean(axis=1).rename("mean |ours − thesis|")


def headline(df: pd.DataFrame, dataset: str, methods=THESIS_METHODS) -> pd.Series:
    """The numbers a regression test watches: per (loss, method, metric) the mean over classes and seeds
    of ``auroc``, ``auroc_perturbed``, ``ece``, ``mce`` and ``kappa`` (fractions, not %)."""
    cols = ["auroc", "auroc_perturbed", "ece", "mce", "kappa"]
    d = df[(df["dataset"] == dataset) & df["method"].isin(methods)]
    m = d.groupby(["loss", "method"])[cols].mean()
    m = m.reindex(pd.MultiIndex.from_product([loss_order(d["loss"]), [x for x in methods if x in set(d["method"])]]))
    return m.stack().rename_axis(["loss", "method", "metric"])


def compare_by_method(ours: pd.DataFrame, thesis: pd.DataFrame, *, to_columns: str, caption: str,
                      digits: int = 1, scale: float = 10.0):
    """:func:`calad_lib.report.compare` of two tables with one column per method, laid out with the methods
    as rows and the index level ``to_columns`` as columns, so that seven methods fit the book's column.

    The comparison (cells ``ours / thesis`` with Δ, tint, and the best *method* of each row of the
    thesis' layout in bold, as the thesis marks it) is computed in the thesis' layout and then
    reshaped: Table 4.1's (loss, metric) × method becomes (loss, method) × metric, Appendix B's
    (class, inputs) × method becomes (class, method) × inputs. MCE and ECE rows count lower as better
    (:data:`HIGHER_IS_BETTER`).
    """
    places = {"MCE": max(digits, 2), "ECE": max(digits, 2)}   # the thesis reports ECEs of a few hundredths of a %
    sty = compare(ours, thesis, digits={**{k: digits for k in HIGHER_IS_BETTER}, **places},
                  higher_is_better=HIGHER_IS_BETTER, scale=scale, caption=caption)
    sty._compute()
    cells = sty.data
    css = pd.DataFrame("", index=cells.index, columns=cells.columns)
    for (i, j), props in sty.ctx.items():
        css.iat[i, j] = "; ".join(f"{k}: {v}" for k, v in props)
    if cells.index.nlevels == 1:
        cells.index.name = css.index.name = to_columns
    keep = [n for n in cells.index.names if n != to_columns]
    order_cols = list(dict.fromkeys(cells.index.get_level_values(to_columns)))

    def reshape(frame: pd.DataFrame) -> pd.DataFrame:
        wide = frame.rename_axis(columns="method").stack().unstack(to_columns)
        if not keep:   # one level: the methods become the rows
            return wide.reindex(index=pd.Index(frame.columns, name="method"), columns=order_cols)
        groups = dict.fromkeys(frame.index.droplevel(to_columns))
        rows = [(*(k if isinstance(k, tuple) else (k,)), m) for k in groups for m in frame.columns]
        return wide.reindex(index=pd.MultiIndex.from_tuples(rows, names=[*keep, "method"]), columns=order_cols)

    cells2, css2 = reshape(cells), reshape(css).fillna("")
    cells2.columns.name = None
    out = cells2.style.apply(lambda _: css2.set_axis(cells2.columns, axis=1), axis=None)
    return styled(out, cells2, caption)
