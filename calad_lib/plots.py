"""The book's figure style and saving with provenance.

Figures are saved under ``figures/<preset>/`` as PNG and PDF; both files carry the
preset, git commit and run date in their metadata, and :func:`savefig` returns a
one-line caption suffix stating the same, for the notebook to print under the figure.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .paths import figures_dir, relative
from .provenance import stamp

__all__ = ["use_style", "savefig", "PALETTE"]

#: colours shared across chapters so that a method keeps its colour everywhere
PALETTE = {
    "fully_trained": "#4c4c4c",
    "calhead_oe": "#1f77b4", "calhead_spectral": "#aec7e8",
    "platt_oe": "#d62728", "platt_spectral": "#ff9896",
    "beta_oe": "#2ca02c", "beta_spectral": "#98df8a",
    "beta_naive_oe": "#9467bd", "beta_naive_spectral": "#c5b0d5",
    "normal": "#1f77b4", "anomalous": "#d62728", "spectral": "#ff7f0e", "oe": "#2ca02c", "noise": "#7f7f7f",
}


def use_style() -> None:
    """A quiet, readable style (seaborn's ``whitegrid`` with book-sized fonts)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "figure.autolayout": False})


def savefig(fig: plt.Figure, name: str, *, preset: str | None = None) -> str:
    """Save ``fig`` as ``figures/<preset>/<name>.png`` and ``.pdf`` with provenance metadata.

    Returns a caption line such as ``"figure 01_risk · preset smoke · commit 1a2b3c · 2026-11-25"``.
    """
    info = stamp(preset)
    folder = figures_dir() / info["preset"]
    folder.mkdir(parents=True, exist_ok=True)
    subject = f"calad figure {name}; preset {info['preset']}; commit {info['commit']}; date {info['date']}"
    fig.savefig(folder / f"{name}.png", metadata={"Title": name, "Description": subject, "Software": "calad"})
    fig.savefig(folder / f"{name}.pdf", metadata={"Title": name, "Subject": subject, "Creator": "calad"})
    return f"figure {name} · preset {info['preset']} · commit {info['commit']} · {info['date']}"


def figure_path(name: str, preset: str | None = None, ext: str = "png") -> Path:
    """Where :func:`savefig` put ``name``."""
    return figures_dir() / stamp(preset)["preset"] / f"{name}.{ext}"


def shown_path(name: str, preset: str | None = None) -> str:
    return relative(figure_path(name, preset))
