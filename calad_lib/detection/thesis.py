"""The thesis' detection tables, transcribed (Tables 4.1, 4.2 and B.1–B.16; values in %).

``calad_lib/thesis_tables/TRANSCRIPTION.md`` says how the PDF extraction was read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from .experiment import METHOD_LABELS, THESIS_METHODS, loss_order

__all__ = ["thesis_table", "thesis_summary", "thesis_class_table", "thesis_frame", "thesis_table_name",
           "THESIS_DATASETS", "METRICS", "TABLES"]

TABLES = Path(__file__).resolve().parent.parent / "thesis_tables"
#: datasets with transcribed thesis numbers (Tables 4.1, 4.2, B.1–B.16)
THESIS_DATASETS = ("fashion_mnist", "cifar10", "mvtec", "mpdd")
#: the rows of Table 4.1 per loss: (label, column of the results)
METRICS = (("AUROC", "auroc"), ("AUROC (perturbed)", "auroc_perturbed"), ("MCE", "mce"), ("ECE", "ece"))


def thesis_table_name(dataset: str) -> str:
    """The thesis table that summarises ``dataset``: 4.1 (Fashion-MNIST, CIFAR-10) or 4.2 (MVTec AD, MPDD)."""
    return "4.1" if dataset in ("fashion_mnist", "cifar10") else "4.2"


def thesis_table(source: str | None = None, *, dataset: str | None = None, loss: str | None = None) -> pd.DataFrame:
    """The transcribed thesis tables (long format, values in %): 4.1, 4.2 and B.1–B.16.

    Columns: ``source_table``, ``dataset``, ``loss``, ``class_label``, ``class_id``, ``metric``
    (``auroc``, ``auroc_perturbed``, ``mce``, ``ece``), ``method``, ``value``. See
    ``calad_lib/thesis_tables/TRANSCRIPTION.md`` for how the PDF extraction was read.
    """
    files = ["table_4_1.csv", "table_4_2.csv", "appendix_b.csv"]
    df = pd.concat([pd.read_csv(TABLES / f, dtype={"class_id": "Int64", "source_table": str}) for f in files], ignore_index=True)
    for col, want in (("source_table", source), ("dataset", dataset), ("loss", loss)):
        if want is not None:
            df = df[df[col] == want]
    if df.empty:
        raise ValueError(f"no transcribed thesis numbers for source={source!r}, dataset={dataset!r}, loss={loss!r}")
    return df.reset_index(drop=True)


def thesis_summary(dataset: str, losses: Iterable[str] | None = None) -> pd.DataFrame:
    """Table 4.1 / 4.2 of the thesis for ``dataset`` in the layout of :func:`summary_table`."""
    t = thesis_table(dataset=dataset)
    t = t[t["source_table"].isin(["4.1", "4.2"])]
    out = t.pivot_table(index=["loss", "metric"], columns="method", values="value")
    labels = dict((c, lab) for lab, c in METRICS)
    out = out.reindex(pd.MultiIndex.from_product([loss_order(t["loss"] if losses is None else losses), [c for _, c in METRICS]]))
    out.index = out.index.set_levels([labels[m] for m in out.index.levels[1]], level=1)
    out.index.names = ["loss", "metric"]
    out = out.reindex(columns=list(THESIS_METHODS))
    out.columns = [METHOD_LABELS[c] for c in out.columns]
    return out


def thesis_class_table(dataset: str, loss: str, classes: Iterable[str] | None = None) -> pd.DataFrame:
    """Appendix B of the thesis for ``dataset`` and ``loss`` in the layout of :func:`class_table`.

    With ``classes`` (thesis labels), only those classes, and ``average`` becomes their mean.
    """
    t = thesis_table(dataset=dataset, loss=loss)
    t = t[t["source_table"].str.startswith("B")]
    t = t.assign(inputs=t["metric"].map({"auroc": "unperturbed", "auroc_perturbed": "perturbed"}))
    wide = t.pivot_table(index=["class_label", "inputs"], columns="method", values="value")
    wide = wide.reindex(columns=list(THESIS_METHODS))
    if classes is not None:
        keep = list(classes)
        wide = wide[wide.index.get_level_values(0).isin(keep)]
        avg = wide.groupby(level="inputs").mean()
        avg.index = pd.MultiIndex.from_product([["average"], avg.index])
        wide = pd.concat([wide, avg])
    wide.index.names = ["class", "inputs"]
    wide = wide.reindex(["unperturbed", "perturbed"], level="inputs")
    wide.columns = [METHOD_LABELS[c] for c in wide.columns]
    return wide


def thesis_frame(dataset: str) -> pd.DataFrame:
    """Appendix B's per-class AUROCs (means over 5 seeds) as a results-like frame (fractions), for :func:`claims`."""
    t = thesis_table(dataset=dataset)
    t = t[t["source_table"].str.startswith("B") & (t["class_label"] != "average")]
    w = t.pivot_table(index=["dataset", "loss", "class_label", "method"], columns="metric", values="value") / 100
    w = w.reset_index().assign(seed=-1, delta=lambda x: x["auroc_perturbed"] - x["auroc"])
    return w
