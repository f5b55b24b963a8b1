"""The one executor of every grid (detection, localization, EAP, uncertainty): local or Dask, with a bar.

:func:`run_all` runs ``work(config)`` for every configuration whose result is not in the store yet
and writes each result as soon as it is computed (:meth:`ResultStore.write`, atomic), so a grid
killed at any moment is finished by running it again. Before any work it checks that the store
can be written and that the engine's settings make sense. Two processes filling one store split
the work through claim files: a configuration another live process holds is left to it and
waited for, and taken over if that process dies.

Each row records the seconds its run spent in each phase of :mod:`calad_lib.profile` (``phase_training``, ...).

**Engines.** ``"local"`` runs the configurations one after another in this process. ``"processes"``
runs them on ``workers`` single-threaded worker processes of this machine (small networks keep two cores
busier as two processes than as two threads of one); ``"auto"`` picks between the two by what
:func:`calad_lib.runs.parallel.choice` measured on this machine, and says which on the terminal. ``"dask"``
(``dask.distributed``) submits one task per configuration to a ``LocalCluster`` of ``workers``
single-threaded processes, or to a running scheduler (``scheduler="tcp://host:8786"``, started
by ``dask-jobqueue`` on SLURM/PBS/SGE, ``dask-ssh`` or by hand). Workers that advertise a ``GPU``
resource (``dask worker ... --resources GPU=1``) get at most one task each at a time. Workers
write their own result files to the shared results folder, so a client that dies loses nothing
that finished. Ray would do the same with a heavier runtime and no gain for a few hundred
coarse, independent tasks.
"""
from __future__ import annotations

import multiprocessing
import os
import socket
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

import pandas as pd
import torch

from .. import profile
from ..device import get_device
from ..paths import relative
from ..progress import bar as progress_bar
from ..progress import terminal_stream
from . import parallel
from .store import ResultStore, _jsonable, config_key

__all__ = ["run_all", "RunSummary", "ExecutorError", "ENGINES", "check_engine"]

ENGINES = ("local", "processes", "dask", "auto")


class ExecutorError(ValueError):
    """The engine's settings cannot work (raised before any computation)."""


@dataclass
class RunSummary:
    """What :func:`run_all` did: the store, the configurations, how many ran here and how many were done."""

    store: ResultStore
    configs: list[dict]
    ran: int = 0
    skipped: int = 0
    elsewhere: int = 0
    seconds: float = 0.0
    engine: str = "local"
    workers: int = 1
    keys_ran: list[str] = field(default_factory=list)
    tidy: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    def frame(self) -> pd.DataFrame:
        """Every row of every configuration, with its ``run_key`` (configurations in the given order),
        passed through the grid's ``tidy`` (labels, derived columns)."""
        rows = []
        for c in self.configs:
            rows.extend({**r, "run_key": self.store.path(c).stem} for r in self.store.read(c))
        df = pd.DataFrame.from_records(rows)
        return self.tidy(df) if self.tidy is not None and not df.empty else df

    def __repr__(self) -> str:
        return (f"RunSummary({len(self.configs)} runs: {self.ran} run here, {self.skipped} already done, "
                f"{self.elsewhere} by another process; results in {relative(self.store.root)})")


def check_engine(engine: str, workers: int | None = None, scheduler: str | None = None, *,
                 timeout: float = 5.0) -> None:
    """One line within seconds when the engine cannot work: unknown, no workers, no scheduler listening."""
    if engine not in ENGINES:
        raise ExecutorError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ExecutorError(f"workers = {workers!r}: a pool of processes or a Dask cluster needs at least one worker")
    if not scheduler:
        return
    url = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
    if not url.hostname or not url.port:
        raise ExecutorError(f"scheduler address {scheduler!r} must look like tcp://host:port")
    try:
        socket.create_connection((url.hostname, url.port), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(f"no Dask scheduler at {scheduler} ({exc.strerror or exc}); start one "
                            "(dask scheduler) or drop the scheduler to run locally") from None


class _threads:
    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.saved = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(int(self.n))

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


def _execute(work: Callable, config: dict, store: ResultStore, preset: str | None,
             threads: int | None) -> tuple[str, dict]:
    """Run one configuration unless it is done or another process holds it: ``"ran"``, ``"done"`` or
    ``"elsewhere"``, and the seconds the run spent in each phase (empty unless it ran)."""
    if store.done(config):
        return "done", {}
    if not store.claim(config):
        return "elsewhere", {}
    try:
        if store.done(config):        # finished by another process between the two checks
            return "done", {}
        with _threads(threads), profile.collect() as spent:
            result = work(config)
        rows, companions = result if isinstance(result, tuple) else (result, None)
        rows = [{**r, **{f"phase_{k}": round(v, 3) for k, v in spent.items()}} for r in rows]
        store.write(config, rows, preset=preset, companions=companions)
        return "ran", spent
    finally:
        store.release(config)


def _init_worker() -> None:
    """A worker process: one torch thread, and its output kept out of the notebook that started it."""
    torch.set_num_threads(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _in_worker(work: Callable, config: dict, store: ResultStore, preset: str | None) -> tuple[str, dict, list]:
    """:func:`_execute` in a worker process; its warnings travel back with the result."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, spent = _execute(work, config, store, preset, None)
    return status, spent, [(str(w.message), w.category) for w in caught]


def _say(line: str) -> None:
    stream = terminal_stream()
    if stream is not None:
        print(f"[calad] {line}", file=stream, flush=True)


def _dask_client(workers: int | None, scheduler: str | None):
    from dask.distributed import Client, LocalCluster   # optional: only the Dask engine needs it

    if scheduler:
        return Client(scheduler, timeout="10s"), None
    cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def _auto(todo: int, workers: int | None, threads: int | None) -> tuple[str, int]:
    """The engine ``"auto"`` stands for: processes where they were measured faster on this machine."""
    if todo < 2 or threads not in (None, 1) or get_device().type != "cpu":
        return "local", 1
    pick = parallel.choice(workers)
    if pick["engine"] == "processes":
        _say(f"{pick['workers']} single-threaded processes ({pick['speedup']:.2f}x one process on "
             f"{pick['workers']} threads, measured on this machine)")
        return "processes", pick["workers"]
    _say("one process (more processes were not faster on this machine)")
    return "local", 1


def run_all(configs: Iterable[Mapping[str, Any]], work: Callable[[dict], Any], *, store: ResultStore,
            preset: str | None = None, engine: str = "local", workers: int | None = None,
            scheduler: str | None = None, threads: int | None = None, progress: bool = True, desc: str = "runs",
            label: Callable[[dict], str] | None = None, tidy: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
            poll: float = 2.0) -> RunSummary:
    """Run ``work(config)`` for every configuration not yet in ``store``; return a :class:`RunSummary`.

    ``work`` returns the configuration's rows, or ``(rows, companions)`` with companion files
    ``{name: bytes}`` stored beside them; for the process and Dask engines it must be picklable (a module-level
    function or a ``functools.partial`` of one). ``threads``: torch CPU threads per run (default:
    leave them as they are locally, 1 on Dask workers). ``label(config)`` names a run beside the bar;
    ``tidy(frame)`` finishes the summary's :meth:`~RunSummary.frame`.
    """
    check_engine(engine, workers, scheduler)
    configs = [_jsonable(dict(c)) for c in configs]
    store.ensure_writable()                       # before any work, not after the first run
    todo = [c for c in configs if not store.done(c)]
    if engine == "auto":
        engine, workers = _auto(len(todo), workers, threads)
    summary = RunSummary(store, configs, skipped=len(configs) - len(todo), engine=engine, tidy=tidy,
                         workers=workers or 1)
    start = time.perf_counter()
    bar = progress_bar(total=len(todo), desc=desc, unit="run", disable=not progress or not todo)

    def count(c: dict, status: str) -> None:
        if status == "ran":
            summary.ran += 1
            summary.keys_ran.append(config_key(c))
        elif status == "done":
            summary.elsewhere += 1
        if status != "elsewhere":
            bar.update()

    waiting = []
    if engine == "local" or not todo:
        for c in todo:
            if label is not None:
                bar.set_postfix_str(label(c))
            status, _ = _execute(work, c, store, preset, threads)      # its phases count in this process
            (waiting.append(c) if status == "elsewhere" else count(c, status))
    elif engine == "processes":
        n = min(int(workers or os.cpu_count() or 1), len(todo))
        with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = {pool.submit(_in_worker, work, c, store, preset): c for c in todo}
            for fut in as_completed(futures):
                status, spent, caught = fut.result()
                profile.add_workers(spent)
                for message, category in caught:
                    warnings.warn(message, category, stacklevel=2)
                (waiting.append(futures[fut]) if status == "elsewhere" else count(futures[fut], status))
    else:
        from dask.distributed import as_completed as dask_completed   # optional: only the Dask engine needs it

        client, cluster = _dask_client(workers, scheduler)
        try:
            info = client.scheduler_info().get("workers", {})
            gpus = any("GPU" in (w.get("resources") or {}) for w in info.values())
            futures = {client.submit(_execute, work, c, store, preset, threads or 1, pure=False,
                                     key=f"calad-{config_key(c)}", resources={"GPU": 1} if gpus else None): c
                       for c in todo}
            for fut in dask_completed(futures):
                status, spent = fut.result()
                profile.add_workers(spent)
                (waiting.append(futures[fut]) if status == "elsewhere" else count(futures[fut], status))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    while waiting:                                 # held by another process: wait, or take over if it died
        still = []
        for c in waiting:
            status, _ = _execute(work, c, store, preset, threads)
            (still.append(c) if status == "elsewhere" else count(c, status))
        waiting = still
        if waiting:
            time.sleep(poll)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
