"""The squashing scaler: anomaly scores to conditional probabilities (EAP paper, eq. 4; SSDO).

.. math:: \\hat P(Y = 1 \\mid X = x) = 1 - 2^{-(f(x)/λ)^2}

maps a non-negative score to ``[0, 1)`` with ``P = 0.5`` exactly at ``f = λ``. λ is the
detector's decision threshold, chosen so that the number of training examples whose
probability exceeds 0.5 equals the number of training anomalies ``m`` (Perini et al.
2023). Two rules:

* ``"midpoint"`` (calad, exactly as the paper words it): λ lies midway between the m-th and
  (m+1)-th largest training score;
* ``"percentile"`` (the authors' code, through anomatools' ``SquashScaler``): λ is the
  ``⌊100(1 − c)⌋``-th percentile of the training scores (linear interpolation), ``c`` the
  contamination, by default ``m/n``; the truncation to a whole percent can put a few more or
  fewer than m examples above ½.
"""
from __future__ import annotations

import numpy as np

from .ssdo import squash

__all__ = ["SquashingScaler", "THRESHOLDS"]

THRESHOLDS = ("midpoint", "percentile")


class SquashingScaler:
    """``SquashingScaler(rule).fit(scores_train, m).transform(scores)``.

    Scores must be non-negative (SSDO's are in ``[0, 1]``); negative scores at transform
    time are clipped to 0 (probability 0).
    """

    def __init__(self, rule: str = "midpoint"):
        if rule not in THRESHOLDS:
            raise ValueError(f"unknown threshold rule {rule!r}; choose one of {', '.join(THRESHOLDS)}")
        self.rule = rule

    def fit(self, scores, m: int, contamination: float | None = None) -> "SquashingScaler":
        """λ from the training scores and the number ``m`` of training anomalies (``contamination``: the
        percentile rule's ``c``, default ``m/n``; the authors fix it on the full training set)."""
        s = np.asarray(scores, dtype=float).ravel()
        if s.size == 0 or not np.isfinite(s).all():
            raise ValueError("squashing scaler needs a non-empty array of finite training scores")
        if (s < 0).any():
            raise ValueError("squashing scaler needs non-negative scores; shift them (e.g. s - s.min()) first")
        m = int(m)
        if not 0 <= m <= s.size:
            raise ValueError(f"m (number of training anomalies) must lie in [0, {s.size}]; got {m}")
        top = np.sort(s)[::-1]
        if self.rule == "percentile":
            c = m / s.size if contamination is None else float(contamination)
            if not 0 <= c < 1:
                raise ValueError(f"contamination must lie in [0, 1); got {c}")
            lam = float(np.percentile(s, int((1.0 - c) * 100)))
        elif m == 0:
            lam = top[0] * (1 + 1e-9) + 1e-12
        elif m == s.size:
            lam = top[-1] / 2
        else:
            lam = (top[m - 1] + top[m]) / 2
        self.lambda_ = float(max(lam, 1e-12))
        self.m_ = m
        return self

    def transform(self, scores) -> np.ndarray:
        if not hasattr(self, "lambda_"):
            raise RuntimeError("SquashingScaler is not fitted; call fit(scores_train, m) first")
        return squash(np.clip(np.asarray(scores, dtype=float), 0.0, None), self.lambda_)

    def fit_transform(self, scores, m: int) -> np.ndarray:
        return self.fit(scores, m).transform(scores)
