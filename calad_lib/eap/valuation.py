"""Data valuation methods adapted to auxiliary anomalies (EAP paper, §5.1 and app. A.1).

Each method values the auxiliary anomalies ``A`` (all labelled 1) added to the training
set ``D``; the training set doubles as validation set, as in the paper (``m ≪ n``, so
``D`` is not split). Utility-based methods use the paper's detector, SSDO:

    ``U(S)`` = AUROC on ``D`` of SSDO trained on ``D ∪ S`` (``S ⊆ A``),

where every training example is scored *without its own label* (otherwise a labelled
example would validate itself). SSDO's Isolation Forest prior and its scale ``η`` are
fitted once on ``D``; the set ``S`` enters through label propagation, so ``U`` is a sum of
weight matrices and many subsets are evaluated in one batched product.

=============  ==========================================================================
LOO            ``U(D ∪ {a}) − U(D)``: the change from adding ``a`` alone
DataBanzhaf    mean ``U`` of random subsets with ``a`` minus without (each point kept w.p. ½)
INF            the same difference over subsets of 70 % of ``A`` (Feldman & Zhang)
AME            Lasso coefficients of ``U`` regressed on ±1/p inclusion indicators (Lin et al.)
KNNShap        exact Shapley value of the k-NN utility (Jia et al. 2019, Theorem 1)
DataOOB        mean out-of-bag SSDO score of ``a`` over bootstrap bags of ``D ∪ A``
LAVA           minus the calibrated gradient of the entropic OT dual between ``D ∪ A`` and ``D``
=============  ==========================================================================
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LassoCV
from sklearn.metrics import pairwise_distances

from .ssdo import SSDO

__all__ = ["SSDOUtility", "batched_auroc", "loo", "banzhaf", "influence_subsample", "ame",
           "knn_shapley", "knn_shapley_single", "data_oob", "lava", "sinkhorn_potentials"]


def batched_auroc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``scores`` (shape ``(B, n)``) against the labels ``y`` (ties count ½)."""
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), y.size
    if m == 0 or m == n:
        raise ValueError("AUROC needs both classes in y")
    ranks = rankdata(np.atleast_2d(scores), axis=1)
    return (ranks[:, y].sum(axis=1) - m * (m + 1) / 2) / (m * (n - m))


class SSDOUtility:
    """``U(Z)`` for inclusion vectors ``Z`` (shape ``(B, l)``, 0/1 or counts) of the auxiliary anomalies."""

    def __init__(self, detector: SSDO, X_train, y_train, X_aux):
        y = np.asarray(y_train).astype(int)
        self.y = y
        self.alpha = detector.alpha
        self.prior = detector.prior(X_train)
        W = detector.weights(X_train, X_train)
        np.fill_diagonal(W, 0.0)  # leave-self-out validation
        self.base_a = W[:, y == 1].sum(axis=1)
        self.base_n = W[:, y == 0].sum(axis=1)
        self.W_aux = detector.weights(X_train, X_aux)  # (n, l)

    def scores(self, Z) -> np.ndarray:
        Z = np.atleast_2d(np.asarray(Z, dtype=float))
        da = self.base_a[None, :] + Z @ self.W_aux.T
        return SSDO.combine(self.prior[None, :], da, self.base_n[None, :], self.alpha)

    def __call__(self, Z) -> np.ndarray:
        return batched_auroc(self.y, self.scores(Z))


def loo(utility: SSDOUtility) -> np.ndarray:
    """Leave-one-out, adapted: ``U({a}) − U(∅)`` for each auxiliary anomaly."""
    l = utility.W_aux.shape[1]
    u = utility(np.vstack([np.zeros((1, l)), np.eye(l)]))
    return u[1:] - u[0]


def _msr(Z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Maximum-sample-reuse difference: mean utility of subsets with each point minus without."""
    inc = Z.astype(bool)
    n_in, n_out = inc.sum(0), (~inc).sum(0)
    mean_in = np.divide(u @ inc, n_in, out=np.zeros(Z.shape[1]), where=n_in > 0)
    mean_out = np.divide(u @ ~inc, n_out, out=np.zeros(Z.shape[1]), where=n_out > 0)
    return np.where((n_in > 0) & (n_out > 0), mean_in - mean_out, 0.0)


def banzhaf(utility: SSDOUtility, n_models: int = 50, random_state: int = 0) -> np.ndarray:
    """Data Banzhaf (Wang & Jia 2023) by maximum sample reuse over ``n_models`` uniform random subsets."""
    rng = np.random.default_rng(random_state)
    Z = rng.random((n_models, utility.W_aux.shape[1])) < 0.5
    return _msr(Z, utility(Z))


def influence_subsample(utility: SSDOUtility, n_models: int = 50, proportion: float = 0.7,
                        random_state: int = 0) -> np.ndarray:
    """Subsampled influence (Feldman & Zhang 2020): with-minus-without over subsets of ``proportion`` of A."""
    rng = np.random.default_rng(random_state)
    l = utility.W_aux.shape[1]
    size = max(1, min(l - 1, int(round(proportion * l)))) if l > 1 else 1
    Z = np.zeros((n_models, l), dtype=bool)
    for b in range(n_models):
        Z[b, rng.choice(l, size=size, replace=False)] = True
    return _msr(Z, utility(Z))


def ame(utility: SSDOUtility, n_models: int = 50, random_state: int = 0) -> np.ndarray:
    """Average marginal effect (Lin et al. 2022): Lasso on ``(z − p)/(p(1 − p))`` with p ∈ {0.2, 0.4, 0.6, 0.8}."""
    rng = np.random.default_rng(random_state)
    l = utility.W_aux.shape[1]
    p = np.resize([0.2, 0.4, 0.6, 0.8], n_models)[:, None]
    Z = rng.random((n_models, l)) < p
    u = utility(Z)
    if np.ptp(u) == 0:
        return np.zeros(l)
    features = (Z - p) / (p * (1 - p))
    lasso = LassoCV(cv=min(5, n_models), random_state=random_state, max_iter=5000).fit(features, u - u.mean())
    return lasso.coef_


def knn_shapley_single(d: np.ndarray, y_players: np.ndarray, y_test: int, k: int) -> np.ndarray:
    """Exact KNN-Shapley values of all players for one test point (Jia et al. 2019, Theorem 1)."""
    N = len(d)
    order = np.argsort(d, kind="stable")
    match = (np.asarray(y_players)[order] == y_test).astype(float)
    s = np.empty(N)
    s[N - 1] = match[N - 1] / N
    for i in range(N - 2, -1, -1):  # position i holds the (i+1)-th nearest player
        s[i] = s[i + 1] + (match[i] - match[i + 1]) / k * min(k, i + 1) / (i + 1)
    out = np.empty(N)
    out[order] = s
    return out


def knn_shapley(X_players, y_players, X_val, y_val, k: int = 10, exclude_self: bool = False) -> np.ndarray:
    """Mean exact KNN-Shapley value of each player over the validation points (vectorised recursion).

    ``exclude_self``: the first ``len(X_val)`` players are the validation points themselves,
    and each validation point does not play in its own game.
    """
    D = pairwise_distances(np.asarray(X_val, float), np.asarray(X_players, float))
    nv, N = D.shape
    y_players = np.asarray(y_players)
    if exclude_self:
        D[np.arange(nv), np.arange(nv)] = np.inf
    order = np.argsort(D, axis=1, kind="stable")
    if exclude_self:
        order = order[:, :-1]  # self sorts last
    M = order.shape[1]
    match = (y_players[order] == np.asarray(y_val)[:, None]).astype(float)
    i = np.arange(1, M)  # 1-based positions 1..M-1
    steps = (match[:, :-1] - match[:, 1:]) * (np.minimum(k, i) / (k * i))[None, :]
    s = np.empty((nv, M))
    s[:, M - 1] = match[:, M - 1] / M
    s[:, :-1] = s[:, [M - 1]] + np.cumsum(steps[:, ::-1], axis=1)[:, ::-1]
    values = np.zeros((nv, N))
    np.put_along_axis(values, order, s, axis=1)
    return values.mean(axis=0)


def data_oob(detector: SSDO, X_train, y_train, X_aux, n_models: int = 50, random_state: int = 0) -> np.ndarray:
    """Data-OOB (Kwon & Zou 2023): mean SSDO score of ``a`` from bags of ``D ∪ A`` that left ``a`` out.

    The in-bag examples are SSDO's labelled set (with multiplicities); the score of an
    anomaly is its soft correctness. Points never out of bag get the mean value.
    """
    rng = np.random.default_rng(random_state)
    y = np.asarray(y_train).astype(int)
    n, l = len(y), len(X_aux)
    y_players = np.concatenate([y, np.ones(l, dtype=int)])
    W = detector.weights(X_aux, np.vstack([X_train, X_aux]))  # (l, n + l)
    prior = detector.prior(X_aux)
    counts = np.stack([np.bincount(rng.integers(0, n + l, n + l), minlength=n + l) for _ in range(n_models)])
    da = counts[:, y_players == 1] @ W[:, y_players == 1].T     # (B, l)
    dn = counts[:, y_players == 0] @ W[:, y_players == 0].T
    f = SSDO.combine(prior[None, :], da, dn, detector.alpha)
    oob = counts[:, n:] == 0
    total, seen = (f * oob).sum(0), oob.sum(0)
    values = np.divide(total, seen, out=np.full(l, np.nan), where=seen > 0)
    return np.where(np.isnan(values), np.nanmean(values) if np.isfinite(values).any() else 0.0, values)


def sinkhorn_potentials(C: np.ndarray, eps: float, n_iter: int = 2000, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Dual potentials ``(f, g)`` of entropic OT with uniform marginals (Sinkhorn).

    The plan is ``P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)``. Iterates in the exponential
    domain (two matrix-vector products per step) when ``max C/ε`` is safe for float64,
    else in the log domain; stops when the row marginals are within a relative ``tol``.
    """
    C = np.asarray(C, dtype=np.float64)
    n, m = C.shape
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    if C.max() / eps < 600:
        K = np.exp(-C / eps)
        v = np.ones(m)
        for _ in range(n_iter):
            u = a / (K @ v)
            v = b / (K.T @ u)
            if np.max(np.abs(u * (K @ v) - a)) < tol / n:
                break
        return eps * np.log(u / a), eps * np.log(v / b)

    def lse(A, axis):
        mx = A.max(axis=axis, keepdims=True)
        return (mx + np.log(np.exp(A - mx).sum(axis=axis, keepdims=True))).squeeze(axis)

    f, g = np.zeros(n), np.zeros(m)
    for _ in range(n_iter):
        f_new = -eps * lse((g[None, :] - C) / eps + np.log(b)[None, :], 1)
        g = -eps * lse((f_new[:, None] - C) / eps + np.log(a)[:, None], 0)
        done = np.max(np.abs(f_new - f)) < tol * eps
        f = f_new
        if done:
            break
    return f, g


def _wasserstein2(Xa: np.ndarray, Xb: np.ndarray, eps_rel: float, max_points: int = 250) -> float:
    """Entropic squared 2-Wasserstein distance of two clouds (each subsampled to ``max_points``, fixed seed)."""
    if len(Xa) == 0 or len(Xb) == 0:
        return 0.0
    rng = np.random.default_rng(0)
    if len(Xa) > max_points:
        Xa = Xa[rng.choice(len(Xa), max_points, replace=False)]
    if len(Xb) > max_points:
        Xb = Xb[rng.choice(len(Xb), max_points, replace=False)]
    C = pairwise_distances(Xa, Xb, metric="sqeuclidean")
    f, g = sinkhorn_potentials(C, eps_rel * max(C.mean(), 1e-12))
    return float(f.mean() + g.mean())


def lava(X_train, y_train, X_aux, eps_rel: float = 0.1) -> np.ndarray:
    """LAVA (Just et al. 2023): minus the calibrated gradient of the OT dual, players ``D ∪ A`` vs validation ``D``.

    The cost is the OTDD cost: squared feature distance plus the squared Wasserstein
    distance between the two points' class-conditional clouds. ε = ``eps_rel`` × mean cost.
    """
    X_train, X_aux = np.asarray(X_train, float), np.asarray(X_aux, float)
    y = np.asarray(y_train).astype(int)
    n, l = len(y), len(X_aux)
    XP = np.vstack([X_train, X_aux])
    yP = np.concatenate([y, np.ones(l, dtype=int)])
    label_cost = np.array([[_wasserstein2(XP[yP == c], X_train[y == c2], eps_rel) for c2 in (0, 1)] for c in (0, 1)])
    C = pairwise_distances(XP, X_train, metric="sqeuclidean") + label_cost[yP][:, y]
    f, _ = sinkhorn_potentials(C, eps_rel * max(C.mean(), 1e-12))
    N = n + l
    gradient = f - (f.sum() - f) / (N - 1)
    return -gradient[n:]
