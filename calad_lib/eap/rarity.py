"""The rarity score (Han et al. 2022) and the estimate k̂ of its neighbourhood size (EAP paper, eq. 6 and app. A.2).

Around each *centre* ``c_i`` lies the k-NN ball ``B_k(c_i)`` of radius ``NN_k(c_i)``, the
distance to its k-th nearest centre (itself excluded). A candidate's rarity is the smallest
radius among the balls that contain it, and 0 outside them all:

.. math:: r_k(x) = \\min_{i: x \\in B_k(c_i)} NN_k(c_i), \\qquad r_k(x) = 0 \\text{ if } x \\notin \\cup_i B_k(c_i).

The paper's balls are closed (``d ≤ NN_k``); the authors' code
(``Lorenzo-Perini/ExpectedAnomalyPosterior``, ``rr_score.py``) tests ``d < NN_k`` (open).

**k̂ (app. A.2), two rules.** Both take, for each training anomaly ``x_m``, the smallest ``k_m``
for which some centre's ball holds it, put a uniform prior on a normalised ``K`` and take the
95th percentile ``t`` of its Beta posterior ``Beta(1 + Σ K_m, 1 + m − Σ K_m)``:

* ``"calad"``, as the appendix reads: the centres are all ``n`` training examples (a training
  anomaly's own ball excluded, so the other anomalies' balls count), ``K = (k − 1)/(n − 1)``,
  ``k̂ = ⌈1 + t(n − 1)⌉``;
* ``"authors"``, as ``EAP.find_minimum_k`` of the authors' code computes it: the centres are the
  ``n₀`` training *normals* only, the search starts at ``k = 5`` (``k_m ≥ 5``, ``k_m = n₀ − 1``
  when no ball holds ``x_m``), ``K = (k − 5)/(n₀ − 6)`` and ``k̂ = ⌊5 + t(n₀ − 6)⌋`` within
  ``[5, n₀ − 1]`` (``n₀ − 1`` when ``n₀ ≤ 6``).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import beta as beta_dist
from sklearn.metrics import pairwise_distances, pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from .ssdo import _check_X

__all__ = ["Rarity", "ball_ranks", "reverse_neighbour_ranks", "estimate_k", "estimate_k_normals", "k_posterior",
           "k_hat_evidence", "rows_of", "K_RULES", "CENTRES"]

K_RULES = ("calad", "authors")
CENTRES = ("all", "normals")


def ball_ranks(centres, points, *, closed: bool = True, own=None) -> np.ndarray:
    """For each point: the smallest k for which the k-NN ball (among ``centres``) of some centre holds it.

    ``own[j]`` is the row of ``centres`` that *is* ``points[j]`` (its ball does not count), or −1.
    A point farther than every other centre from each centre gets ``len(centres)``. Ties count in
    the point's favour for closed balls (``d ≤ NN_k``) and against it for open ones (``d < NN_k``).
    Holds the full centre-to-centre distance matrix (fine up to a few thousand centres).
    """
    C, P = _check_X(centres, "centres"), _check_X(points, "points")
    D = pairwise_distances(C)
    np.fill_diagonal(D, np.inf)
    S = np.sort(D, axis=1)                          # S[i, k-1] = NN_k(c_i)
    Dp = pairwise_distances(C, P)                   # (n_centres, n_points)
    if own is not None:
        own = np.asarray(own, dtype=int)
        hit = own >= 0
        Dp[:, hit] = D[:, own[hit]]                  # the very distances of S: ties compare exactly
    # neighbours of c_i that keep the point out of B_k(c_i): closer than it (closed balls), or as close (open)
    side = "left" if closed else "right"
    closer = np.stack([np.searchsorted(S[i], Dp[i], side=side) for i in range(len(C))])
    if own is not None:
        closer[own[hit], np.flatnonzero(hit)] = len(C)   # a point's own ball does not count
    return closer.min(axis=0) + 1


def rows_of(X, A) -> np.ndarray:
    """For each row of ``A``: the index of an identical row of ``X``, or −1."""
    where = {r.tobytes(): i for i, r in enumerate(np.ascontiguousarray(X, dtype=float))}
    return np.array([where.get(r.tobytes(), -1) for r in np.ascontiguousarray(A, dtype=float)], dtype=int)


def reverse_neighbour_ranks(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each example ``X[r]`` (``r`` in ``rows``): the smallest k such that the k-NN ball of another example holds it.

    That is ``min_{i ≠ r} rank of X[r] among the neighbours of X[i]`` (1 = nearest); ties count in
    the example's favour (closed balls).
    """
    X = _check_X(X)
    rows = np.asarray(rows, dtype=int)
    return ball_ranks(X, X[rows], closed=True, own=rows)


def k_posterior(k_values: np.ndarray, n: int, start: int = 1) -> tuple[float, float]:
    """Parameters of the Beta posterior of ``K = (k − start)/(n − start)`` given the anomalies' ``k_m`` (uniform prior).

    ``start = 1`` is the appendix's ``K = (k − 1)/(n − 1)``; the authors' rule uses ``start = 5`` and
    ``n = n₀ − 1`` (their ``K = (k − 5)/(n₀ − 6)``).
    """
    K = (np.asarray(k_values, dtype=float) - start) / (n - start)
    return 1.0 + K.sum(), 1.0 + len(K) - K.sum()


def _check_quantile(quantile: float) -> None:
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1); got {quantile}")


def estimate_k(X, y, quantile: float = 0.95, anomalies=None) -> int:
    """k̂ of app. A.2, calad's rule, from the training data ``X`` and labels ``y`` (1 = anomaly).

    ``anomalies`` (default ``X[y == 1]``): the evidence; a row also in ``X`` does not count its own ball.
    """
    X = _check_X(X)
    n = X.shape[0]
    if anomalies is None:
        own = np.flatnonzero(np.asarray(y).ravel() == 1)
        A = X[own]
    else:
        A = _check_X(anomalies, "anomalies")
        own = rows_of(X, A)
    if len(A) == 0:
        raise ValueError("estimating k needs at least one labelled anomaly in y; pass k explicitly instead")
    _check_quantile(quantile)
    a, b = k_posterior(ball_ranks(X, A, closed=True, own=own), n)
    t = float(beta_dist.ppf(quantile, a, b))
    return int(np.clip(np.ceil(1.0 + t * (n - 1) - 1e-9), 1, n - 1))


def estimate_k_normals(X_normals, X_anomalies, quantile: float = 0.95, start: int = 5, closed: bool = False) -> int:
    """k̂ of the authors' rule: balls around the training normals only, search from ``k = start`` (module docstring)."""
    N, A = _check_X(X_normals, "X_normals"), _check_X(X_anomalies, "X_anomalies")
    _check_quantile(quantile)
    n0 = len(N)
    if n0 <= start + 1:
        return n0 - 1
    ks = np.clip(ball_ranks(N, A, closed=closed), start, n0 - 1)
    a, b = k_posterior(ks, n0 - 1, start)
    k = int(float(beta_dist.ppf(quantile, a, b)) * (n0 - 1 - start) + start)   # truncation, as the authors' int()
    return max(min(n0 - 1, k), start)


def k_hat_evidence(X, y, rule: str = "calad", closed: bool = False, start: int = 5) -> tuple[np.ndarray, int, int]:
    """The evidence of k̂ under ``rule``: the anomalies' ``k_m``, and the ``n`` and ``start`` of ``K = (k − start)/(n − start)``.

    ``k_posterior(*k_hat_evidence(X, y, rule))`` is then the posterior whose 95th percentile sets k̂;
    ``closed`` sets the balls of the authors' rule (open in their code; calad's rule uses closed balls).
    """
    X = _check_X(X)
    y = np.asarray(y).ravel()
    if rule == "calad":
        return reverse_neighbour_ranks(X, np.flatnonzero(y == 1)), len(X), 1
    if rule != "authors":
        raise ValueError(f"unknown k rule {rule!r}; choose one of {', '.join(K_RULES)}")
    n0 = int((y == 0).sum())
    return np.clip(ball_ranks(X[y == 0], X[y == 1], closed=closed), start, n0 - 1), n0 - 1, start


class Rarity:
    """Rarity score with a given or estimated ``k`` (eq. 6, app. A.2).

    ``Rarity(k=None).fit(X, y).score(X_cand)``: with ``k=None`` the neighbourhood size is
    estimated from the labelled anomalies in ``y`` by ``k_rule`` (``k_`` holds the value used).
    ``centres="normals"`` puts the balls around the training normals only (the authors' code);
    ``closed=False`` makes them open. ``fit(..., anomalies=A)`` takes the evidence of k̂ from ``A``
    instead of ``X[y == 1]`` (the authors pass every training anomaly when fitting on a subsample).
    """

    def __init__(self, k: int | None = None, quantile: float = 0.95, *, k_rule: str = "calad",
                 centres: str = "all", closed: bool = True, k_start: int = 5):
        if k is not None and int(k) < 1:
            raise ValueError(f"rarity k must be >= 1 or None (estimate it); got {k}")
        if k_rule not in K_RULES or centres not in CENTRES:
            raise ValueError(f"k_rule must be one of {K_RULES} and centres one of {CENTRES}; got {k_rule!r}, {centres!r}")
        self.k = None if k is None else int(k)
        self.quantile, self.k_rule, self.centres, self.closed, self.k_start = quantile, k_rule, centres, closed, k_start

    def _estimate(self, X, y, anomalies) -> int:
        if y is None:
            raise ValueError("Rarity(k=None) estimates k from labelled anomalies: pass y, or give k")
        y = np.asarray(y).ravel()
        A = X[y == 1] if anomalies is None else _check_X(anomalies, "anomalies")
        if len(A) == 0:
            raise ValueError("estimating k needs at least one labelled anomaly in y; pass k explicitly instead")
        if self.k_rule == "authors":
            return estimate_k_normals(X[y == 0], A, self.quantile, self.k_start, self.closed)
        return estimate_k(X, y, self.quantile, anomalies=A)

    def fit(self, X, y=None, *, anomalies=None) -> "Rarity":
        X = _check_X(X)
        C = X if self.centres == "all" else X[np.asarray(y).ravel() == 0]
        if len(C) < 2:
            raise ValueError("rarity needs at least two centres (training examples)")
        if self.k is None:
            self.k_ = self._estimate(X, y, anomalies)
        else:
            if self.k > len(C) - 1:
                raise ValueError(f"rarity k={self.k} must be below the number of training examples ({len(C)})")
            self.k_ = self.k
        dist, _ = NearestNeighbors(n_neighbors=self.k_ + 1).fit(C).kneighbors(C)
        self.X_ = C
        radii = dist[:, -1]  # distance to the k-th neighbour, self excluded
        if self.closed:   # duplicates: keep every ball non-degenerate
            radii = np.maximum(radii, 1e-12 * max(float(radii.max()), 1.0))
        self.radii_ = radii
        return self

    def score(self, X) -> np.ndarray:
        """``r_k(x)`` for each row of ``X``: the smallest radius of a ball holding it, or 0."""
        if not hasattr(self, "radii_"):
            raise RuntimeError("Rarity is not fitted; call fit(X) first")
        X = _check_X(X)
        out = []
        for D in pairwise_distances_chunked(X, self.X_):
            # radii and distances come from different computations: a point on a boundary (a centre's k-th
            # neighbour) is kept in a closed ball and out of an open one despite rounding
            tol = 1e-12 if self.closed else -1e-12
            inside = D <= self.radii_[None, :] * (1 + tol) if self.closed else D < self.radii_[None, :] * (1 + tol)
            r = np.where(inside, self.radii_[None, :], np.inf).min(axis=1)
            out.append(np.where(np.isfinite(r), r, 0.0))
        return np.concatenate(out)

    def training_scores(self) -> np.ndarray:
        """Rarity of the centres themselves (with closed balls each lies in its own ball, so all are positive)."""
        return self.score(self.X_)
