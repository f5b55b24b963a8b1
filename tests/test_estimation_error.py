"""Part B: minimal estimation error, closed form against Monte Carlo and against brute force."""
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from calad_lib.uncertainty import estimation_error as E


def _talk_models():
    return [E.Misestimated()] + [E.Misestimated(outside_mass=e, n_outside=k) for e, k in E.TALK_MODELS]


def test_closed_form_reproduces_the_talks_table():
    for model, col in zip(_talk_models(), E.TALK_TABLE.columns):
        cf = E.closed_form(model)
        assert model.label == col
        # the talk prints 4 decimals (and -13.8255 for -13.82556: truncated, not rounded)
        assert cf["LL"] == pytest.approx(E.TALK_TABLE.loc["LL", col], abs=1e-4)
        assert cf["Pr(supp(P))"] == pytest.approx(E.TALK_TABLE.loc["Pr(supp(P))", col], abs=1e-12)
        assert cf["OOD AUROC"] == E.TALK_TABLE.loc["OOD AUROC", col]
    assert E.closed_form(_talk_models()[0])["LL"] == pytest.approx(-math.log(1e6), abs=1e-12)


def test_monte_carlo_matches_closed_form_to_1e_4():
    t = E.table(n_samples=10**7, n_auroc=20_000, seed=0)
    diff = t.xs("|difference|", axis=1, level=1)
    assert diff.to_numpy().max() < 1e-4
    assert list(t.xs("Monte Carlo", axis=1, level=1).loc["OOD AUROC"]) == [1.0, 0.0, 0.0, 0.0]


def test_log_prob_is_a_normalised_distribution():
    m = E.Misestimated(n_support=1000, outside_mass=0.03, n_outside=7)
    p = np.exp(m.log_prob(np.arange(-5, 1020)))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[:5].sum() == 0 and p[5 + 1007:].sum() == 0
    assert np.isneginf(m.log_prob(np.array([1007, 2000]))).all()


def _brute_auroc(model):
    """Exact AUROC of −log p_θ between P and Q, enumerating all outcome pairs with their weights."""
    ids_p = np.arange(model.n_support)
    ids_q = model.n_support + np.arange(model.n_ood)
    s_p = -model.log_prob(ids_p)
    s_q = -model.log_prob(ids_q)
    s_q = np.where(np.isinf(s_q), 1e300, s_q)
    y = np.r_[np.zeros(len(s_p)), np.ones(len(s_q))]
    return roc_auc_score(y, np.r_[s_p, s_q])


@pytest.mark.parametrize("eps,k,m", [(0.01, 5, 5), (0.01, 20, 20), (0.01, 5, 12), (0.2, 40, 10),
                                     (0.0, 1, 10), (0.5, 100, 100)])
def test_closed_form_auroc_against_brute_force(eps, k, m):
    model = E.Misestimated(n_support=100, outside_mass=eps, n_outside=k, n_ood=m)
    assert E.closed_form(model)["OOD AUROC"] == pytest.approx(_brute_auroc(model), abs=1e-12)


def test_ties_count_one_half():
    # ε/k = (1 − ε)/N: every OOD outcome is exactly as likely as every normal one
    model = E.Misestimated(n_support=99, outside_mass=0.01, n_outside=1)
    assert E.closed_form(model)["OOD AUROC"] == 0.5


def test_kl_is_minus_log_of_support_mass():
    for model in _talk_models():
        cf = E.closed_form(model)
        assert cf["KL(P||P_θ)"] == pytest.approx(-math.log(cf["Pr(supp(P))"]), abs=1e-15)
        assert cf["LL"] == pytest.approx(-math.log(model.n_support) - cf["KL(P||P_θ)"], abs=1e-12)


def test_sampling_frequencies():
    rng = np.random.default_rng(0)
    m = E.Misestimated(n_support=50, outside_mass=0.25, n_outside=4)
    x = m.sample(200_000, rng)
    assert (x >= 50).mean() == pytest.approx(0.25, abs=0.005)
    assert set(np.unique(x[x >= 50])) == {50, 51, 52, 53}
    q = m.sample_ood(1000, rng)
    assert q.min() >= 50 and q.max() < 54


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="outside_mass"):
        E.Misestimated(outside_mass=1.0, n_outside=3)
    with pytest.raises(ValueError, match="n_outside >= 1"):
        E.Misestimated(outside_mass=0.1, n_outside=0)
    with pytest.raises(ValueError, match="n_support"):
        E.Misestimated(n_support=0)
    with pytest.raises(ValueError, match="n_samples"):
        E.monte_carlo(E.Misestimated(), n_samples=0)
