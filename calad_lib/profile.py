"""Where the time goes: the library times its phases as it runs.

The phases are :data:`PHASES`: reading and generating data, training, post-hoc calibration, gradient
input perturbation, evaluation (scoring passes and metrics) and plotting. The functions that do the work
enter them (``with phase("training"): ...``); time spent in a phase entered inside another counts for the
inner one only, so the totals add up to the time spent in phases. :func:`collect` measures one block (an
experiment's rows record their phases this way), and a chapter run by ``calad run`` leaves its totals in
``$CALAD_PROFILE/<chapter>.json`` after each outermost phase and when its kernel exits, for the performance
chapter.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["PHASES", "phase", "timed", "totals", "collect", "add_workers", "dump_at_exit"]

PHASES = ("data", "training", "calibration", "perturbation", "evaluation", "plotting")

_totals: dict[str, float] = dict.fromkeys(PHASES, 0.0)
_stack: list[list] = []          # [name, start of its current uninterrupted stretch]
_workers: dict[str, float] = dict.fromkeys(PHASES, 0.0)   # phases of runs done in worker processes
_target: list = []               # [path, start] once dump_at_exit was called


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the time of the block as ``name`` (one of :data:`PHASES`), net of the phases entered inside it."""
    if name not in _totals:
        raise ValueError(f"unknown phase {name!r}; choose one of {', '.join(PHASES)}")
    now = time.perf_counter()
    if _stack:                                   # pause the enclosing phase
        outer = _stack[-1]
        _totals[outer[0]] += now - outer[1]
    _stack.append([name, now])
    try:
        yield
    finally:
        now = time.perf_counter()
        inner = _stack.pop()
        _totals[inner[0]] += now - inner[1]
        if _stack:
            _stack[-1][1] = now                  # resume the enclosing phase
        elif _target:                            # also written as it goes: a kernel that started worker
            _dump(*_target)                      # processes may be stopped before its exit hooks run


def timed(name: str):
    """Decorator: every call of the function counts as phase ``name``."""
    if name not in _totals:
        raise ValueError(f"unknown phase {name!r}; choose one of {', '.join(PHASES)}")

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with phase(name):
                return fn(*args, **kwargs)
        return inner
    return wrap


def totals() -> dict[str, float]:
    """Seconds spent in each phase by this process so far (open phases included up to now)."""
    out = dict(_totals)
    if _stack:
        out[_stack[-1][0]] += time.perf_counter() - _stack[-1][1]
    return out


@contextmanager
def collect() -> Iterator[dict[str, float]]:
    """The seconds each phase takes inside the block, filled in when the block ends."""
    before = totals()
    result: dict[str, float] = {}
    try:
        yield result
    finally:
        after = totals()
        result.update({k: after[k] - before[k] for k in PHASES})


def add_workers(spent: dict[str, float]) -> None:
    """Count the phases of a run that a worker process did for this one (summed over workers, not wall time)."""
    for k, v in spent.items():
        _workers[k] += v
    if _target:
        _dump(*_target)


def _dump(path: Path, start: float) -> None:
    data = {"phases": totals(), "wall": time.perf_counter() - start, "workers": dict(_workers)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1))
    except OSError:
        pass                                      # a profile is worth no failure at exit


def dump_at_exit(chapter: str) -> Path | None:
    """Write this process's phase totals to ``$CALAD_PROFILE/<chapter>.json`` when it exits (if the variable is set)."""
    folder = os.environ.get("CALAD_PROFILE")
    if not folder:
        return None
    path = Path(folder) / f"{chapter}.json"
    _target[:] = [path, time.perf_counter()]
    atexit.register(_dump, *_target)
    return path
