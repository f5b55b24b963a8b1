"""Execute chapters with a preset: papermill into the build folder, never over the committed notebooks.

``run_chapter("05_detection", preset="default", overrides={"epochs": 3})`` validates the
parameters (one-line error before anything runs), executes ``notebooks/05_detection.ipynb``
with papermill into ``_build/<preset>/notebooks/05_detection.ipynb`` and records the wall
time in ``_build/<preset>/timings.json`` (read by the performance page).

``refresh_committed("01_theory")`` regenerates a committed ``.ipynb`` twin from its text
source and executes it in place with the smoke values of its ``parameters`` cell.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

from .. import config
from ..config import resolve_params
from ..paths import build_dir, notebooks_dir, relative
from ..runs import atomic_write_text, config_key

__all__ = ["ChapterFailed", "chapter_notebook", "run_chapter", "refresh_committed",
           "executed_dir", "override_dir", "fresh_stores"]


def chapter_notebook(chapter: str) -> Path:
    path = notebooks_dir() / f"{chapter}.ipynb"
    if not path.exists():
        raise config.ParameterError(f"chapter {chapter} has no notebook {relative(path)}; run `calad refresh {chapter}` "
                                    "to create it from its .md source")
    return path


def executed_dir(preset: str) -> Path:
    """Where executed chapters of ``preset`` go: ``_build/<preset>/notebooks``."""
    return build_dir() / Path(preset).stem / "notebooks"


def _record_timing(preset: str, chapter: str, seconds: float) -> None:
    path = build_dir() / Path(preset).stem / "timings.json"
    data = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    data[chapter] = {"seconds": round(seconds, 1), "date": time.strftime("%Y-%m-%d"),
                     "threads": os.cpu_count()}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


class ChapterFailed(RuntimeError):
    """A chapter raised an error while it ran; the message is that error in one line."""


def _differing(chapter: str, preset: str, params: Mapping[str, Any]) -> dict[str, Any]:
    base = resolve_params(chapter, preset)
    return {k: v for k, v in params.items() if base.get(k) != v}


def override_dir(preset: str, overrides: Mapping[str, Any]) -> Path:
    """Where a run of ``preset`` with ``overrides`` goes, apart from the preset's own run and figures."""
    return build_dir() / f"{Path(preset).stem}+{config_key(dict(overrides), 8)}"


def run_chapter(chapter: str, preset: str = "default", overrides: Mapping[str, Any] | None = None, *,
                out_dir: Path | None = None, progress: bool = True) -> Path:
    """Execute one chapter with ``preset`` (+ ``overrides``); return the executed notebook's path.

    A run whose values differ from the preset's goes to ``_build/<preset>+<key>/`` with its figures
    beside it, so it never replaces the preset's executed chapter or committed figures. An error in
    the chapter is raised as :class:`ChapterFailed` with that error in one line and the path of the
    partial notebook.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    chapter = config.resolve_chapter(chapter)
    params = resolve_params(chapter, preset, overrides)
    src = chapter_notebook(chapter)
    changed = _differing(chapter, preset, params)
    env = {"CALAD_PRESET": str(params["preset"])}
    if not changed:   # the phases of a preset's own run, for the performance chapter
        env["CALAD_PROFILE"] = str(build_dir() / Path(preset).stem / "profile")
    if changed:
        root = override_dir(preset, changed)
        out_dir = out_dir or root / "notebooks"
        env["CALAD_FIGURES"] = str(root / "figures")
        env["CALAD_OVERRIDES"] = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    out_dir = out_dir or executed_dir(preset)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / src.name
    if out.resolve() == src.resolve():
        raise config.ParameterError("refusing to overwrite a committed notebook; choose another --out folder")
    if progress:   # the kernel draws its bars on this terminal, never into the notebook
        env["CALAD_PROGRESS"] = "terminal"
    saved = {k: os.environ.get(k) for k in (*env, "CALAD_OVERRIDES", "CALAD_FIGURES", "CALAD_PROFILE")}
    os.environ.pop("CALAD_OVERRIDES", None)
    os.environ.update(env)
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(out), parameters=dict(params), kernel_name="python3",
                            cwd=str(notebooks_dir()), progress_bar=progress, log_output=False)
    except PapermillExecutionError as exc:
        what = (str(exc.evalue).strip().splitlines() or [""])[0]
        raise ChapterFailed(f"{chapter} failed in cell {exc.exec_count}: {exc.ename}: {what} "
                            f"(partial notebook: {relative(out)})") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if not changed:
        _record_timing(preset, chapter, time.perf_counter() - start)
    return out


def fresh_stores(label: str) -> dict[str, str]:
    """Empty model-cache and results folders under ``_build/refresh/<label>/`` for a clean regeneration."""
    root = build_dir() / "refresh" / label
    shutil.rmtree(root, ignore_errors=True)
    stores = {"CALAD_CACHE": root / "cache", "CALAD_RESULTS": root / "results"}
    for path in stores.values():
        path.mkdir(parents=True)
    return {k: str(v) for k, v in stores.items()}


def refresh_committed(chapter: str, *, timeout: int = 1800) -> Path:
    """Rebuild ``notebooks/<chapter>.ipynb`` from its ``.md`` twin and execute it in place (smoke values)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    chapter = config.resolve_chapter(chapter)
    md = notebooks_dir() / f"{chapter}.md"
    if not md.exists():
        raise config.ParameterError(f"chapter {chapter} has no text source {relative(md)}")
    nb = jupytext.read(md)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    nb.metadata["jupytext"] = {**nb.metadata.get("jupytext", {}), "formats": "ipynb,md:myst"}
    os.environ["CALAD_PRESET"] = "smoke"
    saved = os.environ.get("CALAD_PROFILE")
    os.environ["CALAD_PROFILE"] = str(build_dir() / "smoke" / "profile")   # the performance page shows these
    start = time.perf_counter()
    try:
        NotebookClient(nb, kernel_name="python3", timeout=timeout,
                       resources={"metadata": {"path": str(notebooks_dir())}}).execute()
    finally:
        if saved is None:
            os.environ.pop("CALAD_PROFILE", None)
        else:
            os.environ["CALAD_PROFILE"] = saved
    _record_timing("smoke", chapter, time.perf_counter() - start)
    out = md.with_suffix(".ipynb")
    nbformat.write(nb, out)
    return out
