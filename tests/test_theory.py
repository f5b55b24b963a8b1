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


def test_bound_reads_the_same_whatever_the_round_off():
    assert T.bound(3.2e-9, 1e-6) == T.bound(7.7e-8, 1e-6) == "below 1e-6"
    assert T.bound(0.492, 1e-6) == "= 0.49"


def test_verdict_evidence_has_no_round_off_digits():
    """The verdict table is a checked output: its evidence may not quote numbers at round-off level."""
    import re

    table = T.verdict_table(T.verdict_propositions(ETAS))
    assert list(table.columns) == ["thesis says", "verdict", "evidence"]
    assert set(table["verdict"]) == {"confirmed", "contradicted"}
    quoted = [re.sub(r"below \de-\d", "", ev) for ev in table["evidence"]]   # bounds are fine
    assert not any(re.search(r"\de[-−+]?\d", ev) for ev in quoted), quoted
    fixes = T.corrections_table(T.verdict_propositions(ETAS))
    assert list(fixes.index) == ["Proposition 2", "Proposition 5", "Definition 8, eq. (2.12)"]
    assert fixes["correction"].str.len().min() > 20


def test_propriety_table_rounds_away_negative_zeros():
    table = T.propriety_table(ETAS)
    assert table.loc[["log", "logistic", "hsc", "brier"], "verdict"].eq("strictly proper").all()
    assert table.loc["absolute", "verdict"] == "not proper"
    numbers = table.drop(columns="verdict").to_numpy(dtype=float)
    assert not np.signbit(numbers[numbers == 0]).any()


def test_toy_calibration_table_is_seeded_and_exact_where_closed_form():
    a = T.toy_calibration_table([1.0, 2.0], [500, 5000], n_bins=10, seed=3)
    b = T.toy_calibration_table([1.0, 2.0], [500, 5000], n_bins=10, seed=3)
    assert a.equals(b) and len(a) == 4
    assert (a.loc[a.t == 1.0, "population ECE"] < 1e-12).all()
    np.testing.assert_allclose(a["|ECE error|"], (a["sample ECE"] - a["population ECE"]).abs())
