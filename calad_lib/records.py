"""A chapter's headline numbers, recorded as it runs and regression-tested within tolerances.

nbval compares the *text* of checked cells exactly, which only works for what every machine
computes alike. Numbers that come out of training differ between CPUs in the 3rd-4th
significant digit, so a chapter records them instead::

    calad.record("svdd/auroc", auc)                          # tolerance from params/tolerances.yaml
    calad.record("platt", {"a": a, "c": c}, atol=0.05)        # several numbers, "platt/a", "platt/c"

Each call leaves one output of type :data:`MIME` in the executed notebook (the book does not
show it) and, when ``$CALAD_RECORDS`` names a folder, adds the numbers to
``<folder>/<chapter>.json``. ``make test`` executes every chapter with that variable set and
then compares the fresh numbers with the committed notebook's, each within its declared
tolerance (:func:`compare`); ``make test-portable`` does the same under other CPU kernels and
thread counts, and :func:`spreads` measures how far they move.
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from .paths import params_dir
from .runs.store import atomic_write_text

__all__ = ["MIME", "Record", "record", "finite", "tolerance", "from_notebook", "from_folder", "compare", "spreads",
           "format_table", "group_pattern", "propose_tolerances"]

#: the MIME type of a record output in an executed notebook
MIME = "application/vnd.calad.record+json"

_chapter: str | None = None


def set_chapter(chapter: str | None) -> None:
    """The chapter that later :func:`record` calls belong to (set by ``calad.setup``)."""
    global _chapter
    _chapter = chapter


@dataclass(frozen=True)
class Record:
    """One recorded number and the tolerance it is checked with: ``|now − then| ≤ atol + rtol·|then|``."""

    name: str
    value: float
    rtol: float = 0.0
    atol: float = 0.0

    def allowed(self) -> float:
        return self.atol + self.rtol * (abs(self.value) if math.isfinite(self.value) else 0.0)

    def matches(self, value: float) -> bool:
        if math.isnan(self.value) or math.isnan(value):
            return math.isnan(self.value) and math.isnan(value)
        if math.isinf(self.value) or math.isinf(value):
            return self.value == value
        return abs(value - self.value) <= self.allowed() * (1 + 1e-9) + 1e-15


def _tolerance_rules() -> list[dict]:
    path = params_dir() / "tolerances.yaml"
    if not path.exists():
        return []
    rules = yaml.safe_load(path.read_text()) or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) and "pattern" in r for r in rules):
        raise ValueError(f"{path.name} must be a list of {{pattern, rtol, atol}} entries; fix or restore it")
    return rules


def tolerance(chapter: str, name: str) -> tuple[float, float]:
    """``(rtol, atol)`` of the first rule in ``params/tolerances.yaml`` whose pattern matches ``chapter/name``."""
    key = f"{chapter}/{name}"
    for rule in _tolerance_rules():
        if fnmatch.fnmatchcase(key, rule["pattern"]):
            return float(rule.get("rtol", 0.0)), float(rule.get("atol", 0.0))
    return 0.0, 0.0


def finite(tree: Mapping) -> dict:
    """``tree`` (nested mappings of numbers) without its NaN and infinite leaves, which are not recorded."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            v = finite(v)
            if v:
                out[k] = v
        elif math.isfinite(float(v)):
            out[k] = float(v)
    return out


def _number(name: str, value: Any) -> float:
    if hasattr(value, "item") and callable(value.item):   # numpy / torch scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"record {name!r}: {value!r} is not a number (record numbers; print verdicts)")
    return float(value)


def _flatten(name: str, value: Any) -> Iterable[tuple[str, float]]:
    if hasattr(value, "to_dict") and hasattr(value, "index"):   # pandas Series / DataFrame
        value = value.to_dict()
    if isinstance(value, Mapping):
        for key, sub in value.items():
            key = "/".join(map(str, key)) if isinstance(key, tuple) else str(key)
            yield from _flatten(f"{name}/{key}", sub)
    else:
        yield name, _number(name, value)


def record(name: str, value: Any, *, rtol: float | None = None, atol: float | None = None) -> None:
    """Record ``value`` (a number, or a mapping / Series / DataFrame of numbers) under ``name``.

    Without ``rtol``/``atol`` the tolerance comes from ``params/tolerances.yaml``. Returns nothing, so a
    cell that ends with it shows no output (the records travel as an output the book does not show).
    """
    chapter = _chapter or os.environ.get("CALAD_CHAPTER", "unknown")
    out = []
    for key, number in _flatten(name, value):
        r0, a0 = tolerance(chapter, key)
        out.append(Record(key, number, r0 if rtol is None else float(rtol), a0 if atol is None else float(atol)))
    payload = {"chapter": chapter, "records": [_as_json(r) for r in out]}
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:   # plain Python without IPython: nothing to display into
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({MIME: payload}, raw=True)
    folder = os.environ.get("CALAD_RECORDS")
    if folder:
        _append(Path(folder) / f"{chapter}.json", out)


def _as_json(r: Record) -> dict:
    """A record as strict JSON: NaN and infinities (which JSON lacks) become strings."""
    d = dict(r.__dict__)
    if not math.isfinite(d["value"]):
        d["value"] = str(d["value"])
    return d


def _from_json(d: dict) -> Record:
    return Record(d["name"], float(d["value"]), float(d.get("rtol", 0.0)), float(d.get("atol", 0.0)))


def _append(path: Path, records: list[Record]) -> None:

    data = json.loads(path.read_text()) if path.exists() else {}
    data.update({r.name: _as_json(r) for r in records})
    atomic_write_text(path, json.dumps(data, indent=1))


def from_notebook(path: os.PathLike | str) -> dict[str, Record]:
    """Every record stored in the outputs of the notebook at ``path``, by name (a later one wins)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    found: dict[str, Record] = {}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            payload = out.get("data", {}).get(MIME)
            for r in (payload or {}).get("records", []):
                found[r["name"]] = _from_json(r)
    return found


def from_folder(path: os.PathLike | str) -> dict[str, Record]:
    """The records that ``$CALAD_RECORDS`` collected for one chapter (``<folder>/<chapter>.json``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {name: _from_json(r) for name, r in data.items()}


def compare(committed: Mapping[str, Record], fresh: Mapping[str, Record]) -> list[dict]:
    """The differences that break the regression: one row per record out of tolerance, missing or new."""
    rows = []
    for name in sorted(set(committed) | set(fresh)):
        then, now = committed.get(name), fresh.get(name)
        if then is None or now is None:
            rows.append({"name": name, "committed": then.value if then else None, "now": now.value if now else None,
                         "tolerance": "missing now" if now is None else "not in the committed notebook"})
        elif not then.matches(now.value):
            rows.append({"name": name, "committed": then.value, "now": now.value,
                         "tolerance": f"±{then.allowed():.3g}", "difference": now.value - then.value})
    return rows


def format_table(rows: list[dict]) -> str:
    """``rows`` of :func:`compare` as an aligned text table: name, committed, now, tolerance, difference."""
    def fmt(v: Any) -> str:
        return "—" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    head = ["name", "committed", "now", "tolerance", "difference"]
    body = [[fmt(r.get(k)) for k in head] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def spreads(runs: Mapping[str, Mapping[str, Record]]) -> dict[str, dict]:
    """For every record, its values across ``runs`` (label -> records) and their spread (max − min).

    Used to choose tolerances: a tolerance must exceed the spread measured between CPU kernels
    and thread counts (``make test-portable``).
    """
    names = sorted({n for recs in runs.values() for n in recs})
    out = {}
    for name in names:
        values = {label: recs[name].value for label, recs in runs.items() if name in recs}
        finite = [v for v in values.values() if math.isfinite(v)]
        some = next(recs[name] for recs in runs.values() if name in recs)
        out[name] = {"values": values, "spread": (max(finite) - min(finite)) if finite else 0.0,
                     "rtol": some.rtol, "atol": some.atol,
                     "allowed": Record(name, max(finite, key=abs) if finite else 0.0, some.rtol, some.atol).allowed()}
    return out


def group_pattern(chapter: str, name: str) -> str:
    """The tolerance group of a record: ``<chapter>/<first part>/*/<last part>`` (the kind of number
    across models and methods), or the name itself when it has at most two parts."""
    parts = name.split("/")
    if parts[0] == "exact":
        return "*/exact/*"
    return f"{chapter}/{parts[0]}/*/{parts[-1]}" if len(parts) > 2 else f"{chapter}/{name}"


def _ceil2(x: float) -> float:
    """``x`` rounded up to two significant digits."""
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x)) - 1
    return float(f"{math.ceil(x / 10 ** e - 1e-9) * 10 ** e:.2g}")


def propose_tolerances(measured: Mapping[str, Mapping[str, dict]], *, factor: float = 3.0,
                       rtol: float = 1e-3, floor: float = 1e-6,
                       previous: Sequence[Mapping] = ()) -> list[dict]:
    """Tolerance rules from measured spreads (``{chapter: spreads(...)}``): one rule per group
    (:func:`group_pattern`), ``atol`` = ``factor`` × the group's largest spread rounded up (at least
    ``floor``), plus a small ``rtol`` for numbers that did not move here but may on another CPU; a
    last catch-all rule for numbers recorded after the measurement.

    ``previous`` rules (an earlier proposal) keep their ``spread`` as a floor: a spread seen once on
    some run is evidence, and a later measurement that happens to move less does not shrink it."""
    seen = {r["pattern"]: float(r["spread"]) for r in previous if "spread" in r}
    groups: dict[str, float] = {}
    for chapter, recs in measured.items():
        for name, r in recs.items():
            g = group_pattern(chapter, name)
            groups[g] = max(groups.get(g, seen.get(g, 0.0)), float(r["spread"]))
    rules = [{"pattern": "*/exact/*", "atol": 1e-9, "rtol": 1e-9}]
    for g in sorted(groups):
        if g == "*/exact/*":
            continue
        rules.append({"pattern": g, "atol": max(_ceil2(factor * groups[g]), floor), "rtol": rtol,
                      "spread": _ceil2(groups[g])})
    rules.append({"pattern": "*", "atol": 0.02, "rtol": 0.05})   # a number recorded since the measurement
    return rules
