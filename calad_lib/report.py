"""What a chapter shows its reader: HTML tables, comparisons with a source, claim verdicts, and
sentences decided by the numbers.

Tables are pandas ``Styler`` objects: Jupyter and the book show them as HTML, numbers formatted,
the best value of each row in bold as the thesis prints it. Their ids are derived from their
content, so the same table renders to the same HTML on every run.
"""
from __future__ import annotations

import hashlib
import html
import math
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

__all__ = ["table", "compare", "verdicts", "say", "status_of", "styled", "STATUS_COLOURS"]

#: background and text colours of a verdict's status
STATUS_COLOURS = {"holds": ("#dff0d8", "#1e5b1e"), "fails": ("#f8dcdc", "#8a1f1f"),
                  "open": ("#fcf1d6", "#6d5310"), "n/a": ("#eeeeee", "#555555")}


_made = 0   # tables made in this process: a notebook makes them in the same order on every machine


def _uuid(*parts) -> str:
    h = hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8]
    return f"c{h}"


def styled(sty: Styler, df: pd.DataFrame, caption: str | None) -> Styler:
    """``sty`` (a Styler of ``df``) as the book shows tables: the book's class, a caption, and stable ids
    (from the table's shape, labels and place in the run, never its values, so a table that shows
    the same digits renders to the same HTML on every CPU)."""
    global _made
    _made += 1
    sty = sty.set_uuid(_uuid(caption, list(map(str, df.columns)), list(map(str, df.index)), df.shape, _made))
    sty = sty.set_table_attributes('class="dataframe calad-table"')
    if caption:
        sty = sty.set_caption(caption)
    return sty


def _cell(v, spec: str) -> str:
    """One value as a reader sees it: ``spec`` for floats, thin-space thousands for integers, a dash for NaN."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{v:,d}".replace(",", "\u2009")
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "—" if math.isnan(v) else ("∞" if v > 0 else "−∞")
        return spec.format(v).replace("-", "−")
    return "—" if v is None else str(v)


def _best_mask(values: pd.DataFrame, axis: int, higher: bool) -> pd.DataFrame:
    num = values.apply(pd.to_numeric, errors="coerce")
    best = num.max(axis=axis) if higher else num.min(axis=axis)
    return num.eq(best, axis=1 - axis) if axis == 1 else num.eq(best, axis=1)


def table(df: pd.DataFrame, *, digits: int = 2, fmt: str | Mapping[str, str] | None = None,
          best: str | None = None, subset: Iterable | None = None, higher_is_better: bool = True,
          caption: str | None = None, hide_index: bool = False) -> Styler:
    """``df`` as a formatted HTML table.

    ``digits`` (or ``fmt``: one format, or one per column) formats floats; integers get thin-space
    thousands; NaN shows as a dash. ``best="row"`` (or ``"column"``) sets in bold the highest
    (``higher_is_better``) or lowest value of each row (column) among the ``subset`` columns.
    """
    df = df.copy()
    spec = fmt if isinstance(fmt, str) else f"{{:.{digits}f}}"
    sty = df.style.format(lambda v: html.escape(_cell(v, spec)))
    sty = sty.format_index(lambda v: html.escape(_cell(v, spec) if isinstance(v, (float, np.floating)) else str(v)),
                           axis=0)
    if isinstance(fmt, Mapping):   # per-column formats; the other columns keep `digits`
        for c, f in fmt.items():
            if c in df.columns:
                sty = sty.format(lambda v, f=f: html.escape(_cell(v, f)), subset=[c])
    if best:
        cols = list(subset) if subset is not None else [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        mask = _best_mask(df[cols], 1 if best == "row" else 0, higher_is_better)
        sty = sty.apply(lambda _: mask.replace({True: "font-weight: 700", False: ""}), axis=None, subset=cols)
    if hide_index:
        sty = sty.hide(axis="index")
    return styled(sty, df, caption)


def _delta_colour(d: float, scale: float) -> str:
    """A background tint whose hue gives the sign of ``d`` and whose strength its size (saturating at ``scale``)."""
    if not math.isfinite(d):
        return ""
    t = min(abs(d) / scale, 1.0)
    r, g, b = (46, 125, 50) if d > 0 else (198, 40, 40)
    return f"background-color: rgba({r}, {g}, {b}, {0.08 + 0.32 * t:.2f})"


def _signed(d: float, fmt: str) -> str:
    """``d`` with its sign, and no sign for a difference that rounds to zero."""
    text = fmt.format(abs(d))
    if float(text) == 0:
        return text
    return ("+" if d > 0 else "−") + text


def compare(ours: pd.DataFrame, ref: pd.DataFrame, *, ref_name: str = "thesis", digits: int | Mapping[str, int] = 1,
            higher_is_better: bool | Mapping[str, bool] = True, best: str = "row", scale: float = 10.0,
            caption: str | None = None) -> Styler:
    """Our values beside a source's, one cell per (row, column): ``ours / source`` and Δ = ours − source.

    The cell's tint shows Δ's sign (green where ours is better than the source, red where worse)
    and its size (full at ``scale``). In each row (``best="row"``, where rows are metrics and
    columns methods, as in the thesis) or each column (``best="column"``, where columns are metrics)
    the best of our values and the best of the source's are in bold. ``higher_is_better`` is one
    direction, or one per row (per column with ``best="column"``; the last level of a row key);
    ``digits`` likewise (small percentages such as the thesis' ECE of 0.03 % need two).
    Rows or columns missing on one side show a dash.
    """
    if best not in ("row", "column"):
        raise ValueError(f"best must be 'row' or 'column', not {best!r}")
    rows = ours.index.union(ref.index, sort=False)
    cols = list(ours.columns) + [c for c in ref.columns if c not in ours.columns]
    a = ours.reindex(index=rows, columns=cols).apply(pd.to_numeric, errors="coerce")
    b = ref.reindex(index=rows, columns=cols).apply(pd.to_numeric, errors="coerce")

    def per_key(setting, key, default):
        if isinstance(setting, Mapping):
            return setting.get(key[-1] if isinstance(key, tuple) else key, default)
        return setting

    def higher(key) -> bool:
        return bool(per_key(higher_is_better, key, True))

    def bold(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(False, index=frame.index, columns=frame.columns)
        for key in (frame.index if best == "row" else frame.columns):
            vals = frame.loc[key] if best == "row" else frame[key]
            if vals.notna().sum() > 1:
                mask = vals.eq(vals.max() if higher(key) else vals.min())
                if best == "row":
                    out.loc[key] = mask
                else:
                    out[key] = mask
        return out

    ba, bb = bold(a), bold(b)

    def num(v: float, bold: bool, fmt: str) -> str:
        if not math.isfinite(v):
            return "—"
        text = fmt.format(v).replace("-", "−")
        return f"<b>{text}</b>" if bold else text

    cells = pd.DataFrame("", index=rows, columns=cols)
    for r in rows:
        for c in cols:
            fmt = f"{{:.{int(per_key(digits, r if best == 'row' else c, 1))}f}}"
            x, y = a.at[r, c], b.at[r, c]
            d = x - y if math.isfinite(x) and math.isfinite(y) else float("nan")
            delta = f'<span class="delta">{_signed(d, fmt)}</span>' if math.isfinite(d) else ""
            cells.at[r, c] = f"{num(x, ba.at[r, c], fmt)} / {num(y, bb.at[r, c], fmt)} {delta}".strip()
    sign = pd.DataFrame("", index=rows, columns=cols)
    for r in rows:
        for c in cols:
            d = a.at[r, c] - b.at[r, c]
            sign.at[r, c] = _delta_colour(d if higher(r if best == "row" else c) else -d, scale)
    sty = cells.style.apply(lambda _: sign, axis=None)
    caption = caption or f"ours / {ref_name} (Δ = ours − {ref_name})"
    return styled(sty, cells, caption)


def status_of(verdict: str) -> str:
    """The status of a verdict sentence: ``holds``, ``fails``, ``open`` or ``n/a``."""
    v = str(verdict).lower()
    if any(w in v for w in ("n/a", "not applicable", "no data", "not run")):
        return "n/a"
    if any(w in v for w in ("too few", "inconclusive", "not significant", "undecided", "weak", "at this scale")):
        return "open"
    if any(w in v for w in ("contradict", "does not hold", "not confirmed", "fails", "no usable", "rejected")) \
            or v.startswith(("no", "false")):
        return "fails"
    if any(w in v for w in ("confirm", "holds", "supported", "yes", "true", "reproduced", "matches")):
        return "holds"
    return "open"


def verdicts(df: pd.DataFrame, *, column: str = "verdict", status: Callable[[str], str] = status_of,
             caption: str | None = None, hide_index: bool = False) -> Styler:
    """A table of claims with the ``column`` cell tinted by its status (holds / fails / open / n/a)."""
    def tint(col: pd.Series) -> list[str]:
        out = []
        for v in col:
            bg, fg = STATUS_COLOURS[status(v)]
            out.append(f"background-color: {bg}; color: {fg}; font-weight: 600")
        return out

    sty = df.style.apply(tint, subset=[column]).format(lambda v: html.escape(_cell(v, "{:.2f}")))
    sty = sty.set_properties(**{"text-align": "left", "white-space": "normal"})
    if hide_index:
        sty = sty.hide(axis="index")
    return styled(sty, df, caption)


def say(text: str) -> None:
    """Show ``text`` (Markdown, built from computed results) as prose in the notebook and the book."""
    from IPython.display import Markdown, display

    display(Markdown(text))
