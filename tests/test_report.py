"""What a chapter shows: formatted HTML tables, comparisons with a source, verdict tables."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from calad_lib import report


def _styled(html: str, prop: str) -> set[tuple[str, str]]:
    """(row, col) of the cells whose CSS rule sets ``prop``."""
    out = set()
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", html):
        if prop in body:
            out |= set(re.findall(r"_row(\d+)_col(\d+)", selectors))
    return out


def _cells(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]


def test_table_formats_numbers_marks_the_best_and_renders_the_same_twice():
    df = pd.DataFrame({"svdd": [0.7234, 0.1], "hsc": [0.8111, np.nan], "n": [1200, 3]}, index=["AUROC", "ECE"])
    sty = report.table(df, digits=2, best="row", subset=["svdd", "hsc"], caption="t")
    html = sty.to_html()
    assert _cells(html) == ["0.72", "0.81", "1\u2009200", "0.10", "—", "3"]
    assert _styled(html, "font-weight: 700") == {("0", "1"), ("1", "0")}     # best of each row among svdd/hsc
    report._made -= 1          # the same table at the same place of a run, on a CPU whose hidden digits differ
    again = report.table(df.assign(svdd=df.svdd + 1e-7), digits=2, best="row", subset=["svdd", "hsc"], caption="t").to_html()
    assert again == html
    low = report.table(df[["svdd"]].T, best="row", higher_is_better=False).to_html()
    assert _styled(low, "font-weight: 700") == {("0", "1")}


def test_compare_shows_ours_and_the_source_with_a_signed_delta_and_tint():
    ours = pd.DataFrame({"svdd": [75.9, 2.0]}, index=["AUROC", "ECE"])
    thesis = pd.DataFrame({"svdd": [72.5, 0.43], "hsc": [80.0, 1.0]}, index=["AUROC", "ECE"])
    html = report.compare(ours, thesis, higher_is_better={"ECE": False}).to_html()
    cells = _cells(html)
    assert cells[0] == "75.9 / 72.5 +3.4" and cells[2] == "2.0 / 0.4 +1.6"
    assert cells[1] == "— / 80.0"          # a column only the source has is shown, ours a dash
    tints = re.findall(r"background-color: rgba\((\d+), (\d+), (\d+)", html)
    assert ("46", "125", "50") in tints and ("198", "40", "40") in tints   # above the thesis green; worse ECE red


@pytest.mark.parametrize("text, status", [("holds (p < 0.001)", "holds"), ("CONFIRMED", "holds"),
                                          ("contradicted", "fails"), ("no usable relationship", "fails"),
                                          ("yes at this scale (too few runs)", "open"), ("n/a", "n/a")])
def test_verdict_status_from_its_words(text, status):
    assert report.status_of(text) == status


def test_verdicts_tint_the_status_column():
    df = pd.DataFrame({"claim": ["C1", "C2"], "verdict": ["holds", "contradicted"]})
    html = report.verdicts(df, hide_index=True).to_html()
    assert report.STATUS_COLOURS["holds"][0] in html and report.STATUS_COLOURS["fails"][0] in html
    assert "row_heading" not in html


def test_compare_bolds_the_best_per_column_when_columns_are_metrics():
    ours = pd.DataFrame({"auc": [0.9, 0.8], "rank": [2.0, 1.0]}, index=["EAP", "LOO"])
    paper = pd.DataFrame({"auc": [0.82, 0.50], "rank": [3.1, 7.4]}, index=["EAP", "LOO"])
    html = report.compare(ours, paper, best="column", higher_is_better={"auc": True, "rank": False}, digits=2).to_html()
    cells = _cells(html)
    assert cells == ["0.90 / 0.82 +0.08", "2.00 / 3.10 −1.10", "0.80 / 0.50 +0.30", "1.00 / 7.40 −6.40"]
    bold = re.findall(r"<b>([\d.]+)</b>", html)
    assert bold == ["0.90", "0.82", "3.10", "1.00"]          # best AUC high, best rank low, ours and the paper's
    tints = re.findall(r"background-color: rgba\((\d+), (\d+), (\d+)", html)
    assert all(t == ("46", "125", "50") for t in tints)       # every delta is better than the paper's


def test_a_partial_format_mapping_keeps_the_digits_of_the_other_columns():
    df = pd.DataFrame({"a": [0.123456], "b": [0.5]})
    assert _cells(report.table(df, digits=2, fmt={"b": "{:.0%}"}).to_html()) == ["0.12", "50%"]


def test_compare_digits_per_row():
    ours = pd.DataFrame({"svdd": [75.93, 0.4321]}, index=["AUROC", "ECE"])
    thesis = pd.DataFrame({"svdd": [72.5, 0.03]}, index=["AUROC", "ECE"])
    cells = _cells(report.compare(ours, thesis, digits={"AUROC": 1, "ECE": 2}).to_html())
    assert cells == ["75.9 / 72.5 +3.4", "0.43 / 0.03 +0.40"]
