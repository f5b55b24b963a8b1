"""The Expected Anomaly Posterior (EAP paper, §3.2, eqs. 1-4).

Each example has an anomaly probability ``p_x ~ Beta(α₀, β₀)``. Conditioning on
``N = n·P(X=x)`` pseudo observations of which ``α₁ = n·P(X=x)·P(Y=1|X=x)`` are anomalies
gives a Beta posterior (eq. 1) whose mean is the quality score

.. math:: φ(x) = \\frac{α_0 + n \\hat P(X=x) \\hat P(Y=1|X=x)}{α_0 + β_0 + n \\hat P(X=x)}.

* ``P̂(X=x)`` (eq. 3): inverse rarity normalised over the training data,
  ``(1/r(x)) / (1/r(x) + Σ_i 1/r(x_i))``, and 0 where ``r(x) = 0``;
* ``P̂(Y=1|X=x)`` (eq. 4): the detector's score through the squashing scaler.

The default prior is ``α₀ = m/n``, ``β₀ = 1 − m/n`` (the training contamination).

**As the authors' code computes it** (``Lorenzo-Perini/ExpectedAnomalyPosterior``, ``EAP.py``):
the balls of eq. 3 lie around the training normals only, and so do eq. 3's normalising sum and
the evidence count ``n`` (``centres="normals"``); k̂ follows their rule (``k_rule="authors"``,
:mod:`.rarity`); the balls are open (``closed=False``); λ is a percentile (``threshold=
"percentile"``, :mod:`.scaler`); and φ is the mean over ``subsets`` random subsamples of the
training set, each keeping every example with a probability ``p ~ U((5 + 1 + m)/n, 0.99)``
and refitting SSDO, λ (at the full set's contamination) and the rarity (k̂ from every training
anomaly). The other arguments' defaults are calad's: one fit, as the paper describes EAP.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from .rarity import CENTRES, K_RULES, Rarity
from .scaler import THRESHOLDS, SquashingScaler
from .ssdo import SSDO, _check_X

__all__ = ["EAP", "EAPComponents", "density", "expected_anomaly_posterior"]


class EAPComponents(NamedTuple):
    """The ingredients and the score of EAP for a batch of candidates.

    With subsamples, ``eap`` is their mean and the other fields come from the fit on the whole training set.
    """

    rarity: np.ndarray
    density: np.ndarray        # P̂(X = x), eq. 3
    conditional: np.ndarray    # P̂(Y = 1 | X = x), eq. 4
    eap: np.ndarray            # φ(x)


def density(rarity_candidates: np.ndarray, rarity_train: np.ndarray, strict: bool = True) -> np.ndarray:
    """Eq. 3: ``(1/r(x)) / (1/r(x) + Σ_i 1/r(x_i))``, with 0 for ``r(x) = 0``.

    ``strict=False`` lets null training rarities (possible with open balls) add 0 to the sum, as
    the authors' code does; ``strict=True`` refuses them.
    """
    r = np.asarray(rarity_candidates, dtype=float)
    rt = np.asarray(rarity_train, dtype=float)
    if strict and (rt <= 0).any():
        raise ValueError("training rarity scores must be positive (every training example lies in its own ball)")
    total = np.sum(1.0 / rt[rt > 0])
    inv = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
    return np.divide(inv, inv + total, out=np.zeros_like(inv), where=inv + total > 0)


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
        Default ``SSDO(k=10, random_state=random_state, prior=ssdo_prior)``.
    prior : (alpha0, beta0) or None
        Beta prior; ``None`` uses ``(m/n, 1 − m/n)``.
    k : int or None
        Rarity neighbourhood; ``None`` estimates k̂ (app. A.2) by ``k_rule``.
    quantile : float
        Posterior percentile for k̂ (0.95).
    prefit : bool
        ``True`` when ``detector`` is already fitted on the same training data (it is reused).
    k_rule, centres, closed, threshold, subsets, ssdo_prior
        calad's choices by default; the authors' are ``"authors"``, ``"normals"``, ``False``,
        ``"percentile"``, ``100`` and ``"minmax"`` (module docstring).
    """

    def __init__(self, detector=None, prior: tuple[float, float] | None = None, k: int | None = None,
                 quantile: float = 0.95, prefit: bool = False, random_state: int = 0, *, k_rule: str = "calad",
                 centres: str = "all", closed: bool = True, threshold: str = "midpoint", subsets: int = 0,
                 ssdo_prior: str = "squashed", k_start: int = 5):
        if prior is not None:
            if len(prior) != 2 or not (prior[0] > 0 and prior[1] > 0):
                raise ValueError(f"prior must be (alpha0, beta0) with both > 0, or None; got {prior!r}")
        if prefit and detector is None:
            raise ValueError("prefit=True needs a fitted detector")
        if k_rule not in K_RULES or centres not in CENTRES or threshold not in THRESHOLDS:
            raise ValueError(f"EAP needs k_rule in {K_RULES}, centres in {CENTRES}, threshold in {THRESHOLDS}")
        if int(subsets) < 0:
            raise ValueError(f"subsets must be >= 0 (0 = one fit on the whole training set); got {subsets}")
        self.detector, self.prior, self.k, self.quantile = detector, prior, k, quantile
        self.prefit, self.random_state = prefit, random_state
        self.k_rule, self.centres, self.closed, self.threshold = k_rule, centres, closed, threshold
        self.subsets, self.ssdo_prior, self.k_start = int(subsets), ssdo_prior, k_start

    def _rarity(self, k=None) -> Rarity:
        return Rarity(k=self.k if k is None else k, quantile=self.quantile, k_rule=self.k_rule, centres=self.centres,
                      closed=self.closed, k_start=self.k_start)

    def fit(self, X, y) -> "EAP":
        X = _check_X(X)
        y = np.asarray(y).ravel()
        if y.shape[0] != X.shape[0] or not np.isin(y, (0, 1)).all():
            raise ValueError("EAP labels y must be 0 (normal) or 1 (anomaly), one per row of X")
        self.n_ = n = X.shape[0]
        self.m_ = m = int(y.sum())
        if m == 0 and (self.prior is None or self.k is None):
            raise ValueError("EAP needs at least one training anomaly for its default prior and k̂; give prior and k")
        self.detector_ = self.detector if self.detector is not None else SSDO(
            k=10, random_state=self.random_state, prior=self.ssdo_prior)
        if not self.prefit:
            self.detector_.fit(X, y)
        self.scaler_ = SquashingScaler(self.threshold).fit(self.detector_.decision_function(X), m)
        self.rarity_ = self._rarity().fit(X, y)
        self.rarity_train_ = self.rarity_.training_scores()
        self.evidence_n_ = len(self.rarity_.X_)     # n of eq. 3's evidence: the number of ball centres
        self.alpha0_, self.beta0_ = self.prior if self.prior is not None else (m / n, 1.0 - m / n)
        self.X_, self.y_ = X, y
        self.masks_ = self._draw_subsets(n, m) if self.subsets else None
        self._parts = {}
        return self

    def _draw_subsets(self, n: int, m: int) -> np.ndarray:
        """Keep-masks of the subsamples: example kept w.p. ``p ~ U((k_start + 1 + m)/n, 0.99)``, one p per subsample."""
        rng = np.random.default_rng([self.random_state, 404])
        low = min((self.k_start + 1 + m) / n, 0.99)
        masks = []
        for p in rng.uniform(low, 0.99, size=self.subsets):
            keep = rng.random(n) < p
            while keep.sum() < 3 or (self.y_[keep] == 0).sum() < 2:   # too small to fit SSDO: drawn again
                keep = rng.random(n) < p
            masks.append(keep)
        return np.array(masks)

    def _subset_parts(self, Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Density, conditional probability and evidence count of the candidates under each subsample."""
        key = (Xc.shape, hash(Xc.tobytes()))
        if key in self._parts:
            return self._parts[key]
        X, y, anomalies = self.X_, self.y_, self.X_[self.y_ == 1]
        dens, cond, ns = [], [], []
        for keep in self.masks_:
            Xb, yb = X[keep], y[keep]
            det = copy.deepcopy(self.detector_)
            if hasattr(det, "k"):
                det.k = min(det.k, len(Xb) - 1)
            det.fit(Xb, yb)
            scaler = SquashingScaler(self.threshold).fit(det.decision_function(Xb), int(yb.sum()),
                                                         contamination=self.m_ / self.n_)
            n_centres = int((yb == 0).sum()) if self.centres == "normals" else len(Xb)
            k = None if self.k is None else min(self.k, n_centres - 1)
            rar = self._rarity(k).fit(Xb, yb, anomalies=anomalies if len(anomalies) else None)
            dens.append(density(rar.score(Xc), rar.training_scores(), strict=self.closed))
            cond.append(scaler.transform(det.decision_function(Xc)))
            ns.append(len(rar.X_))
        parts = (np.array(dens), np.array(cond), np.array(ns, dtype=float))
        if len(self._parts) >= 4:                     # keep the last few candidate sets
            self._parts.pop(next(iter(self._parts)))
        self._parts[key] = parts
        return parts

    def components(self, X, prior: tuple[float, float] | None = None) -> EAPComponents:
        """Rarity, density, conditional probability and EAP of the candidates ``X`` (optionally another prior)."""
        if not hasattr(self, "scaler_"):
            raise RuntimeError("EAP is not fitted; call fit(X_train, y_train) first")
        X = _check_X(X)
        r = self.rarity_.score(X)
        p_x = density(r, self.rarity_train_, strict=self.closed)
        p_y = self.scaler_.transform(self.detector_.decision_function(X))
        a0, b0 = prior if prior is not None else (self.alpha0_, self.beta0_)
        if self.masks_ is None:
            phi = expected_anomaly_posterior(p_x, p_y, self.evidence_n_, a0, b0)
        else:
            d, c, ns = self._subset_parts(X)
            phi = expected_anomaly_posterior(d, c, ns[:, None], a0, b0).mean(axis=0)
        return EAPComponents(r, p_x, p_y, phi)

    def score(self, X) -> np.ndarray:
        """φ(x) for each row of ``X`` (higher = better auxiliary anomaly)."""
        return self.components(X).eap

    def score_auxiliary(self, X_train, y_train, X_aux, **_) -> np.ndarray:
        """The shared baseline interface: fit on the training data, score the auxiliary set."""
        return self.fit(X_train, y_train).score(X_aux)
