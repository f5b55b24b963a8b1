"""The rarity score (Han et al. 2022) and the estimate k̂ of its neighbourhood size (EAP paper, eq. 6 and app. A.2).

Around each training example ``x_i`` lies the k-NN ball ``B_k(x_i)`` of radius ``NN_k(x_i)``,
the distance to its k-th nearest training neighbour (itself excluded). A candidate's
rarity is the smallest radius among the balls that contain it, and 0 outside them all:

.. math:: r_k(x) = \\min_{i: x \\in B_k(x_i)} NN_k(x_i), \\qquad r_k(x) = 0 \\text{ if } x \\notin \\cup_i B_k(x_i).

**k̂ (app. A.2).** For each training anomaly ``x_m`` the smallest ``k_m`` for which some
*other* training example's ball contains it, ``k_m = min_{i ≠ m} rank_i(x_m)`` (its rank
among ``x_i``'s neighbours). With ``K = (k − 1)/(n − 1) ~ Beta(1, 1)`` and the normalised
``K_m`` as evidence, the posterior is ``Beta(1 + Σ K_m, 1 + m − Σ K_m)``; k̂ is its 95th
percentile mapped back, ``k̂ = ⌈1 + t_{0.95}(n − 1)⌉``.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import beta as beta_dist
from sklearn.metrics import pairwise_distances, pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from .ssdo import _check_X

__all__ = ["Rarity", "reverse_neighbour_ranks", "estimate_k", "k_posterior"]


def reverse_neighbour_ranks(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each example ``X[r]`` (``r`` in ``rows``): the smallest k such that the k-NN ball of another example holds it.

    That is ``min_{i ≠ r} rank of X[r] among the neighbours of X[i]`` (1 = nearest). Ties
    count in the example's favour (rank = number of strictly closer neighbours + 1). Holds the
    full ``n × n`` distance matrix (fine up to a few thousand examples).
    """
    X = _check_X(X)
    D = pairwise_distances(X)
    np.fill_diagonal(D, np.inf)
    out = np.empty(len(rows), dtype=int)
    for j, r in enumerate(np.asarray(rows, dtype=int)):
        d_to_r = D[:, r]                               # distance from every x_i to x_r
        closer = (D < d_to_r[:, None]).sum(axis=1)     # neighbours of x_i strictly closer than x_r
        closer[r] = np.iinfo(int).max // 2             # x_r's own ball does not count
        out[j] = int(closer.min()) + 1
    return out


def k_posterior(k_values: np.ndarray, n: int) -> tuple[float, float]:
    """Parameters of the Beta posterior of ``K = (k − 1)/(n − 1)`` given the anomalies' ``k_m`` (uniform prior)."""
    k_values = np.asarray(k_values, dtype=float)
    K = (k_values - 1.0) / (n - 1.0)
    return 1.0 + K.sum(), 1.0 + len(K) - K.sum()


def estimate_k(X, y, quantile: float = 0.95) -> int:
    """k̂ of app. A.2 from the training data ``X`` and labels ``y`` (1 = anomaly)."""
    X = _check_X(X)
    y = np.asarray(y).ravel()
    n = X.shape[0]
    rows = np.flatnonzero(y == 1)
    if len(rows) == 0:
        raise ValueError("estimating k needs at least one labelled anomaly in y; pass k explicitly instead")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1); got {quantile}")
    a, b = k_posterior(reverse_neighbour_ranks(X, rows), n)
    t = float(beta_dist.ppf(quantile, a, b))
    return int(np.clip(np.ceil(1.0 + t * (n - 1) - 1e-9), 1, n - 1))


class Rarity:
    """Rarity score with a given or estimated ``k`` (eq. 6, app. A.2).

    ``Rarity(k=None).fit(X, y).score(X_cand)``: with ``k=None`` the neighbourhood size is
    estimated from the labelled anomalies in ``y`` (``k_`` holds the value used).
    """

    def __init__(self, k: int | None = None, quantile: float = 0.95):
        if k is not None and int(k) < 1:
            raise ValueError(f"rarity k must be >= 1 or None (estimate it); got {k}")
        self.k = None if k is None else int(k)
        self.quantile = quantile

    def fit(self, X, y=None) -> "Rarity":
        X = _check_X(X)
        n = X.shape[0]
        if n < 2:
            raise ValueError("rarity needs at least two training examples")
        if self.k is None:
            if y is None:
                raise ValueError("Rarity(k=None) estimates k from labelled anomalies: pass y, or give k")
            self.k_ = estimate_k(X, y, self.quantile)
        else:
            if self.k > n - 1:
                raise ValueError(f"rarity k={self.k} must be below the number of training examples ({n})")
            self.k_ = self.k
        dist, _ = NearestNeighbors(n_neighbors=self.k_ + 1).fit(X).kneighbors(X)
        self.X_ = X
        radii = dist[:, -1]  # distance to the k-th neighbour, self excluded
        floor = 1e-12 * max(float(radii.max()), 1.0)
        self.radii_ = np.maximum(radii, floor)  # duplicates: keep every ball non-degenerate
        return self

    def score(self, X) -> np.ndarray:
        """``r_k(x)`` for each row of ``X``: the smallest radius of a ball holding it, or 0."""
        if not hasattr(self, "radii_"):
            raise RuntimeError("Rarity is not fitted; call fit(X) first")
        X = _check_X(X)
        out = []
        for D in pairwise_distances_chunked(X, self.X_):
            inside = D <= self.radii_[None, :] * (1 + 1e-12)
            r = np.where(inside, self.radii_[None, :], np.inf).min(axis=1)
            out.append(np.where(np.isfinite(r), r, 0.0))
        return np.concatenate(out)

    def training_scores(self) -> np.ndarray:
        """Rarity of the training examples themselves (each lies in its own ball, so all are positive)."""
        return self.score(self.X_)
