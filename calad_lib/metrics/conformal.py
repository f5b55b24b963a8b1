"""Conformal anomaly detection: split-conformal p-values and the Benjamini–Hochberg procedure (thesis §4.3.1)."""
from __future__ import annotations

import numpy as np

from .scores import _np

__all__ = ["conformal_pvalues", "benjamini_hochberg"]


def conformal_pvalues(calib_scores, test_scores) -> np.ndarray:
    """Split-conformal p-values ``(1 + #{calibration scores ≥ s}) / (n + 1)`` (larger score = more anomalous).

    ``calib_scores`` are scores of held-out *normal* data. If calibration and test normal data
    are exchangeable, a normal test input's p-value is super-uniform: ``P(p ≤ α) ≤ α``.
    """
    c = np.sort(_np(calib_scores).ravel().astype(np.float64))
    t = _np(test_scores).ravel().astype(np.float64)
    if len(c) == 0:
        raise ValueError("conformal p-values need at least one calibration score")
    if not (np.isfinite(c).all() and np.isfinite(t).all()):
        raise ValueError("scores contain NaN or infinite values")
    n_ge = len(c) - np.searchsorted(c, t, side="left")
    return (1.0 + n_ge) / (len(c) + 1.0)


def benjamini_hochberg(pvalues, alpha: float = 0.1) -> np.ndarray:
    """Benjamini–Hochberg step-up procedure: a boolean array, ``True`` = rejected (declared anomalous).

    Rejects the ``k`` smallest p-values, ``k`` the largest index with ``p_(k) ≤ k α / m``;
    controls the false discovery rate at ``α`` for independent (or PRDS) p-values.
    """
    p = _np(pvalues).ravel().astype(np.float64)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha = {alpha} must lie in (0, 1)")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("p-values must lie in [0, 1]")
    m = len(p)
    order = np.argsort(p, kind="stable")
    below = p[order] <= alpha * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if below.any():
        k = int(np.nonzero(below)[0].max())
        reject[order[:k + 1]] = True
    return reject
