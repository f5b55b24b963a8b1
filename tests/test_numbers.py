"""The numeric regression: the headline numbers of a fresh smoke execution against the committed ones.

nbval checks the text of the machine-independent cells; this checks the numbers that come out of
training, each within the tolerance its chapter declared (``calad.record``). It reuses the chapters
that nbval just executed: ``make test`` runs nbval with ``CALAD_RECORDS`` set, then this file with
``CALAD_FRESH_RECORDS`` naming the same folder. Without that variable the comparison is skipped;
the unit tests of the mechanism below always run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from calad_lib import records
from calad_lib.paths import notebooks_dir

FRESH = os.environ.get("CALAD_FRESH_RECORDS")
NOTEBOOKS = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.skipif(not FRESH, reason="needs the records of a fresh execution (CALAD_FRESH_RECORDS; make test)")
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_fresh_numbers_match_the_committed_ones(nb):
    committed = records.from_notebook(nb)
    fresh_file = Path(FRESH) / f"{nb.stem}.json"
    if not committed and not fresh_file.exists():
        pytest.skip(f"{nb.stem} records no numbers")
    assert fresh_file.exists(), f"{nb.stem}: the fresh execution left no records in {FRESH} (did nbval run it?)"
    bad = records.compare(committed, records.from_folder(fresh_file))
    assert not bad, f"{nb.stem}: {len(bad)} number(s) out of tolerance\n" + records.format_table(bad)


# ---------------------------------------------------------------- the mechanism
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_records_are_unique_and_outside_checked_cells(nb):
    cells = json.loads(nb.read_text())["cells"]
    names = []
    for cell in cells:
        outs = [o for o in cell.get("outputs", []) if records.MIME in o.get("data", {})]
        if outs:
            assert "NBVAL_CHECK_OUTPUT" not in "".join(cell["source"]), (
                f"{nb.stem}: a checked cell records numbers; nbval would compare them exactly")
        names += [r["name"] for o in outs for r in o["data"][records.MIME]["records"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    assert not dup, f"{nb.stem}: recorded twice: {', '.join(dup)}"


def test_tolerance_decides_and_reports_a_readable_table():
    then = {"a/auroc": records.Record("a/auroc", 0.80, rtol=0.0, atol=0.01),
            "b/ece": records.Record("b/ece", 0.10, rtol=0.1, atol=0.0),
            "gone": records.Record("gone", 1.0), "nan": records.Record("nan", float("nan"))}
    now = {"a/auroc": records.Record("a/auroc", 0.809), "b/ece": records.Record("b/ece", 0.1105),
           "new": records.Record("new", 2.0), "nan": records.Record("nan", float("nan"))}
    bad = records.compare(then, now)
    assert [r["name"] for r in bad] == ["b/ece", "gone", "new"]   # 0.809 is within 0.01; 0.1105 is not within 0.01
    text = records.format_table(bad)
    assert text.splitlines()[0].split() == ["name", "committed", "now", "tolerance", "difference"]
    assert "±0.01" in text and "missing now" in text and "not in the committed notebook" in text


def test_record_flattens_frames_looks_up_tolerances_and_appends_to_the_folder(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setenv("CALAD_RECORDS", str(tmp_path))
    records.set_chapter("99_test")
    try:
        records.record("exact/count", 3)
        records.record("table", pd.DataFrame({"auroc": [0.5, 0.7]}, index=["svdd", "hsc"]), atol=0.002)
        with pytest.raises(TypeError, match="not a number"):
            records.record("verdict", "holds")
    finally:
        records.set_chapter(None)
    got = records.from_folder(tmp_path / "99_test.json")
    assert set(got) == {"exact/count", "table/auroc/svdd", "table/auroc/hsc"}
    assert got["table/auroc/hsc"].value == 0.7 and got["table/auroc/hsc"].atol == 0.002
    rtol, atol = records.tolerance("99_test", "exact/count")
    assert (got["exact/count"].rtol, got["exact/count"].atol) == (rtol, atol) and atol < 1e-6


def test_spreads_measure_the_largest_difference_between_runs():
    runs = {"native": {"x": records.Record("x", 0.70, atol=0.01)}, "default": {"x": records.Record("x", 0.704)},
            "threads1": {"x": records.Record("x", 0.699), "y": records.Record("y", 1.0)}}
    s = records.spreads(runs)
    assert s["x"]["spread"] == pytest.approx(0.005) and s["y"]["spread"] == 0.0
    assert set(s["x"]["values"]) == {"native", "default", "threads1"}


def test_a_nan_record_is_strict_json_and_reads_back_as_nan(tmp_path, monkeypatch):
    import math

    monkeypatch.setenv("CALAD_RECORDS", str(tmp_path))
    records.set_chapter("99_test")
    try:
        records.record("undefined/kappa", float("nan"))
    finally:
        records.set_chapter(None)
    text = (tmp_path / "99_test.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert math.isnan(records.from_folder(tmp_path / "99_test.json")["undefined/kappa"].value)


def test_proposed_tolerances_lie_above_the_measured_spread_of_each_group():
    measured = {"05_detection": {"table_4_1/svdd/platt/auroc": {"spread": 0.0041},
                                 "table_4_1/hsc/beta/auroc": {"spread": 0.0012},
                                 "claims/c1/p": {"spread": 0.0}, "exact/n": {"spread": 0.0}}}
    rules = records.propose_tolerances(measured)
    by = {r["pattern"]: r for r in rules}
    assert rules[0]["pattern"] == "*/exact/*" and rules[-1]["pattern"] == "*"
    assert by["05_detection/table_4_1/*/auroc"]["atol"] == 0.013          # 3 x 0.0041, rounded up
    assert by["05_detection/claims/*/p"]["atol"] == 1e-6                   # a number that did not move here


def test_a_spread_seen_by_an_earlier_measurement_is_kept():
    measured = {"02_calibration": {"svdd/beta/ece": {"spread": 0.0001}, "svdd/head/ece": {"spread": 0.0},
                                   "lgs/beta/ece": {"spread": 0.002}}}
    previous = [{"pattern": "02_calibration/svdd/*/ece", "atol": 0.0009, "rtol": 1e-3, "spread": 0.0003},
                {"pattern": "02_calibration/lgs/*/ece", "atol": 0.0006, "rtol": 1e-3, "spread": 0.0002},
                {"pattern": "02_calibration/gone/*/ece", "atol": 0.1, "rtol": 1e-3, "spread": 0.03}]
    by = {r["pattern"]: r for r in records.propose_tolerances(measured, previous=previous)}
    assert by["02_calibration/svdd/*/ece"]["spread"] == 0.0003 and by["02_calibration/svdd/*/ece"]["atol"] == 0.0009
    assert by["02_calibration/lgs/*/ece"]["spread"] == 0.002 and by["02_calibration/lgs/*/ece"]["atol"] == 0.006
    assert "02_calibration/gone/*/ece" not in by                           # no rule for a record that is gone


def test_the_performance_page_measures_spreads_against_the_tolerances_in_force(tmp_path):
    from calad_lib.tooling import perf
    rtol, atol = records.tolerance("02_calibration", "svdd/beta/ece")
    measured = {"runs": ["committed", "kernel-default"], "chapters": {"02_calibration": {
        "svdd/beta/ece": {"values": {"committed": 0.02, "kernel-default": 0.0196}, "spread": 0.0004,
                          "rtol": 0.0, "atol": 1e-9, "allowed": 1e-9}}}}     # measured under a stale tolerance
    path = tmp_path / "portability.json"
    path.write_text(json.dumps(measured))
    chapters, rules = perf.portability(path)
    assert chapters.loc["02_calibration", "largest spread / tolerance"] == pytest.approx(0.0004 / (atol + rtol * 0.02))
    assert chapters.loc["02_calibration", "records that moved"] == 1
    assert rules.loc[next(p for p in rules.index if p.endswith("/ece") and "svdd" in p), "largest spread"] == 0.0004
