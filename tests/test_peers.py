"""Parity with the peer libraries, on random and edge-case inputs (the optional extra ``peers``).

* β calibration against ``betacal`` (Kull et al.'s package, parameters ``abm``): probabilities within 1e-3;
* ECE and MCE against ``netcal``. calad's bins are right-closed, ``(a, b]`` (a probability of exactly
  0.5 falls in the bin that ends at 0.5), netcal's are left-closed, ``[a, b)``; the two agree wherever
  no probability sits exactly on a bin edge, which is where they are compared;
* SSDO against ``anomatools`` (Vercruyssen et al.'s package) given the same prior;
* AUROC against scikit-learn.

``make test-peers`` installs the extra and runs this file; without the packages it is skipped.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from calad_lib import metrics
from calad_lib.calibration import BetaCalibration
from calad_lib.eap.ssdo import SSDO

betacal = pytest.importorskip("betacal")
netcal_metrics = pytest.importorskip("netcal.metrics")
anomatools_models = pytest.importorskip("anomatools.models")
pytestmark = pytest.mark.peers


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


_CASES = {"balanced": ((5, 2), (2, 5), 0.5), "imbalanced": ((5, 2), (2, 5), 0.1),
          "skewed": ((3, 1), (1, 2), 0.5), "tight": ((9, 3), (3, 9), 0.3)}


def _scores(seed: int, case: str, n: int = 1000):
    rng = np.random.default_rng(seed)
    anomalous, normal, rate = _CASES[case]
    y = (rng.random(n) < rate).astype(int)
    s = np.where(y == 1, rng.beta(*anomalous, n), rng.beta(*normal, n))
    return np.clip(s, 1e-6, 1 - 1e-6), y


def _betacal_fit(s, y, converged: bool):
    """betacal's abm fit; ``converged`` runs its logistic regressions to a tight tolerance.

    betacal fits with scikit-learn's default solver tolerance (1e-4), which stops short of the
    optimum on many inputs (up to 0.03 apart in probability here); with a tight tolerance its
    algorithm, feature clipping and refits included, is compared with ours.
    """
    from functools import partial

    from betacal import beta_calibration as bc

    original = bc.LogisticRegression
    if converged:
        bc.LogisticRegression = partial(original, tol=1e-12, max_iter=100_000)
    try:
        ref = betacal.BetaCalibration(parameters="abm")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.fit(s, y)
    finally:
        bc.LogisticRegression = original
    return ref


def _loss(p, y):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


@pytest.mark.parametrize("case", list(_CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beta_calibration_matches_betacal_abm(seed, case):
    s, y = _scores(seed, case)
    ours = BetaCalibration("stable").fit(_logit(s), y)
    grid = np.r_[np.linspace(1e-4, 1 - 1e-4, 401), s]
    ref = _betacal_fit(s, y, converged=True)
    np.testing.assert_allclose(ours.predict_proba(_logit(grid)), ref.predict(grid), atol=1e-3)
    as_shipped = _betacal_fit(s, y, converged=False)   # stops early: never a better fit than ours
    assert _loss(ours.predict_proba(_logit(s)), y) <= _loss(as_shipped.predict(s), y) + 1e-9


def test_betacal_breaks_its_own_constraint_on_reversed_scores():
    """When normals score high, betacal drops ln η̂ and refits, and keeps a negative b: a decreasing map.
    calad keeps a, b ≥ 0 (β calibration is monotone by definition) and returns the base rate."""
    rng = np.random.default_rng(1)
    y = (rng.random(600) < 0.5).astype(int)
    s = np.clip(np.where(y == 1, rng.beta(2, 5, 600), 0.6 * rng.beta(5, 1.2, 600)), 1e-6, 1 - 1e-6)
    a, b, _ = _betacal_fit(s, y, converged=True).calibrator_.map_
    assert a == 0 and b < 0
    ours = BetaCalibration("stable").fit(_logit(s), y)
    assert ours.a_ >= 0 and ours.b_ >= 0


@pytest.mark.parametrize("bins", [5, 10, 15])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_and_mce_match_netcal_away_from_bin_edges(seed, bins):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, 3000)
    edges = np.linspace(0, 1, bins + 1)
    p = p[np.min(np.abs(p[:, None] - edges[None, :]), axis=1) > 1e-9]   # none on an edge
    y = (rng.random(len(p)) < p ** 1.4).astype(int)
    assert metrics.ece(y, p, bins) == pytest.approx(netcal_metrics.ECE(bins=bins).measure(p, y), abs=1e-12)
    assert metrics.mce(y, p, bins) == pytest.approx(netcal_metrics.MCE(bins=bins).measure(p, y), abs=1e-12)


def test_the_bin_edge_convention_is_right_closed():
    """An estimate of exactly 0.5 belongs to the bin (0.4, 0.5] in calad (netcal puts it in [0.5, 0.6))."""
    r = metrics.reliability(np.array([1]), np.array([0.5]), 10)
    hit = r[r["count"] > 0]
    assert len(hit) == 1 and hit["lower"].iloc[0] == pytest.approx(0.4) and hit["upper"].iloc[0] == pytest.approx(0.5)


class _SamePrior:
    """A base detector for anomatools that returns calad's SSDO prior."""

    def __init__(self, ours: SSDO):
        self.ours = ours

    def fit(self, X, y=None, sample_weight=None):
        return self

    def predict_proba(self, X):
        p = self.ours.prior(X)
        return np.c_[1 - p, p]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssdo_label_propagation_matches_anomatools_with_the_same_prior(seed):
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(size=(150, 3)), rng.normal(4, 0.7, size=(12, 3))]
    y = np.r_[np.zeros(150), np.ones(12)]
    labelled = rng.random(len(y)) < 0.3
    ours = SSDO(k=10, alpha=2.3).fit(X, y, labelled)
    feedback = np.where(labelled, np.where(y == 1, 1, -1), 0)          # anomatools: 1 anomaly, -1 normal, 0 unknown
    ref = anomatools_models.SSDO(k=10, alpha=2.3, base_detector=_SamePrior(ours)).fit(X, feedback)
    Xt = np.r_[X, rng.normal(2, 2, size=(40, 3))]
    np.testing.assert_allclose(ours.decision_function(Xt), ref.decision_function(Xt), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_matches_scikit_learn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(y, 1.0), 1)                                  # many ties
    assert metrics.auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
