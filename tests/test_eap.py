"""EAP's ingredients: rarity (eq. 6), k̂ (app. A.2), the squashing scaler (eq. 4), density (eq. 3), EAP (§3.2),
under calad's choices and the authors' (their subsampled EAP checked against a brute-force rewrite)."""
import itertools

import numpy as np
import pytest
from scipy.stats import beta as beta_dist

from calad_lib.eap import (EAP, SSDO, Rarity, SquashingScaler, density, estimate_k, estimate_k_normals,
                           expected_anomaly_posterior, k_posterior, reverse_neighbour_ranks)
from calad_lib.eap import rarity as E_rarity

X1 = np.array([[0.0], [1.0], [3.0], [7.0]])  # k = 1 radii: 1, 1, 2, 4


def test_rarity_by_hand_1d():
    r = Rarity(k=1).fit(X1)
    np.testing.assert_allclose(r.radii_, [1, 1, 2, 4])
    cand = np.array([[0.5], [2.5], [5.0], [10.0], [12.0], [-2.0]])
    # 0.5: balls of 0 and 1 (radius 1); 2.5: only the ball of 3 (radius 2); 5: balls of 3 (boundary) and 7;
    # 10: only the ball of 7 (radius 4); 12 and -2: outside every ball
    np.testing.assert_allclose(r.score(cand), [1, 2, 2, 4, 0, 0])


def test_rarity_by_hand_2d():
    X = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], dtype=float)
    r = Rarity(k=1).fit(X)
    np.testing.assert_allclose(r.radii_, [1, 1, 1, np.hypot(4, 5)])
    cand = np.array([[0.5, 0.5], [3, 3], [10, 10]])
    # (3, 3) is 2.83 from (5, 5) (radius 6.40) and 4.24 from (0, 0): only the big ball holds it
    np.testing.assert_allclose(r.score(cand), [1, np.hypot(4, 5), 0])


def test_rarity_matches_brute_force():
    rng = np.random.default_rng(1)
    X, C = rng.normal(size=(30, 3)), rng.normal(size=(20, 3)) * 2
    k = 4
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    radii = np.sort(D, axis=1)[:, k]  # column 0 is the point itself
    dc = np.linalg.norm(C[:, None] - X[None], axis=-1)
    want = [min([radii[i] for i in range(30) if dc[j, i] <= radii[i]], default=0.0) for j in range(20)]
    np.testing.assert_allclose(Rarity(k=k).fit(X).score(C), want)


def test_reverse_neighbour_ranks_by_hand():
    # 7 is the 3rd neighbour of 0, 1 and 3; so the smallest k whose ball of another point holds it is 3
    assert reverse_neighbour_ranks(X1, [3]).tolist() == [3]
    # 0 is the nearest neighbour of 1
    assert reverse_neighbour_ranks(X1, [0]).tolist() == [1]


def test_k_hat_is_the_posterior_percentile():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(80, 2)), rng.normal(size=(6, 2)) * 0.5 + 3])
    y = np.r_[np.zeros(80), np.ones(6)]
    n = len(X)
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    ks = []
    for m in range(80, n):  # brute force: smallest k with x_m inside the k-NN ball of some other point
        ks.append(min(k for k in range(1, n) if any(D[i, m] <= np.sort(np.delete(D[i], i))[k - 1]
                                                      for i in range(n) if i != m)))
    assert reverse_neighbour_ranks(X, np.arange(80, n)).tolist() == ks
    Ksum = sum((k - 1) / (n - 1) for k in ks)
    assert k_posterior(np.array(ks), n) == pytest.approx((1 + Ksum, 1 + 6 - Ksum))
    t = beta_dist.ppf(0.95, 1 + Ksum, 1 + 6 - Ksum)
    assert estimate_k(X, y) == int(np.ceil(1 + t * (n - 1)))
    assert Rarity().fit(X, y).k_ == estimate_k(X, y)
    assert estimate_k(X, y, quantile=0.5) <= estimate_k(X, y, quantile=0.95)


def test_rarity_errors_are_one_line():
    with pytest.raises(ValueError, match="pass y"):
        Rarity().fit(X1)
    with pytest.raises(ValueError, match="at least one labelled anomaly"):
        estimate_k(X1, np.zeros(4))
    with pytest.raises(ValueError, match="below the number"):
        Rarity(k=4).fit(X1)
    with pytest.raises(RuntimeError, match="not fitted"):
        Rarity(k=1).score(X1)


@pytest.mark.parametrize("m", [0, 1, 7, 19, 20])
def test_squashing_lambda_puts_m_examples_above_half(m):
    s = np.random.default_rng(m).random(20)
    sc = SquashingScaler().fit(s, m)
    p = sc.transform(s)
    assert (p > 0.5).sum() == m
    assert sc.transform([sc.lambda_])[0] == pytest.approx(0.5)
    assert sc.transform([0.0])[0] == 0.0 and np.all(np.diff(sc.transform(np.sort(s))) >= 0)


def test_squashing_formula_and_errors():
    sc = SquashingScaler().fit([0.0, 1.0, 2.0, 4.0], 1)  # λ midway between 4 and 2
    assert sc.lambda_ == pytest.approx(3.0)
    assert sc.transform([6.0])[0] == pytest.approx(1 - 2 ** -4)
    with pytest.raises(ValueError, match="non-negative"):
        SquashingScaler().fit([-1.0, 1.0], 1)
    with pytest.raises(ValueError, match="must lie in"):
        SquashingScaler().fit([1.0, 2.0], 3)


def test_density_by_hand():
    # Σ 1/r_train = 1 + 1 + 1/2 + 1/4 = 2.75
    got = density([1.0, 2.0, 0.0], [1.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(got, [1 / 3.75, 0.5 / 3.25, 0.0])


def test_eap_formula_by_hand():
    # (0.1 + 20·0.1·0.8) / (0.1 + 0.9 + 20·0.1) = 1.7 / 3
    assert expected_anomaly_posterior(0.1, 0.8, 20, 0.1, 0.9) == pytest.approx(1.7 / 3)
    with pytest.raises(ValueError, match="alpha0 > 0"):
        expected_anomaly_posterior(0.1, 0.8, 20, 0.0, 1.0)


def test_eap_is_the_posterior_mean_end_to_end():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(60, 2)), rng.normal(size=(6, 2)) * 0.4 + [3, 0]])
    y = np.r_[np.zeros(60), np.ones(6)]
    cand = np.array([[3.0, 0.1], [0.0, 0.0], [30.0, 30.0]])
    model = EAP(random_state=0).fit(X, y)
    c = model.components(cand)
    n, m = 66, 6
    a0, b0 = m / n, 1 - m / n
    rt = model.rarity_.training_scores()
    p_x = np.where(c.rarity > 0, (1 / np.where(c.rarity > 0, c.rarity, 1)) /
                   (1 / np.where(c.rarity > 0, c.rarity, 1) + np.sum(1 / rt)), 0.0)
    f_train = SSDO(k=10, random_state=0).fit(X, y).decision_function(X)
    lam = np.sort(f_train)[::-1][[m - 1, m]].mean()
    p_y = 1 - 2.0 ** (-(SSDO(k=10, random_state=0).fit(X, y).decision_function(cand) / lam) ** 2)
    np.testing.assert_allclose(c.density, p_x)
    np.testing.assert_allclose(c.conditional, p_y)
    np.testing.assert_allclose(c.eap, (a0 + n * p_x * p_y) / (a0 + b0 + n * p_x))
    # the far point has null density, so its EAP is the prior mean (P2)
    assert c.rarity[2] == 0 and c.eap[2] == pytest.approx(a0 / (a0 + b0))
    # a realistic anomaly beats the normal and the unrealistic point (Theorem 4.1)
    assert c.eap[0] > c.eap[2] > c.eap[1]
    # another prior
    c2 = model.components(cand, prior=(0.3, 0.7))
    np.testing.assert_allclose(c2.eap, (0.3 + n * p_x * p_y) / (1 + n * p_x))


def test_eap_properties_p1_p3():
    p_y = 0.8
    big = expected_anomaly_posterior(0.01, p_y, 1e9, 0.1, 0.9)
    assert big == pytest.approx(p_y, abs=1e-6)                                         # P1
    assert expected_anomaly_posterior(0.01, p_y, 1e-9, 0.1, 0.9) == pytest.approx(0.1)  # P2 (n → 0)
    assert expected_anomaly_posterior(0.0, p_y, 100, 0.1, 0.9) == pytest.approx(0.1)    # P2 (null density)
    dens = np.linspace(0.001, 0.5, 20)                                                  # P3
    phi = expected_anomaly_posterior(dens, 1.0, 50, 0.1, 0.9)
    np.testing.assert_allclose(phi, 1 - 0.9 / (1 + 50 * dens))
    assert np.all(np.diff(phi) > 0)


def test_eap_validation():
    with pytest.raises(ValueError, match="prior must be"):
        EAP(prior=(0.0, 1.0))
    with pytest.raises(ValueError, match="labels y"):
        EAP().fit(X1, [0, 2, 0, 1])
    with pytest.raises(ValueError, match="at least one training anomaly"):
        EAP().fit(np.random.default_rng(0).normal(size=(20, 2)), np.zeros(20))
    with pytest.raises(RuntimeError, match="not fitted"):
        EAP().score(X1)


def test_theorem_ranking_over_priors():
    """φ(U) = prior mean > φ(I) always; φ(R) > φ(U) iff the prior mean is below P(Y=1|x_R)."""
    n, pR, pI, dR, dI = 100, 0.72, 0.0, 0.02, 0.05
    for mean, strength in itertools.product(np.linspace(0.05, 0.95, 19), (0.5, 1.0, 5.0)):
        a0, b0 = mean * strength, (1 - mean) * strength
        R = expected_anomaly_posterior(dR, pR, n, a0, b0)
        U = expected_anomaly_posterior(0.0, 0.9, n, a0, b0)
        I = expected_anomaly_posterior(dI, pI, n, a0, b0)
        assert U > I
        assert (R > U) == (mean < pR)


# --- EAP as the authors' code computes it (Lorenzo-Perini/ExpectedAnomalyPosterior, EAP.py) --------------
def _dist(A, B):
    return np.linalg.norm(np.asarray(A)[:, None] - np.asarray(B)[None], axis=-1)


def brute_authors_k(N, A, start=5, q=0.95):
    """The authors' search, written out: for each anomaly the first k >= start at which an open k-NN ball of a
    normal (among normals) holds it, n0 - 1 if none; then the 95th percentile of Beta on (k - 5)/(n0 - 6)."""
    n0 = len(N)
    radius = np.sort(_dist(N, N), axis=1)        # column k: distance to the k-th other normal
    ks = []
    for a in A:
        d = np.linalg.norm(N - a, axis=1)
        k = start
        while k < n0 and not (d < radius[:, k]).any():
            k += 1
        ks.append(min(k, n0 - 1))
    K = (np.array(ks) - start) / (n0 - 1 - start)
    t = beta_dist.ppf(q, 1 + K.sum(), 1 + len(K) - K.sum())
    return ks, max(min(n0 - 1, int(t * (n0 - 1 - start) + start)), start)


def _clustered(seed=0, n=70, m=7):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) * 0.15 + [2.6, 0.3]])
    return X, np.r_[np.zeros(n, int), np.ones(m, int)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_authors_k_hat_uses_the_normals_balls_from_k_5(seed):
    X, y = _clustered(seed)
    N, A = X[y == 0], X[y == 1]
    ks, k_hat = brute_authors_k(N, A)
    ks_lib, n_k, start = E_rarity.k_hat_evidence(X, y, "authors")
    assert ks_lib.tolist() == ks and (n_k, start) == (len(N) - 1, 5) and min(ks) >= 5
    assert estimate_k_normals(N, A) == k_hat
    assert Rarity(k_rule="authors", centres="normals", closed=False).fit(X, y).k_ == k_hat
    # calad's rule lets the other anomalies' balls count: the tight cluster covers itself at k = 1
    assert reverse_neighbour_ranks(X, np.flatnonzero(y == 1)).max() < 5 <= min(ks)


def test_authors_k_hat_edge_cases():
    N = np.arange(6, dtype=float)[:, None]
    assert estimate_k_normals(N, [[2.5]]) == 5                        # n0 <= start + 1: n0 - 1
    N = np.arange(20, dtype=float)[:, None]
    far = [[1000.0]]                                                  # no ball holds it: k_m = n0 - 1
    assert E_rarity.k_hat_evidence(np.r_[N, far], np.r_[np.zeros(20), 1], "authors")[0].tolist() == [19]
    # K_m = 1: Beta(2, 1), whose 95th percentile is sqrt(0.95); k̂ = int(5 + 14 sqrt(0.95)) = 18
    assert estimate_k_normals(N, far) == brute_authors_k(N, np.array(far))[1] == int(5 + 14 * np.sqrt(0.95)) == 18


def test_open_and_closed_balls_by_hand():
    # k = 1 radii 1, 1, 2, 4; 5.0 is on the boundary of the ball of 3 and inside the ball of 7
    closed, opened = Rarity(k=1).fit(X1), Rarity(k=1, closed=False).fit(X1)
    cand = np.array([[5.0], [11.0], [0.5]])
    np.testing.assert_allclose(closed.score(cand), [2, 4, 1])
    np.testing.assert_allclose(opened.score(cand), [4, 0, 1])          # boundaries are outside open balls
    normals_only = Rarity(k=1, centres="normals").fit(X1, [0, 0, 1, 0])
    np.testing.assert_allclose(normals_only.radii_, [1, 1, 6])         # balls around 0, 1 and 7 only


def test_density_lets_null_training_rarity_count_zero():
    np.testing.assert_allclose(density([1.0, 0.0], [1.0, 0.0, 2.0], strict=False), [1 / 2.5, 0.0])
    with pytest.raises(ValueError, match="must be positive"):
        density([1.0], [1.0, 0.0])


def test_percentile_threshold_by_hand():
    s = np.arange(20) / 19.0
    # m/n = 0.05: the 95th percentile, position 0.95 * 19 = 18.05 between the two largest scores
    sc = SquashingScaler("percentile").fit(s, 1)
    assert sc.lambda_ == pytest.approx(s[18] + 0.05 * (s[19] - s[18]))
    s = np.sort(np.random.default_rng(0).random(40))
    # m/n = 0.075: 100 (1 - 0.075) = 92.5 is truncated to the 92nd percentile, position 0.92 * 39 = 35.88
    sc = SquashingScaler("percentile").fit(s, 3)
    assert sc.lambda_ == pytest.approx(s[35] + 0.88 * (s[36] - s[35]))
    assert SquashingScaler("percentile").fit(s, 3, contamination=0.5).lambda_ == pytest.approx(np.median(s))
    with pytest.raises(ValueError, match="unknown threshold rule"):
        SquashingScaler("otsu")


def brute_subset_eap(X, y, keep, C, seed):
    """EAP of one subsample as the authors' EAP.train_data_values computes it, ingredient by ingredient."""
    n, m = len(y), int(y.sum())
    Xb, yb = X[keep], y[keep]
    det = SSDO(k=min(10, len(Xb) - 1), random_state=seed, prior="minmax").fit(Xb, yb)
    lam = np.percentile(det.decision_function(Xb), int((1.0 - m / n) * 100))
    p_y = 1 - 2.0 ** (-(det.decision_function(C) / lam) ** 2)
    N = Xb[yb == 0]
    _, k = brute_authors_k(N, X[y == 1])
    radii = np.sort(_dist(N, N), axis=1)[:, k]

    def rarity(P):
        D = _dist(P, N)
        return np.array([radii[row < radii].min() if (row < radii).any() else 0.0 for row in D])

    r_train, r_c = rarity(N), rarity(C)
    total = sum(1 / r for r in r_train if r > 0)
    inv = np.array([1 / r if r > 0 else 0.0 for r in r_c])
    p_x = inv / (inv + total)
    return (m / n + len(N) * p_y * p_x) / (1 + len(N) * p_x)


def test_eap_averages_over_subsamples_as_the_authors():
    X, y = _clustered(4, n=60, m=6)
    C = np.array([[2.5, 0.2], [0.0, 0.1], [9.0, 9.0], [1.5, -1.0]])
    model = EAP(detector=SSDO(k=10, random_state=2, prior="minmax"), k_rule="authors", centres="normals",
                closed=False, threshold="percentile", subsets=3, random_state=5).fit(X, y)
    assert model.masks_.shape == (3, len(y)) and len({m.tobytes() for m in model.masks_}) == 3
    low = (5 + 1 + 6) / len(y)
    assert all(keep.mean() > low / 3 for keep in model.masks_)                 # p is drawn from U(low, 0.99)
    want = np.mean([brute_subset_eap(X, y, keep, C, 2) for keep in model.masks_], axis=0)
    np.testing.assert_allclose(model.score(C), want, rtol=1e-10)
    assert model.score(C)[2] == pytest.approx(6 / 66)                          # null density everywhere: m/n
    again = EAP(detector=SSDO(k=10, random_state=2, prior="minmax"), k_rule="authors", centres="normals",
                closed=False, threshold="percentile", subsets=3, random_state=5).fit(X, y)
    assert np.array_equal(again.masks_, model.masks_)                          # seeded
    # the other prior reuses the same subsamples
    c2 = model.components(C, prior=(0.3, 0.7)).eap
    assert not np.allclose(c2, model.score(C)) and c2[2] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="subsets must be"):
        EAP(subsets=-1)
