"""Rank statistics: Spearman's correlation, the Wilcoxon signed-rank test, and how a map's pixels are reordered."""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats

__all__ = ["spearman", "wilcoxon_p", "format_p", "within_image_rank_corr"]


def spearman(a, b) -> tuple[float, float]:
    """Spearman's rank correlation and its two-sided p-value (SciPy), ignoring pairs with a NaN."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    res = stats.spearmanr(a[ok], b[ok])
    return float(res.statistic), float(res.pvalue)


def wilcoxon_p(d, alternative: str = "two-sided") -> float:
    """p-value of the Wilcoxon signed-rank test (SciPy) on paired differences ``d``, ignoring NaN and zeros;
    NaN when fewer than two non-zero differences remain."""
    d = np.asarray(d, dtype=np.float64).ravel()
    d = d[np.isfinite(d) & (d != 0)]
    return float(stats.wilcoxon(d, alternative=alternative).pvalue) if len(d) >= 2 else float("nan")


def format_p(p) -> str:
    """A p-value as the book prints it: two significant digits, ``< 0.001`` below that, ``n/a`` for NaN."""
    return "n/a" if p is None or not np.isfinite(p) else (f"{p:.2g}" if p >= 1e-3 else "< 0.001")


def within_image_rank_corr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean within-image Spearman ρ between the pixels of maps ``a`` and ``b`` ``(N, H, W)``; constant maps skipped.

    1 when ``b`` keeps the order of every image's pixels in ``a`` (any strictly increasing map of ``a``).
    """
    ra = stats.rankdata(a.flatten(1).double().numpy(), axis=1)
    rb = stats.rankdata(b.flatten(1).double().numpy(), axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(1) / np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    return float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")
