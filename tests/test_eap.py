"""EAP's ingredients: rarity (eq. 6), k̂ (app. A.2), the squashing scaler (eq. 4), density (eq. 3), EAP (§3.2)."""
import itertools

import numpy as np
import pytest
from scipy.stats import beta as beta_dist

from calad_lib.eap import (EAP, SSDO, Rarity, SquashingScaler, density, estimate_k, expected_anomaly_posterior,
                           k_posterior, reverse_neighbour_ranks)

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
