"""The numerical checks of chapter 2 / appendix A: they must confirm what is true and expose what is not."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from calad_lib import theory as T

ETAS = np.linspace(0.02, 0.98, 25)


@pytest.mark.parametrize("name", ["log", "logistic", "hsc", "brier"])
def test_strictly_proper_losses_are_minimised_at_eta(name):
    ev = T.check_propriety(T.LOSSES[name], ETAS)
    assert ev["minimiser_error"] < 1e-6
    assert ev["strictly_proper"]


def test_absolute_error_is_caught_as_improper():
    ev = T.check_propriety(T.LOSSES["absolute"], ETAS)
    assert not ev["proper"]
    # its minimiser is the majority class: 0 below 1/2, 1 above
    m = T.risk_minimiser(T.LOSSES["absolute"], np.array([0.2, 0.8]))
    np.testing.assert_allclose(m, [0.0, 1.0], atol=1e-6)
    assert ev["min_calibration_term"] < -0.05


def test_brier_calibration_term_is_squared_error():
    q = np.linspace(0.01, 0.99, 50)
    lc = T.calibration_term(T.LOSSES["brier"], ETAS[:, None], q[None, :])
    np.testing.assert_allclose(lc, (q[None, :] - ETAS[:, None]) ** 2, atol=1e-12)


def test_links_are_inverse_pairs():
    q = np.linspace(0.001, 0.999, 101)
    for loss in T.LOSSES.values():
        np.testing.assert_allclose(loss.inverse_link(loss.link(q)), q, atol=1e-12)


def test_hsc_is_log_loss_through_its_link():
    q = np.linspace(0.01, 0.99, 99)
    for y in (0, 1):
        np.testing.assert_allclose(T.LOSSES["hsc"].cpe(y, q), T.LOSSES["log"].cpe(y, q), atol=1e-12)


def test_logistic_partial_losses_are_stable():
    v = np.array([-800.0, -50.0, 0.0, 50.0, 800.0])
    assert np.all(np.isfinite(T.LOSSES["logistic"].lam1(v)))
    np.testing.assert_allclose(T.LOSSES["logistic"].lam1(np.array([800.0])), [0.0], atol=1e-300)


def test_stationarity_forms():
    # (2.12) as printed fails for the logistic loss; evaluated at ψ(η) it holds
    printed = T.stationarity_residual(T.LOSSES["logistic"], ETAS, "as_printed")
    corrected = T.stationarity_residual(T.LOSSES["logistic"], ETAS, "composite")
    assert np.max(np.abs(printed)) > 0.1
    assert np.max(np.abs(corrected)) < 1e-7
    # for identity links the three forms coincide
    for form in ("cpe", "composite", "as_printed"):
        assert np.max(np.abs(T.stationarity_residual(T.LOSSES["log"], ETAS, form))) < 1e-6
    with pytest.raises(ValueError, match="unknown stationarity form"):
        T.stationarity_residual(T.LOSSES["log"], ETAS, "sideways")


def test_finite_difference_matches_analytic_derivative():
    v = np.array([0.3, 1.0, 4.0])
    np.testing.assert_allclose(T.derivative(T.LOSSES["logistic"].lam1, v), expit(v) - 1, rtol=1e-7)
    np.testing.assert_allclose(T.derivative(T.LOSSES["hsc"].lam1, v), -1 / np.expm1(v), rtol=1e-6)


def test_verdicts_on_the_propositions():
    verdicts = {v.statement: v for v in T.verdict_propositions(ETAS)}
    assert verdicts["Proposition 1"].holds
    assert verdicts["Proposition 2"].holds and verdicts["Proposition 2"].proof_note
    assert verdicts["Proposition 3"].holds
    assert verdicts["Proposition 4"].holds
    assert not verdicts["Proposition 5"].holds and "strictly proper composite" in verdicts["Proposition 5"].correction
    assert not verdicts["Definition 8, eq. (2.12)"].holds
    assert all("\n" not in v.short() for v in verdicts.values())


def test_a_false_claim_would_be_caught():
    """The same machinery says 'contradicted' when a claim of strict propriety is false."""
    fake = T.BinaryLoss("fake", T.LOSSES["absolute"].lam1, T.LOSSES["absolute"].lam0, T.LOSSES["absolute"].link,
                        T.LOSSES["absolute"].inverse_link, composite=False, thesis_claim="strictly proper")
    T.LOSSES["fake"] = fake
    try:
        assert not T.verdict_loss("fake", ETAS, "fake claim").holds
    finally:
        del T.LOSSES["fake"]


def test_dependent_labels_learn_marginals():
    out = T.joint_vs_marginals(0.4, 0.1, 0.1)
    assert abs(out["minimiser_1"] - 0.5) < 1e-6 and abs(out["minimiser_2"] - 0.5) < 1e-6
    assert out["tv_joint_vs_product"] == pytest.approx(0.15 + 0.15, abs=1e-6)
    with pytest.raises(ValueError):
        T.joint_vs_marginals(0.9, 0.2, 0.1)


def test_population_calibration_error_against_monte_carlo():
    toy = T.ToyForecaster(2.0)
    pop = T.population_calibration_error(toy, n_bins=10)
    # brute-force: bin a huge sample and compare freq with conf per bin, using the true η for freq
    rng = np.random.default_rng(1)
    eta = rng.uniform(0, 1, 2_000_000)
    p = toy.forecast(eta)
    idx = np.clip(np.ceil(p * 10).astype(int) - 1, 0, 9)
    ece = sum(np.mean(idx == k) * abs(eta[idx == k].mean() - p[idx == k].mean()) for k in range(10))
    assert pop["ece"] == pytest.approx(ece, abs=2e-3)
    assert T.population_calibration_error(T.ToyForecaster(1.0))["ece"] < 1e-12
