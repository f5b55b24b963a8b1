"""Where calad keeps things: repository, build folder, caches, results, figures, data.

Every location can be moved with an environment variable, so a cluster job or a
reviewer's machine can point calad elsewhere without editing code:

=================  =====================  ==========================================
variable           default                holds
=================  =====================  ==========================================
``CALAD_BUILD``    ``<repo>/_build``      executed notebooks and the HTML book
``CALAD_CACHE``    ``<repo>/.cache``      trained models, keyed by configuration
``CALAD_RESULTS``  ``<repo>/results``     result rows of experiment grids
``CALAD_FIGURES``  ``<repo>/figures``     the book's figures (PNG and PDF)
``CALAD_DATA``     ``<repo>/data``        extra datasets (CIFAR, MVTec AD, MPDD, ...)
=================  =====================  ==========================================
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "build_dir", "cache_dir", "results_dir", "recorded_dir", "figures_dir",
           "data_dir", "params_dir", "notebooks_dir", "relative"]


def repo_root() -> Path:
    """The checkout that holds ``calad_lib`` (or the working directory if installed elsewhere)."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists() and (here / "calad_lib").is_dir():
        return here
    return Path.cwd()


def _dir(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else repo_root() / default


def build_dir() -> Path:
    return _dir("CALAD_BUILD", "_build")


def cache_dir() -> Path:
    return _dir("CALAD_CACHE", ".cache")


def results_dir() -> Path:
    return _dir("CALAD_RESULTS", "results")


def recorded_dir() -> Path:
    """``results/recorded/``: rows and timings of recorded runs, part of the repository (``CALAD_RESULTS`` does not move it)."""
    return repo_root() / "results" / "recorded"


def figures_dir() -> Path:
    return _dir("CALAD_FIGURES", "figures")


def data_dir() -> Path:
    return _dir("CALAD_DATA", "data")


def params_dir() -> Path:
    return repo_root() / "params"


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def relative(path: os.PathLike | str) -> str:
    """``path`` relative to the repository when it lies inside it (for printing without machine paths)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(repo_root()))
    except ValueError:
        return str(p)
