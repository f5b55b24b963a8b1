"""SSDO and the adapted data valuation baselines, checked against brute force on tiny sets."""
import itertools
import math

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from calad_lib.eap import METHODS, SSDO, SquashingScaler, get_method
from calad_lib.eap import valuation as V


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(40, 2)), rng.normal(size=(4, 2)) * 0.3 + [2.5, 0]])
    y = np.r_[np.zeros(40, int), np.ones(4, int)]
    A = np.array([[2.4, 0.2], [0.1, -0.2], [9.0, 9.0], [2.0, -0.5], [-0.5, 0.5]])
    return X, y, A, SSDO(k=5, random_state=0).fit(X, y)


# --- SSDO -----------------------------------------------------------------------------------------
def test_ssdo_ranks_obvious_anomalies_first():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(200, 3)), [[8, 8, 8], [-9, 7, 0], [0, -10, 6]]])
    scores = SSDO(k=10).fit(X).decision_function(X)  # unsupervised: the prior alone
    assert set(np.argsort(scores)[-3:]) == {200, 201, 202}
    assert scores.min() >= 0 and scores.max() <= 1


def test_ssdo_label_propagation_by_hand(tiny):
    X, y, A, det = tiny
    x = A[:2]
    w = 2.0 ** (-(np.linalg.norm(x[:, None] - X[None], axis=-1) / det.eta_) ** 2)
    p = det.prior(x)
    want = (p + 2.3 * w[:, y == 1].sum(1)) / (1 + 2.3 * w.sum(1))
    np.testing.assert_allclose(det.decision_function(x), want)
    # a point next to the labelled anomalies scores above a point among the normals
    assert want[0] > want[1]
    # eta is the harmonic mean of the 5-NN distances
    D = np.sort(np.linalg.norm(X[:, None] - X[None], axis=-1), axis=1)[:, 5]
    assert det.eta_ == pytest.approx(len(D) / np.sum(1 / D))


def test_ssdo_errors():
    with pytest.raises(ValueError, match="k must be"):
        SSDO(k=0)
    with pytest.raises(ValueError, match="labels y"):
        SSDO().fit(np.zeros((20, 2)), np.full(20, 2))
    with pytest.raises(ValueError, match="NaN"):
        SSDO().fit(np.full((20, 2), np.nan))
    with pytest.raises(RuntimeError, match="not fitted"):
        SSDO().decision_function(np.zeros((3, 2)))


# --- the SSDO utility, LOO ------------------------------------------------------------------------
def brute_utility(det, X, y, A, subset):
    """AUROC on the training set of SSDO trained on D ∪ A[subset], each example scored without its own label."""
    scores = []
    for i in range(len(X)):
        da = dn = 0.0
        for j in range(len(X)):
            if j == i:
                continue
            w = 2.0 ** (-(np.linalg.norm(X[i] - X[j]) / det.eta_) ** 2)
            da, dn = (da + w, dn) if y[j] == 1 else (da, dn + w)
        for a in subset:
            da += 2.0 ** (-(np.linalg.norm(X[i] - A[a]) / det.eta_) ** 2)
        p = det.prior(X[i:i + 1])[0]
        scores.append((p + det.alpha * da) / (1 + det.alpha * (da + dn)))
    return roc_auc_score(y, scores)


def test_utility_and_loo_match_brute_force(tiny):
    X, y, A, det = tiny
    u = V.SSDOUtility(det, X, y, A)
    for subset in ([], [0], [1, 3], [0, 1, 2, 3, 4]):
        z = np.zeros(len(A))
        z[subset] = 1
        assert u(z)[0] == pytest.approx(brute_utility(det, X, y, A, subset))
    base = brute_utility(det, X, y, A, [])
    want = [brute_utility(det, X, y, A, [a]) - base for a in range(len(A))]
    np.testing.assert_allclose(V.loo(u), want, atol=1e-12)


def test_batched_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(2)
    y = rng.random(50) < 0.3
    S = rng.integers(0, 4, size=(6, 50)).astype(float)  # many ties
    np.testing.assert_allclose(V.batched_auroc(y, S), [roc_auc_score(y, s) for s in S])


def test_msr_over_all_subsets_is_the_exact_banzhaf_value():
    l = 4
    Z = np.array(list(itertools.product([0, 1], repeat=l)), dtype=bool)
    rng = np.random.default_rng(3)
    table = {tuple(z): rng.random() for z in Z}
    u = np.array([table[tuple(z)] for z in Z])
    exact = []
    for a in range(l):
        diffs = [table[tuple(np.where(np.arange(l) == a, 1, z))] - table[tuple(z)] for z in Z if not z[a]]
        exact.append(np.mean(diffs))
    np.testing.assert_allclose(V._msr(Z, u), exact)


class _LinearUtility:
    """A fake utility ``U(Z) = Z @ w`` for checking the estimators recover the per-point effect."""

    def __init__(self, w):
        self.w = np.asarray(w, float)
        self.W_aux = np.zeros((1, len(w)))

    def __call__(self, Z):
        return np.atleast_2d(Z).astype(float) @ self.w


def test_sampling_estimators_recover_an_additive_utility():
    w = np.array([0.5, -0.3, 0.0, 0.2, 0.8, -0.6])
    u = _LinearUtility(w)
    assert np.corrcoef(V.banzhaf(u, n_models=400), w)[0, 1] > 0.95
    assert np.corrcoef(V.influence_subsample(u, n_models=400), w)[0, 1] > 0.95
    coef = V.ame(u, n_models=200)
    assert np.argmax(coef) == 4 and np.argmin(coef) == 5


# --- KNN-Shapley ----------------------------------------------------------------------------------
def brute_shapley(d, y_players, y_test, k):
    N = len(d)

    def U(S):
        S = sorted(S, key=lambda i: d[i])[:k]
        return sum(y_players[i] == y_test for i in S) / k

    phi = np.zeros(N)
    for perm in itertools.permutations(range(N)):
        for pos, i in enumerate(perm):
            phi[i] += U(perm[:pos + 1]) - U(perm[:pos])
    return phi / math.factorial(N)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_knn_shapley_closed_form_matches_enumeration(k):
    rng = np.random.default_rng(k)
    Xp, yp = rng.normal(size=(6, 2)), np.array([0, 1, 1, 0, 1, 0])
    Xv, yv = rng.normal(size=(3, 2)), np.array([1, 0, 1])
    per_point = []
    for x, t in zip(Xv, yv):
        d = np.linalg.norm(Xp - x, axis=1)
        want = brute_shapley(d, yp, t, k)
        np.testing.assert_allclose(V.knn_shapley_single(d, yp, t, k), want, atol=1e-12)
        per_point.append(want)
    np.testing.assert_allclose(V.knn_shapley(Xp, yp, Xv, yv, k=k), np.mean(per_point, 0), atol=1e-12)


def test_knn_shapley_excluding_self():
    rng = np.random.default_rng(5)
    Xv, yv = rng.normal(size=(3, 2)), np.array([0, 1, 0])
    Xa = rng.normal(size=(3, 2))
    Xp, yp = np.vstack([Xv, Xa]), np.r_[yv, 1, 1, 1]
    want = np.zeros(6)
    for t in range(3):
        others = [i for i in range(6) if i != t]
        d = np.linalg.norm(Xp[others] - Xv[t], axis=1)
        want[others] += brute_shapley(d, yp[others], yv[t], 2)
    np.testing.assert_allclose(V.knn_shapley(Xp, yp, Xv, yv, k=2, exclude_self=True), want / 3, atol=1e-12)


# --- Data-OOB ---------------------------------------------------------------------------------------
def test_data_oob_matches_a_loop_over_bags(tiny):
    X, y, A, det = tiny
    B = 8
    got = V.data_oob(det, X, y, A, n_models=B, random_state=4)
    rng = np.random.default_rng(4)
    XP, yP = np.vstack([X, A]), np.r_[y, np.ones(len(A), int)]
    N = len(XP)
    sums, seen = np.zeros(len(A)), np.zeros(len(A))
    for _ in range(B):
        bag = rng.integers(0, N, N)
        for a in range(len(A)):
            if (bag == len(X) + a).any():
                continue
            w = 2.0 ** (-(np.linalg.norm(XP[bag] - A[a], axis=1) / det.eta_) ** 2)
            da, dn = w[yP[bag] == 1].sum(), w[yP[bag] == 0].sum()
            p = det.prior(A[a:a + 1])[0]
            sums[a] += (p + det.alpha * da) / (1 + det.alpha * (da + dn))
            seen[a] += 1
    want = np.where(seen > 0, sums / np.maximum(seen, 1), np.nan)
    want = np.where(np.isnan(want), np.nanmean(want), want)
    np.testing.assert_allclose(got, want)


# --- LAVA ---------------------------------------------------------------------------------------------
def test_sinkhorn_marginals_and_domains_agree():
    rng = np.random.default_rng(6)
    C = np.linalg.norm(rng.normal(size=(30, 2))[:, None] - rng.normal(size=(20, 2))[None], axis=-1) ** 2
    eps = 0.1 * C.mean()
    f, g = V.sinkhorn_potentials(C, eps, tol=1e-10)
    P = np.exp((f[:, None] + g[None] - C) / eps) / (30 * 20)
    np.testing.assert_allclose(P.sum(1), 1 / 30, rtol=1e-6)
    np.testing.assert_allclose(P.sum(0), 1 / 20, rtol=1e-6)
    # adding a constant forces the log domain; the potentials move by constants only
    f2, g2 = V.sinkhorn_potentials(C + 1000 * eps, eps, tol=1e-10)
    assert np.ptp(f2 - f) < 1e-6 and np.ptp(g2 - g) < 1e-6


def test_lava_prefers_points_that_look_like_the_validation_anomalies(tiny):
    X, y, A, _ = tiny
    v = V.lava(X, y, A)
    assert v.shape == (5,)
    assert v[0] > v[2]  # next to the training anomalies beats a far-away point


# --- the common interface ---------------------------------------------------------------------------
def test_every_method_scores_every_auxiliary_anomaly(tiny):
    X, y, A, det = tiny
    for name in METHODS + ("EAP_0.2",):
        q = get_method(name).score_auxiliary(X, y, A, detector=det, random_state=0)
        assert q.shape == (len(A),) and np.isfinite(q).all(), name
    q1 = get_method("RandomEV").score_auxiliary(X, y, A, random_state=1)
    assert np.array_equal(q1, get_method("RandomEV").score_auxiliary(X, y, A, random_state=1))
    with pytest.raises(ValueError, match="unknown method"):
        get_method("Shapley")
    with pytest.raises(ValueError, match="EAP_<w>"):
        get_method("EAP_2")


# --- SSDO as the authors set it up (Notebook.ipynb: anomatools' SSDO, pyod's IForest, SquashScaler) ---------
def test_minmax_prior_is_the_min_max_scaled_forest_score():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 3))
    Xt = np.r_[X[:10], rng.normal(size=(10, 3)) * 6]                   # far points score beyond the training max
    det = SSDO(k=10, random_state=3, prior="minmax").fit(X)
    forest = IsolationForest(n_estimators=100, random_state=3).fit(X)
    raw_train, raw = -forest.score_samples(X), -forest.score_samples(Xt)
    want = np.clip((raw - raw_train.min()) / (raw_train.max() - raw_train.min()), 0, 1)
    np.testing.assert_allclose(det.prior(Xt), want)
    assert det.prior(X).min() == 0 and det.prior(X).max() == 1 and (det.prior(Xt) == 1).any()
    squashed = SSDO(k=10, random_state=3).fit(X).prior(Xt)
    assert not np.allclose(squashed, want)
    with pytest.raises(ValueError, match="unknown SSDO prior"):
        SSDO(prior="rank")


class _ForestBase:
    """pyod's IForest with the fit signature anomatools calls (as the authors' notebook wraps it)."""

    def __init__(self, random_state):
        from pyod.models.iforest import IForest

        self.model = IForest(random_state=random_state)

    def fit(self, X, sample_weight=None):
        self.model.fit(X)
        return self

    def predict_proba(self, X):
        return self.model.predict_proba(X)


@pytest.mark.parametrize("seed", [0, 1])
def test_authors_ssdo_matches_anomatools_with_pyod(seed):
    pytest.importorskip("pyod")
    models = pytest.importorskip("anomatools.models")
    from anomatools.models.scalers import SquashScaler

    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(size=(150, 3)), rng.normal(4, 0.7, size=(9, 3))]
    y = np.r_[np.zeros(150, int), np.ones(9, int)]
    Xt = np.r_[X, rng.normal(2, 3, size=(40, 3))]
    c = 9 / 159
    ref = models.SSDO(k=10, alpha=2.3, base_detector=_ForestBase(seed), scaler=SquashScaler(contamination=c))
    ref.fit(X, np.where(y == 1, 1, -1))
    ours = SSDO(k=10, random_state=seed, prior="minmax").fit(X, y)
    np.testing.assert_allclose(ours.prior(Xt), ref.base_detector.predict_proba(Xt)[:, 1], atol=1e-12)
    np.testing.assert_allclose(ours.decision_function(Xt), ref.decision_function(Xt), atol=1e-12)
    scaler = SquashingScaler("percentile").fit(ours.decision_function(X), 9)
    np.testing.assert_allclose(scaler.transform(ours.decision_function(Xt)), ref.predict_proba(Xt)[:, 1], atol=1e-12)
