"""The performance page's plumbing: run the benchmark scripts, read their records and the build's timings.

Each script in ``benchmarks/`` measures calad against a baseline *in the same run* and
writes a JSON record to ``_build/benchmarks/<name>.json``; :func:`run_benchmark` runs one
in a fresh interpreter (so its thread settings and memory do not leak into the caller)
and returns that record. :func:`chapter_timings` reads the wall time of every chapter
that ``calad run``/``calad book`` executed for a preset.
"""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from ..paths import build_dir, params_dir, recorded_dir, repo_root

__all__ = ["BenchmarkError", "run_benchmark", "benchmark_record", "chapter_timings", "phase_profile",
           "recorded_gpu_timings",
           "portability"]

SCRIPTS = {"train": "bench_train.py", "data": "bench_data.py", "metrics": "bench_metrics.py", "eap": "bench_eap.py"}


class BenchmarkError(RuntimeError):
    """A benchmark script is missing, failed, or wrote no record."""


def benchmark_record(name: str) -> Path:
    return build_dir() / "benchmarks" / f"{name}.json"


def run_benchmark(name: str, *args: str, timeout: float = 1800, env: dict[str, str] | None = None) -> dict:
    """Run ``benchmarks/bench_<name>.py args…`` and return its JSON record (with the run's wall time).

    The script inherits this process's environment, with ``env`` on top."""
    if name not in SCRIPTS:
        raise BenchmarkError(f"unknown benchmark {name!r}; choose one of {', '.join(SCRIPTS)}")
    script = repo_root() / "benchmarks" / SCRIPTS[name]
    if not script.exists():
        raise BenchmarkError(f"benchmark script benchmarks/{script.name} is missing; restore it from git")
    record = benchmark_record(name)
    record.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=repo_root(), capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"benchmarks/{script.name} failed ({last}); run it by hand to see the whole error")
    if not record.exists():
        raise BenchmarkError(f"benchmarks/{script.name} wrote no record {record.name}")
    out = json.loads(record.read_text())
    out["_wall_seconds"] = round(seconds, 1)
    out["_stdout"] = proc.stdout
    return out


def chapter_timings(preset: str) -> pd.DataFrame:
    """Wall time of each chapter executed for ``preset`` (empty when none was recorded)."""
    path = build_dir() / preset / "timings.json"
    if not path.exists():
        return pd.DataFrame(columns=["chapter", "seconds", "date", "threads"])
    data = json.loads(path.read_text())
    rows = [{"chapter": ch, **info} for ch, info in sorted(data.items())]
    return pd.DataFrame(rows)


def phase_profile(preset: str, *, workers: bool = False) -> pd.DataFrame:
    """Where each chapter of the last run of ``preset`` spent its time: minutes per phase of
    :mod:`calad_lib.profile` and ``other`` (the rest of the kernel's time: tables, prose, imports).
    ``workers=True``: the phases of the runs its worker processes did instead (minutes summed over workers)."""
    rows = {}
    for path in sorted((build_dir() / preset / "profile").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if workers:
            if any(data.get("workers", {}).values()):
                rows[path.stem] = {k: v / 60 for k, v in data["workers"].items()}
            continue
        phases = {k: v / 60 for k, v in data["phases"].items()}
        rows[path.stem] = {**phases, "other": max(0.0, data["wall"] / 60 - sum(phases.values()))}
    return pd.DataFrame(rows).T.rename_axis("chapter")


def recorded_gpu_timings() -> pd.DataFrame:
    """GPU timings recorded by earlier runs in ``results/recorded/gpu_timings.json`` (empty when none)."""
    path = recorded_dir() / "gpu_timings.json"
    if not path.exists():
        return pd.DataFrame()
    return pd.DataFrame(json.loads(path.read_text()))


def portability(path: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How far the recorded numbers moved between CPU kernels and thread counts, and what is allowed.

    Reads the spreads that ``make test-portable`` measured (``calad records spread --out``; the recorded
    copy is ``results/recorded/portability.json``). Returns one row per chapter (records, the runs
    compared, the largest spread as a share of its tolerance) and one row per tolerance rule of
    ``params/tolerances.yaml`` (its tolerance and the largest spread among the records it governs).
    Both are empty when nothing was measured.
    """
    path = path or recorded_dir() / "portability.json"
    if not path.exists():
        return pd.DataFrame(), pd.DataFrame()
    data = json.loads(path.read_text())
    rules = yaml.safe_load((params_dir() / "tolerances.yaml").read_text()) or []
    per_chapter, per_rule = [], {r["pattern"]: {"rule": r["pattern"], "atol": r.get("atol", 0.0),
                                                "rtol": r.get("rtol", 0.0), "records": 0, "largest spread": 0.0}
                                 for r in rules}
    for chapter, records in data["chapters"].items():
        moved = []
        for name, r in records.items():
            rule = next((x for x in rules if fnmatch.fnmatchcase(f"{chapter}/{name}", x["pattern"])), None)
            # the tolerance the file gives now (the measurement may predate it)
            allowed = r["allowed"] if rule is None else (
                rule.get("atol", 0.0) + rule.get("rtol", 0.0) * max(map(abs, r["values"].values()), default=0.0))
            moved.append(r["spread"] / allowed if allowed else (float("inf") if r["spread"] else 0.0))
            if rule is not None:
                per_rule[rule["pattern"]]["records"] += 1
                per_rule[rule["pattern"]]["largest spread"] = max(per_rule[rule["pattern"]]["largest spread"],
                                                                  r["spread"])
        per_chapter.append({"chapter": chapter, "records": len(records),
                            "records that moved": sum(r["spread"] > 0 for r in records.values()),
                            "largest spread / tolerance": max(moved, default=0.0)})
    runs = ", ".join(data.get("runs", []))
    chapters = pd.DataFrame(per_chapter).set_index("chapter")
    chapters.attrs["runs"] = runs
    return chapters, pd.DataFrame(list(per_rule.values())).set_index("rule")
