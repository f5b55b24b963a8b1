"""The book's figure style and saving with provenance.

Figures are saved under ``figures/<preset>/`` as PNG and PDF; both files carry the
preset, git commit and run date in their metadata. In a notebook :func:`savefig` also shows
the figure, with its alt text, and checks that it stays readable at the book's column width.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from PIL import Image

from .paths import figures_dir, relative
from .provenance import stamp
from .profile import timed

__all__ = ["use_style", "savefig", "readability", "panels_per_row", "FigureWarning", "PALETTE",
           "COLUMN_PX", "MIN_FONT_PT"]

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
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "figure.autolayout": False})


#: width of the book's text column in CSS pixels (``--measure: 47rem`` in book/theme/book.css)
COLUMN_PX = 752
#: the smallest font a reader should meet in a figure, in points as rendered in the column
MIN_FONT_PT = 9.0
MAX_PANELS_PER_ROW = 3


class FigureWarning(UserWarning):
    """A figure will be hard to read at the book's column width."""


def _texts(fig: plt.Figure):
    for ax in fig.axes:
        yield from (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label)
        yield from ax.get_xticklabels() + ax.get_yticklabels() + list(ax.texts)
        legend = ax.get_legend()
        if legend is not None:
            yield from legend.get_texts()
            yield legend.get_title()
    yield from fig.texts
    if getattr(fig, "_suptitle", None) is not None:
        yield fig._suptitle
    for legend in fig.legends:
        yield from legend.get_texts()


def panels_per_row(fig: plt.Figure) -> int:
    """The largest number of plotting panels side by side (colour bars and twin axes not counted)."""
    boxes = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>" or not ax.get_visible() or not ax.axison and not ax.images:
            continue
        b = ax.get_position()
        if not any(abs(b.x0 - o.x0) < 1e-6 and abs(b.y0 - o.y0) < 1e-6 for o in boxes):
            boxes.append(b)
    best = 0
    for b in boxes:
        best = max(best, sum(1 for o in boxes if o.y0 < b.y1 and b.y0 < o.y1))
    return best


def readability(fig: plt.Figure, png_width_px: int) -> dict[str, float]:
    """The smallest font of ``fig`` in points as rendered in the book's column, and its panels per row."""
    sizes = [t.get_fontsize() for t in _texts(fig) if t.get_visible() and t.get_text().strip()]
    scale = min(1.0, COLUMN_PX / max(png_width_px, 1))
    # a font of f pt is f·dpi/72 image pixels, shown at `scale` CSS pixels each; 1 CSS pt = 4/3 CSS px
    rendered = min(sizes) * fig.dpi / 72 * scale * 0.75 if sizes else float("inf")
    return {"min_font_pt": round(rendered, 2), "panels_per_row": panels_per_row(fig)}


@timed("plotting")
def savefig(fig: plt.Figure, name: str, *, alt: str, preset: str | None = None) -> None:
    """Save ``fig`` as ``figures/<preset>/<name>.png`` and ``.pdf`` with provenance metadata, and show it once.

    In a notebook the figure is displayed here (and closed, so it is not drawn twice) as a PNG whose
    metadata carries ``alt``, the sentence a reader who cannot see the plot is given, and its
    :func:`readability`; a figure whose fonts would render below :data:`MIN_FONT_PT` or that has
    more than :data:`MAX_PANELS_PER_ROW` panels side by side raises a :class:`FigureWarning`.
    """
    if not isinstance(alt, str) or len(alt.strip()) < 10:
        raise ValueError(f"figure {name}: give an alt text that says what the figure shows (alt=...)")
    info = stamp(preset)
    folder = figures_dir() / info["preset"]
    if folder.resolve().parent != figures_dir().resolve():
        raise ValueError(f"preset {info['preset']!r} would put figures outside {relative(figures_dir())}; "
                         "a preset name is one folder name")
    folder.mkdir(parents=True, exist_ok=True)
    subject = f"calad figure {name}; preset {info['preset']}; commit {info['commit']}; date {info['date']}"
    if info.get("overrides"):
        subject += f"; overrides {info['overrides']}"
    fig.savefig(folder / f"{name}.png", metadata={"Title": name, "Description": subject, "Software": "calad"})
    fig.savefig(folder / f"{name}.pdf", metadata={"Title": name, "Subject": subject, "Creator": "calad"})
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    width, height = Image.open(io.BytesIO(buf.getvalue())).size
    read = readability(fig, width)
    if read["min_font_pt"] < MIN_FONT_PT or read["panels_per_row"] > MAX_PANELS_PER_ROW:
        warnings.warn(f"figure {name}: smallest font {read['min_font_pt']:.1f} pt as rendered (at least "
                      f"{MIN_FONT_PT:g}), {read['panels_per_row']} panels per row (at most {MAX_PANELS_PER_ROW}); "
                      "use larger fonts, a narrower figure or more rows", FigureWarning, stacklevel=2)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({"image/png": buf.getvalue(), "text/plain": alt.strip()},
                metadata={"image/png": {"width": min(width, COLUMN_PX), "alt": alt.strip(), "calad": read}},
                raw=True)
        plt.close(fig)


def figure_path(name: str, preset: str | None = None, ext: str = "png") -> Path:
    """Where :func:`savefig` put ``name``."""
    return figures_dir() / stamp(preset)["preset"] / f"{name}.{ext}"


def shown_path(name: str, preset: str | None = None) -> str:
    return relative(figure_path(name, preset))
