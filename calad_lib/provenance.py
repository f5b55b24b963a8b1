"""Provenance: the git commit, date and preset that produced a number, table or figure."""
from __future__ import annotations

import ast
import datetime as _dt
import functools
import hashlib
import importlib.util
import os
import subprocess
from pathlib import Path

from .paths import repo_root

__all__ = ["MIME", "git_commit", "run_date", "stamp", "announce", "code_fingerprint"]

#: the MIME type of the provenance output that ``calad.setup`` leaves in an executed chapter
MIME = "application/vnd.calad.provenance+json"


@functools.lru_cache(maxsize=1)
def git_commit(short: bool = True) -> str:
    """The checked-out commit (with ``+dirty`` when tracked files changed), or ``unknown`` outside git."""
    env_commit = os.environ.get("CALAD_COMMIT")
    if env_commit:
        return env_commit
    try:
        args = ["git", "rev-parse", "--short=10" if short else "--verify", "HEAD"]
        sha = subprocess.run(args, cwd=repo_root(), capture_output=True, text=True, check=True).stdout.strip()
        # figures/ and the executed .ipynb twins are what a build writes: refreshing them does not change sources
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures",
                                ":!notebooks/*.ipynb"],
                               cwd=repo_root(), capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_date() -> str:
    """Today's date in ISO format (UTC)."""
    return _dt.datetime.now(_dt.timezone.utc).date().isoformat()


def stamp(preset: str | None = None) -> dict[str, str]:
    """The provenance fields every figure, table and result row carries."""
    info = {"preset": preset or os.environ.get("CALAD_PRESET", "unknown"), "commit": git_commit(), "date": run_date()}
    if os.environ.get("CALAD_OVERRIDES"):   # values changed from the preset's by `calad run -p`
        info["overrides"] = os.environ["CALAD_OVERRIDES"]
    return info


def announce(chapter: str, device: str) -> dict[str, str]:
    """Show which chapter, preset, commit, date and device produced the numbers below, once per chapter.

    In a notebook this is one output of type :data:`MIME` (with a text line for Jupyter); the book
    moves it into the page's footer instead of showing it among the cells. Elsewhere it is printed.
    """
    info = {"chapter": chapter, **stamp(), "device": device}
    changed = f" with {info['overrides']}" if info.get("overrides") else ""
    line = (f"chapter {chapter} · preset {info['preset']}{changed} · commit {info['commit']} · {info['date']} · "
            f"device {device}")
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({MIME: info, "text/plain": line}, raw=True)
    else:
        print(line)
    return info


def _sources(module: str) -> list[Path]:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"no module {module!r} to fingerprint")
    origin = Path(spec.origin)
    return sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=None)
def code_fingerprint(*modules: str) -> str:
    """A hash of the code of ``modules`` (packages include every file), blind to comments,
    docstrings and formatting: cached models and result rows carry it, so a change to the code
    that produced them makes them stale instead of being reused silently."""
    h = hashlib.sha256()
    for module in modules:
        for path in _sources(module):
            tree = _without_docstrings(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            h.update(f"{module}:{path.name}\n{ast.dump(tree)}".encode())
    return h.hexdigest()[:12]
