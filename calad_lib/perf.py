"""The performance page's plumbing: run the benchmark scripts, read their records and the build's timings.

Each script in ``benchmarks/`` measures calad against a baseline *in the same run* and
writes a JSON record to ``_build/benchmarks/<name>.json``; :func:`run_benchmark` runs one
in a fresh interpreter (so its thread settings and memory do not leak into the caller)
and returns that record. :func:`chapter_timings` reads the wall time of every chapter
that ``calad run``/``calad book`` executed for a preset.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from .paths import build_dir, repo_root, results_dir

__all__ = ["BenchmarkError", "run_benchmark", "benchmark_record", "chapter_timings", "recorded_gpu_timings"]

SCRIPTS = {"train": "bench_train.py", "data": "bench_data.py", "metrics": "bench_metrics.py", "eap": "bench_eap.py"}


class BenchmarkError(RuntimeError):
    """A benchmark script is missing, failed, or wrote no record."""


def benchmark_record(name: str) -> Path:
    return build_dir() / "benchmarks" / f"{name}.json"


def run_benchmark(name: str, *args: str, timeout: float = 1800) -> dict:
    """Run ``benchmarks/bench_<name>.py args…`` and return its JSON record (with the run's wall time)."""
    if name not in SCRIPTS:
        raise BenchmarkError(f"unknown benchmark {name!r}; choose one of {', '.join(SCRIPTS)}")
    script = repo_root() / "benchmarks" / SCRIPTS[name]
    if not script.exists():
        raise BenchmarkError(f"benchmark script benchmarks/{script.name} is missing; restore it from git")
    record = benchmark_record(name)
    record.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=repo_root(), capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
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


def recorded_gpu_timings() -> pd.DataFrame:
    """GPU timings recorded by earlier runs in ``results/recorded/gpu_timings.json`` (empty when none)."""
    path = results_dir() / "recorded" / "gpu_timings.json"
    if not path.exists():
        return pd.DataFrame()
    return pd.DataFrame(json.loads(path.read_text()))
