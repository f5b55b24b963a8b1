"""``calad``: run chapters with presets, build the book, refresh committed notebooks.

    calad run 05 --preset default -p epochs=3 -p dataset=cifar10
    calad run all --preset smoke
    calad book --preset default
    calad refresh 01_theory
    calad params 05 --preset thesis
    calad grid --preset default -p classes=[0,1] --engine dask --workers 2
    calad records spread _build/portable/kernel-default _build/portable/threads-1
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

from .. import config, records
from ..data.errors import DataError
from ..detection.grid import CHAPTER as DETECTION, plan, run_grid
from ..device import DeviceError, configure_threads, get_device
from ..paths import build_dir, notebooks_dir, relative
from ..provenance import git_commit
from ..runs import ENGINES, ExecutorError, atomic_write_text, check_engine
from . import book
from .book import BookError
from ..config import resolve_params
from .runner import ChapterFailed, executed_dir, fresh_stores, refresh_committed, run_chapter

__all__ = ["main"]


def _chapters(names: list[str]) -> list[str]:
    """Resolve chapter names; ``all`` means every chapter that has a notebook."""

    if names == ["all"] or not names:
        return [c for c in config.chapters() if (notebooks_dir() / f"{c}.ipynb").exists()]
    return [config.resolve_chapter(n) for n in names]


def _split_overrides(chapters: list[str], overrides: dict) -> dict[str, dict]:
    """Give each chapter the overrides its schema knows; a key no chapter knows is an error."""
    per = {ch: {k: v for k, v in overrides.items() if k in config.schema(ch)} for ch in chapters}
    if len(chapters) == 1:
        per[chapters[0]] = dict(overrides)  # unknown keys are reported by validation
    else:
        used = {k for d in per.values() for k in d}
        for key in overrides:
            if key not in used:
                raise config.ParameterError(f"unknown parameter {key!r}: no chapter among {', '.join(chapters)} has it")
    return per


def _overrides(items: list[str] | None) -> dict:
    return dict(config.parse_override(i) for i in (items or []))


def _cmd_run(args: argparse.Namespace) -> int:
    chapters = _chapters(args.chapters)
    per = _split_overrides(chapters, _overrides(args.param))
    for ch in chapters:  # validate everything before running anything
        resolve_params(ch, args.preset, per[ch])
    _check_machine()
    for ch in chapters:
        own = per[ch]
        start = time.perf_counter()
        print(f"[calad] {ch}: preset {args.preset} {own or ''}".rstrip(), flush=True)
        out = run_chapter(ch, args.preset, own, progress=not args.quiet)
        print(f"[calad] {ch}: done in {time.perf_counter() - start:.0f} s -> {relative(out)}", flush=True)
    return 0


def _check_machine() -> None:
    """The device and thread settings, checked in seconds, before any chapter starts."""

    get_device()
    configure_threads()


def _cmd_book(args: argparse.Namespace) -> int:
    if not args.skip_run:
        _cmd_run(argparse.Namespace(chapters=["all"], preset=args.preset, param=args.param, quiet=args.quiet))

    index = book.render(executed_dir(args.preset), build_dir() / args.preset / "book", preset=args.preset)
    print(f"[calad] book: {relative(index)}")
    return 0


def _cmd_refresh(args: argparse.Namespace) -> int:
    chapters = _chapters(args.chapters)
    if args.fresh:   # one clean commit, nothing reused: every twin names the same commit and is rebuilt
        commit = git_commit()
        if commit.endswith("+dirty") or commit == "unknown":
            raise config.ParameterError(f"--fresh needs a clean checkout (commit is {commit}); commit or stash "
                                        "the changes to sources first")
        os.environ.update(fresh_stores(commit))
        smoke = build_dir() / "smoke"     # the performance page then shows this refresh's timings only
        (smoke / "timings.json").unlink(missing_ok=True)
        shutil.rmtree(smoke / "profile", ignore_errors=True)
        print(f"[calad] refreshing {len(chapters)} chapter(s) at commit {commit} with an empty model cache and "
              f"results folder ({relative(os.environ['CALAD_CACHE'])}, {relative(os.environ['CALAD_RESULTS'])})")
    for ch in chapters:
        start = time.perf_counter()
        out = refresh_committed(ch)
        print(f"[calad] refreshed {relative(out)} in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    for ch in _chapters(args.chapters):
        params = resolve_params(ch, args.preset, _overrides(args.param))
        print(f"# {ch} ({args.preset})")
        print(yaml.safe_dump(dict(params), sort_keys=False).rstrip())
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    """Run chapter 05's grid of detection experiments from a preset, skipping finished ones."""
    params = resolve_params(DETECTION, args.preset, _overrides(args.param))
    engine = args.engine or ("dask" if args.scheduler else params["engine"])
    workers = args.workers if args.workers is not None else params["workers"]
    scheduler = args.scheduler or params["scheduler"]
    check_engine(engine, workers, scheduler)    # in seconds, before any data is read
    _check_machine()
    os.environ["CALAD_PRESET"] = str(params["preset"])
    try:
        configs = plan(params)  # every dataset, class and loss is checked before the first experiment
    except ValueError as exc:   # a class the dataset does not have, an empty grid: one line
        raise config.ParameterError(str(exc)) from None
    where = (f"scheduler {scheduler}" if scheduler else "this process" if engine == "local" else
             "measured choice" if engine == "auto" else f"{workers or os.cpu_count()} worker(s)")
    print(f"[calad] grid {DETECTION}: preset {params['preset']}, {len(configs)} experiments, engine {engine} "
          f"({where}), {configure_threads()} thread(s) per experiment", flush=True)
    run = run_grid(configs, preset=str(params["preset"]), engine=engine, workers=workers, scheduler=scheduler,
                   threads=params["threads"], progress=not args.quiet)
    print(f"[calad] grid: {run.ran} run, {run.skipped} already done, in {run.seconds:.0f} s "
          f"({run.engine}, {run.workers} worker(s)); "
          f"results in {relative(run.store.root)}/ (calad.detection.results or calad.runs.ResultStore(...).frame())",
          flush=True)
    return 0


def _ratio(s: dict) -> float:
    """A record's spread as a fraction of its tolerance (inf for a moving number with no tolerance)."""
    return s["spread"] / s["allowed"] if s["allowed"] > 0 else (float("inf") if s["spread"] > 0 else 0.0)


def _cmd_records(args: argparse.Namespace) -> int:
    """Spread of every recorded number between the committed notebooks and fresh executions."""
    folders = [Path(f) for f in args.folders]
    missing = [relative(f) for f in folders if not f.is_dir()]
    if missing:
        raise config.ParameterError(f"no records folder {', '.join(missing)}; run `make test-portable` first")
    out, worst = {}, []
    for nb in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        runs = {"committed": records.from_notebook(nb)}
        runs.update({f.name: records.from_folder(f / f"{nb.stem}.json") for f in folders
                     if (f / f"{nb.stem}.json").exists()})
        if not runs["committed"]:
            continue
        spread = records.spreads(runs)
        out[nb.stem] = spread
        name, top = max(spread.items(), key=lambda kv: _ratio(kv[1]))
        worst.append((nb.stem, len(spread), name, top["spread"], top["allowed"], _ratio(top)))
    print(f"{'chapter':20s} {'records':>7s}  {'largest spread / tolerance':>26s}  record")
    for ch, n, name, sp, allowed, ratio in worst:
        print(f"{ch:20s} {n:7d}  {sp:12.3g} / {allowed:<11.3g}  {name}")
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(
            {"runs": ["committed"] + [f.name for f in folders], "chapters": out}, indent=1))
        print(f"[calad] spreads written to {relative(args.out)}")
    if args.propose:

        target = Path(args.propose)
        previous = (yaml.safe_load(target.read_text()) or []) if target.exists() else []
        rules = records.propose_tolerances(out, previous=previous)
        head = (f"# Tolerances of the numeric regression test (calad_lib/records.py), written by\n"
                f"#   calad records spread {' '.join(args.folders)} --propose <this file>\n"
                "# after `make test-portable` (runs: committed twins, "
                f"{', '.join(f.name for f in folders)}).\n"
                "# A record <chapter>/<name> is checked with the first rule whose pattern matches it:\n"
                "#   |now - committed| <= atol + rtol * |committed|.\n"
                "# atol is 3x the largest spread measured in the rule's group (`spread`), at least 1e-6;\n"
                "# a spread written here by an earlier measurement is kept when this one saw less.\n")
        atomic_write_text(Path(args.propose), head + yaml.safe_dump(rules, sort_keys=False, width=120))
        print(f"[calad] {len(rules)} tolerance rules (3x the largest spread of each group) written to "
              f"{relative(args.propose)}")
    over = [w for w in worst if w[5] > 1]
    if over:
        print(f"calad: error: {len(over)} chapter(s) have a number that moved more than its tolerance", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calad", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, chapters: bool = True) -> None:
        if chapters:
            p.add_argument("chapters", nargs="*", default=["all"], help="chapter names or numbers, or 'all'")
        p.add_argument("--preset", default="default", help="smoke, default, thesis, or a path to a YAML file")
        p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override one parameter")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p_run = sub.add_parser("run", help="execute chapters into _build/<preset>/notebooks/")
    common(p_run)
    p_run.set_defaults(func=_cmd_run)
    p_book = sub.add_parser("book", help="execute all chapters and render the HTML book")
    common(p_book, chapters=False)
    p_book.add_argument("--skip-run", action="store_true", help="render the already executed notebooks")
    p_book.set_defaults(func=_cmd_book)
    p_ref = sub.add_parser("refresh", help="rebuild committed .ipynb twins from .md and execute them (smoke)")
    p_ref.add_argument("chapters", nargs="*", default=["all"])
    p_ref.add_argument("--fresh", action="store_true",
                       help="from a clean checkout, with an empty model cache and results folder (for a release)")
    p_ref.set_defaults(func=_cmd_refresh)
    p_par = sub.add_parser("params", help="print the validated parameters of a chapter and preset")
    common(p_par)
    p_par.set_defaults(func=_cmd_params)
    p_grid = sub.add_parser("grid", help="run chapter 05's grid of detection experiments (resumable)")
    common(p_grid, chapters=False)
    p_grid.add_argument("--engine", choices=list(ENGINES), help="auto, local, processes or dask (default: the preset's)")
    p_grid.add_argument("--workers", type=int, help="worker processes (processes, dask, auto)")
    p_grid.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    p_grid.set_defaults(func=_cmd_grid)
    p_rec = sub.add_parser("records", help="numbers recorded by the chapters: their spread across executions")
    rec_sub = p_rec.add_subparsers(dest="records_command", required=True)
    p_spread = rec_sub.add_parser("spread", help="spread of each record between the committed notebooks and "
                                  "the record folders of fresh executions (CALAD_RECORDS)")
    p_spread.add_argument("folders", nargs="+", help="record folders, e.g. _build/portable/kernel-default")
    p_spread.add_argument("--out", help="write every record's values and spread to this JSON file")
    p_spread.add_argument("--propose", metavar="YAML", help="write tolerance rules derived from the spreads")
    p_spread.set_defaults(func=_cmd_records)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    errors = (config.ParameterError, DataError, DeviceError, ChapterFailed, ExecutorError, BookError)
    try:
        return args.func(args)
    except errors as exc:
        print(f"calad: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
