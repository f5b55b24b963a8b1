"""The Expected Anomaly Posterior (EAP paper, §3.2, eqs. 1-4).

Each example has an anomaly probability ``p_x ~ Beta(α₀, β₀)``. Conditioning on
``N = n·P(X=x)`` pseudo observations of which ``α₁ = n·P(X=x)·P(Y=1|X=x)`` are anomalies
gives a Beta posterior (eq. 1) whose mean is the quality score

.. math:: φ(x) = \\frac{α_0 + n \\hat P(X=x) \\hat P(Y=1|X=x)}{α_0 + β_0 + n \\hat P(X=x)}.

* ``P̂(X=x)`` (eq. 3): inverse rarity normalised over the training data,
  ``(1/r(x)) / (1/r(x) + Σ_i 1/r(x_i))``, and 0 where ``r(x) = 0``;
* ``P̂(Y=1|X=x)`` (eq. 4): the detector's score through the squashing scaler.

The default prior is ``α₀ = m/n``, ``β₀ = 1 − m/n`` (the training contamination).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .rarity import Rarity
from .scaler import SquashingScaler
from .ssdo import SSDO, _check_X

__all__ = ["EAP", "EAPComponents", "density", "expected_anomaly_posterior"]


class EAPComponents(NamedTuple):
    """The ingredients and the score of EAP for a batch of candidates."""

    rarity: np.ndarray
    density: np.ndarray        # P̂(X = x), eq. 3
    conditional: np.ndarray    # P̂(Y = 1 | X = x), eq. 4
    eap: np.ndarray            # φ(x)


def density(rarity_candidates: np.ndarray, rarity_train: np.ndarray) -> np.ndarray:
    """Eq. 3: ``(1/r(x)) / (1/r(x) + Σ_i 1/r(x_i))``, with 0 for ``r(x) = 0``."""
    r = np.asarray(rarity_candidates, dtype=float)
    rt = np.asarray(rarity_train, dtype=float)
    if (rt <= 0).any():
        raise ValueError("training rarity scores must be positive (every training example lies in its own ball)")
    total = np.sum(1.0 / rt)
    inv = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
    return inv / (inv + total)


def expected_anomaly_posterior(p_x, p_y_given_x, n: float, alpha0: float, beta0: float) -> np.ndarray:
    """φ(x) of §3.2 from the density, the conditional probability, n and the Beta prior."""
    if not (alpha0 > 0 and beta0 > 0):
        raise ValueError(f"the Beta prior needs alpha0 > 0 and beta0 > 0; got ({alpha0}, {beta0})")
    evidence = n * np.asarray(p_x, dtype=float)
    return (alpha0 + evidence * np.asarray(p_y_given_x, dtype=float)) / (alpha0 + beta0 + evidence)


class EAP:
    """Quality scores of auxiliary anomalies: ``EAP(detector=SSDO(k=10)).fit(X, y).score(X_aux)``.

    Parameters
    ----------
    detector : object with ``fit(X, y)`` and ``decision_function(X)`` (non-negative scores), optional
        Default ``SSDO(k=10, random_state=random_state)``.
    prior : (alpha0, beta0) or None
        Beta prior; ``None`` uses ``(m/n, 1 − m/n)``.
    k : int or None
        Rarity neighbourhood; ``None`` estimates k̂ (app. A.2).
    quantile : float
        Posterior percentile for k̂ (0.95).
    prefit : bool
        ``True`` when ``detector`` is already fitted on the same training data (it is reused).
    """

    def __init__(self, detector=None, prior: tuple[float, float] | None = None, k: int | None = None,
                 quantile: float = 0.95, prefit: bool = False, random_state: int = 0):
        if prior is not None:
            if len(prior) != 2 or not (prior[0] > 0 and prior[1] > 0):
                raise ValueError(f"prior must be (alpha0, beta0) with both > 0, or None; got {prior!r}")
        if prefit and detector is None:
            raise ValueError("prefit=True needs a fitted detector")
        self.detector = detector
        self.prior = prior
        self.k = k
        self.quantile = quantile
        self.prefit = prefit
        self.random_state = random_state

    def fit(self, X, y) -> "EAP":
        X = _check_X(X)
        y = np.asarray(y).ravel()
        if y.shape[0] != X.shape[0] or not np.isin(y, (0, 1)).all():
            raise ValueError("EAP labels y must be 0 (normal) or 1 (anomaly), one per row of X")
        self.n_ = n = X.shape[0]
        self.m_ = m = int(y.sum())
        if m == 0 and (self.prior is None or self.k is None):
            raise ValueError("EAP needs at least one training anomaly for its default prior and k̂; give prior and k")
        self.detector_ = self.detector if self.detector is not None else SSDO(k=10, random_state=self.random_state)
        if not self.prefit:
            self.detector_.fit(X, y)
        self.scaler_ = SquashingScaler().fit(self.detector_.decision_function(X), m)
        self.rarity_ = Rarity(k=self.k, quantile=self.quantile).fit(X, y)
        self.rarity_train_ = self.rarity_.training_scores()
        self.alpha0_, self.beta0_ = self.prior if self.prior is not None else (m / n, 1.0 - m / n)
        return self

    def components(self, X, prior: tuple[float, float] | None = None) -> EAPComponents:
        """Rarity, density, conditional probability and EAP of the candidates ``X`` (optionally another prior)."""
        if not hasattr(self, "scaler_"):
            raise RuntimeError("EAP is not fitted; call fit(X_train, y_train) first")
        X = _check_X(X)
        r = self.rarity_.score(X)
        p_x = density(r, self.rarity_train_)
        p_y = self.scaler_.transform(self.detector_.decision_function(X))
        a0, b0 = prior if prior is not None else (self.alpha0_, self.beta0_)
        return EAPComponents(r, p_x, p_y, expected_anomaly_posterior(p_x, p_y, self.n_, a0, b0))

    def score(self, X) -> np.ndarray:
        """φ(x) for each row of ``X`` (higher = better auxiliary anomaly)."""
        return self.components(X).eap

    def score_auxiliary(self, X_train, y_train, X_aux, **_) -> np.ndarray:
        """The shared baseline interface: fit on the training data, score the auxiliary set."""
        return self.fit(X_train, y_train).score(X_aux)
