"""Render the HTML book offline from executed notebooks.

:func:`render` stages a MyST project (``myst.yml``, ``references.bib``, the plain MyST pages of
``notebooks/`` and the executed ``.ipynb`` files), drops the table-of-contents entries whose
files do not exist yet, and runs ``myst build --html``. MyST's default theme downloads itself;
``myst.yml`` instead names the local site template ``book/theme`` whose ``render.mjs`` turns
MyST's site JSON into static pages (KaTeX math, notebook outputs, figures as files), so the
build needs no network (``tests/site_check.py`` checks the result).

Layout of ``out_dir``::

    out_dir/project/            the staged MyST project (and MyST's _build/site JSON)
    out_dir/html/               the book: index.html, one page per chapter, build/ (figures), _static/
    out_dir/myst.log            MyST's full log of the last build
    out_dir/render-status.json  the renderer's report: pages, assets, warnings or the error
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from ..paths import figures_dir, relative, repo_root
from ..provenance import git_commit, run_date

__all__ = ["BookError", "render", "prune_toc", "toc_files"]

_MARKER = ".calad-book"
_CLOSED_PORT = "http://127.0.0.1:9"   # discard port: any attempted download fails at once
_TIMEOUT_S = 600      # the whole build; a book of ten chapters takes seconds
_EXIT_GRACE_S = 15    # how long MyST may linger once the renderer has written its status


class BookError(RuntimeError):
    """The book cannot be built; the message says why and what to do."""


# ---------------------------------------------------------------- table of contents
def toc_files(toc: list[dict]) -> list[str]:
    """Every ``file`` named in a MyST table of contents, in order."""
    files: list[str] = []
    for entry in toc or []:
        if "file" in entry:
            files.append(entry["file"])
        files.extend(toc_files(entry.get("children", [])))
    return files


def prune_toc(toc: list[dict], exists: Callable[[str], bool]) -> list[dict]:
    """``toc`` without the entries whose file fails ``exists(file)``; parts left empty are dropped."""
    kept = []
    for entry in toc or []:
        entry = dict(entry)
        children = prune_toc(entry.get("children", []), exists) if "children" in entry else None
        if "file" in entry and not exists(entry["file"]):
            continue
        if children is not None:
            entry["children"] = children
            if not children and "file" not in entry:
                continue
        kept.append(entry)
    return kept


# ---------------------------------------------------------------- tools
def _myst_command() -> list[str]:
    local = Path(sys.executable).parent / "myst"
    found = str(local) if local.exists() else shutil.which("myst")
    if not found:
        raise BookError("myst (the mystmd package) is not installed; run `make setup`")
    return [found]


def _check_node(theme: Path) -> None:
    node = shutil.which("node")
    if not node:
        raise BookError("Node.js is not installed (the book needs node >= 20); run `make setup`")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if not match or int(match.group(1)) < 20:
        raise BookError(f"the book needs Node.js >= 20, found {version or 'an unknown version'}; install a newer node")
    for package in ("myst-to-html", "katex", "highlight.js", "hast-util-to-html", "markdown-it"):
        if not (theme / "node_modules" / package).is_dir():
            raise BookError(f"the book theme's Node packages are missing ({relative(theme)}/node_modules); run `make setup`")


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / _MARKER).exists():
        raise BookError(f"{relative(out_dir)} exists and is not a calad book folder; choose a new or empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text("calad book build folder: project/ and html/ are rebuilt on every render\n")
    for sub in ("project", "html"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)


# ---------------------------------------------------------------- staging
def _chapter_number(name: str) -> int | None:
    match = re.match(r"(\d+)[_-]", name)
    return int(match.group(1)) if match else None


def _without_replaced_parameters(cells: list[dict]) -> list[dict]:
    """Drop the notebook's own ``parameters`` cell when papermill injected the values that ran after it:
    the reader sees the values of this run once, in the injected cell, not the smoke defaults beside them."""
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in cells]
    if not any("injected-parameters" in t for t in tags):
        return cells
    return [c for c, t in zip(cells, tags) if "parameters" not in t or "injected-parameters" in t]


def _records_only(cell: dict) -> bool:
    """A code cell that only records numbers for the regression test (``calad.record(...)`` calls)."""
    if cell.get("cell_type") != "code":
        return False
    source = "".join(cell.get("source", []))
    statements = [ln for ln in source.splitlines() if ln.strip() and not ln.startswith((" ", "\t", ")", "]", "}"))]
    return bool(statements) and all(ln.startswith("calad.record(") for ln in statements)


def _stage_notebook(source: Path, target: Path) -> None:
    """Copy an executed notebook; number its figures, tables and equations by chapter (3.1, 3.2, ...)."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    nb["cells"] = _without_replaced_parameters(nb.get("cells", []))
    for cell in nb["cells"]:   # plumbing is there to unfold, not to read first
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if ({"parameters", "injected-parameters"} & set(tags) or _records_only(cell)) and "hide-input" not in tags:
            tags.append("hide-input")
    number = _chapter_number(source.name)
    meta = nb.setdefault("metadata", {})
    if number and "numbering" not in meta:
        meta["numbering"] = {"enumerator": f"{number}.%s"}
    target.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")


def _stage(executed_dir: Path, project: Path, theme: Path) -> list[str]:
    root = repo_root()
    config_file = root / "myst.yml"
    if not config_file.exists():
        raise BookError(f"{relative(config_file)} is missing; the book's table of contents lives there")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    proj = config.get("project", {})

    def source_of(file: str) -> Path | None:
        name = Path(file).name
        if name.endswith(".ipynb"):
            candidate = executed_dir / name
            return candidate if candidate.is_file() else None
        for candidate in (executed_dir / name, root / file):
            if candidate.is_file():
                return candidate
        return None

    toc = prune_toc(proj.get("toc", []), lambda f: source_of(f) is not None)
    files = toc_files(toc)
    if not any(f.endswith(".ipynb") for f in files):
        raise BookError(f"no chapter to render: none of myst.yml's notebooks is in {relative(executed_dir)}; "
                        "run `calad run all` first")
    project.mkdir(parents=True)
    if "file" not in toc[0]:   # MyST needs a page first: a title page when the introduction is absent
        title = proj.get("title", "calad")
        text = proj.get("description", "")
        (project / "index.md").write_text(f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\n"
                                          f"short_title: About the book\n---\n\n{text}\n", encoding="utf-8")
        toc.insert(0, {"file": "index.md"})
    for file in files:
        target = project / file
        target.parent.mkdir(parents=True, exist_ok=True)
        source = source_of(file)
        if file.endswith(".ipynb"):
            _stage_notebook(source, target)
        else:
            shutil.copy2(source, target)
    for bib in proj.get("bibliography", []) or []:
        if (root / bib).is_file():
            (project / bib).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / bib, project / bib)
    if figures_dir().is_dir():   # pages may show saved figures through ../figures/...
        (project / "figures").symlink_to(figures_dir(), target_is_directory=True)

    staged = copy.deepcopy(config)
    staged["project"]["toc"] = toc
    staged.setdefault("site", {})["template"] = str(theme)
    (project / "myst.yml").write_text(yaml.safe_dump(staged, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return files


# ---------------------------------------------------------------- build
def _run_myst(project: Path, html_dir: Path, out_dir: Path, env_extra: dict[str, str], quiet: bool) -> dict:
    """Run ``myst build --html`` in ``project``; return the renderer's status (pages, assets, warnings)."""
    log_file, status_file = out_dir / "myst.log", out_dir / "render-status.json"
    status_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in {"BASE_URL", "READTHEDOCS_CANONICAL_URL"}}
    env.update({
        "API_URL": _CLOSED_PORT,                      # MyST's template and DOI service
        "npm_config_registry": _CLOSED_PORT + "/",    # MyST's version check
        "CALAD_BOOK_HTML": str(html_dir),
        "CALAD_BOOK_STATUS": str(status_file),
        **env_extra,
    })
    start = time.monotonic()
    rendered_at = None
    with open(log_file, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(_myst_command() + ["build", "--html"], cwd=project, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if rendered_at is None and status_file.exists():
                    rendered_at = now
                if rendered_at is not None and now - rendered_at > _EXIT_GRACE_S:
                    break   # rendered, but MyST lingers (it does when a render command fails)
                if now - start > _TIMEOUT_S:
                    raise BookError(f"myst build did not finish in {_TIMEOUT_S} s; see {relative(log_file)}")
                time.sleep(0.05)
        finally:
            try:   # MyST's content server lives in its process group: leave nothing running
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    output = log_file.read_text(encoding="utf-8", errors="replace")
    lines = [ln.strip() for ln in output.splitlines()]
    myst_problems = [ln for ln in lines if ln.startswith(("⛔", "⚠")) and "extra key ignored" not in ln]
    status = json.loads(status_file.read_text(encoding="utf-8")) if status_file.exists() else None
    if status is None:
        before_versions = output.split("Myst CLI Versions")[0].splitlines()
        last = myst_problems[-1] if myst_problems else next(
            (ln.strip() for ln in reversed(before_versions) if ln.strip()), "no output")
        raise BookError(f"myst build failed ({last}); full log in {relative(log_file)}")
    if not status.get("ok"):
        raise BookError(f"the book renderer failed ({status.get('error')}); full log in {relative(log_file)}")
    if not quiet:
        for line in myst_problems + [f"warning: {w}" for w in status.get("warnings", [])]:
            print(f"[book] {line}", file=sys.stderr)
    return status


def render(executed_dir: Path, out_dir: Path, *, preset: str, quiet: bool = False) -> Path:
    """Build the HTML book from the executed notebooks in ``executed_dir``; return ``out_dir/html/index.html``.

    Table-of-contents entries of ``myst.yml`` whose files are absent are left out. Nothing is
    executed and nothing is downloaded; the build takes seconds.
    """
    executed_dir, out_dir = Path(executed_dir).resolve(), Path(out_dir).resolve()
    theme = repo_root() / "book" / "theme"
    if not executed_dir.is_dir():
        raise BookError(f"{relative(executed_dir)} does not exist; run `calad run all --preset {preset}` first")
    if not (theme / "template.yml").is_file():
        raise BookError(f"the book theme is missing ({relative(theme)}/template.yml)")
    _myst_command()
    _check_node(theme)
    _prepare_out_dir(out_dir)
    project, html_dir = out_dir / "project", out_dir / "html"
    _stage(executed_dir, project, theme)
    _run_myst(project, html_dir, out_dir,
              {"CALAD_BOOK_PRESET": preset, "CALAD_BOOK_COMMIT": git_commit(), "CALAD_BOOK_DATE": run_date()},
              quiet)
    index = html_dir / "index.html"
    if not index.is_file():
        raise BookError(f"myst build wrote no {relative(index)}; full log in {relative(out_dir / 'myst.log')}")
    return index
