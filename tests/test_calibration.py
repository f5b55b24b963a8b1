"""Post-hoc calibrators (thesis §3.2) against independent fits: scikit-learn and betacal's algorithm."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import calad_lib as calad
from calad_lib.calibration import BetaCalibration, CalibrationHead, PlattScaling, calibrate
from calad_lib.detector import AnomalyModel, Outputs


# --- small hand-made models -------------------------------------------------------------------
class LinearModel(AnomalyModel):
    """logit = w · x + b on flattened images; logistic loss; head features = a fixed projection."""

    name = "linear"

    def __init__(self, d: int, seed: int = 0, scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = torch.nn.Linear(d, 1)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(1, d, generator=g) * scale)
            self.lin.bias.zero_()
        self.proj = torch.nn.Linear(d, 4)

    def outputs(self, x):
        z = self.lin(x.flatten(1)).squeeze(1)
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        z = self.logit(x)
        return F.binary_cross_entropy_with_logits(z, torch.as_tensor(y, dtype=z.dtype).expand_as(z), reduction="none")

    def head_features(self, x):
        return self.proj(x.flatten(1))


class PixelModel(AnomalyModel):
    """A per-pixel model: logit map = w * (mean over channels) + b."""

    name = "pixel"
    pixelwise = True

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(6.0))
        self.b = torch.nn.Parameter(torch.tensor(-3.0))

    def outputs(self, x):
        z = self.w * x.mean(1) + self.b
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        z = self.logit(x)
        y = torch.as_tensor(y, dtype=z.dtype).view(-1, 1, 1).expand_as(z)
        return F.binary_cross_entropy_with_logits(z, y, reduction="none").flatten(1).mean(1)


def _logits(n=600, seed=0, shift=1.5, scale=1.0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n), np.ones(n)]
    z = np.r_[rng.normal(0, 1, n), rng.normal(shift, 1.3, n)] * scale
    return z, y


def _sklearn_fit(X, y):
    lr = LogisticRegression(C=1e12, tol=1e-12, max_iter=100_000).fit(X, y)
    return lr.coef_[0], lr.intercept_[0]


# --- Platt --------------------------------------------------------------------------------------
def test_platt_matches_sklearn_logistic_regression():
    z, y = _logits()
    cal = PlattScaling().fit(z, y)
    coef, inter = _sklearn_fit(z.reshape(-1, 1), y)
    assert cal.a_ == pytest.approx(coef[0], abs=1e-4)
    assert cal.c_ == pytest.approx(inter, abs=1e-4)
    assert cal.T_ == pytest.approx(1 / coef[0], rel=1e-4)
    np.testing.assert_allclose(cal.predict_proba(z), 1 / (1 + np.exp(-(coef[0] * z + inter))), atol=1e-5)


def test_platt_preserves_ranking_and_tensor_api():
    z, y = _logits(seed=3)
    cal = PlattScaling().fit(torch.tensor(z), torch.tensor(y))
    zt = torch.tensor(z, requires_grad=True)
    out = cal.transform(zt)
    assert isinstance(out, torch.Tensor) and out.requires_grad  # differentiable for perturbation
    assert roc_auc_score(y, out.detach().numpy()) == pytest.approx(roc_auc_score(y, z), abs=1e-12)


def test_platt_per_pixel_is_the_mean_pixel_loss_minimiser():
    rng = np.random.default_rng(1)
    maps = np.r_[rng.normal(0, 1, (20, 5, 6)), rng.normal(2, 1, (20, 5, 6))]
    y_img = np.r_[np.zeros(20), np.ones(20)]
    cal = PlattScaling().fit(maps, y_img)  # per-image labels spread over pixels (§4.2.1)
    coef, inter = _sklearn_fit(maps.reshape(-1, 1), np.repeat(y_img, 30))
    assert (cal.a_, cal.c_) == pytest.approx((coef[0], inter), abs=1e-4)
    assert cal.transform(maps).shape == maps.shape


def test_bad_inputs_raise_one_line_errors():
    z, y = _logits(n=10)
    for bad_y, match in [(np.zeros_like(y), "both"), (y + 2, "0 \\(normal\\)"), (y[:5], "do not match")]:
        with pytest.raises(ValueError, match=match) as exc:
            PlattScaling().fit(z, bad_y)
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="NaN"):
        PlattScaling().fit(np.r_[z[:-1], np.nan], y)
    with pytest.raises(ValueError, match="variant"):
        BetaCalibration("fast")
    with pytest.raises(RuntimeError, match="not fitted"):
        PlattScaling().transform(z)


# --- Beta ---------------------------------------------------------------------------------------
def _betacal_reference(ln_eta, ln_1m, y):
    """betacal's algorithm, re-derived: logistic regression on [ln η̂, −ln(1−η̂)], and if a
    coefficient is negative, refit on the other feature alone with that coefficient set to 0."""
    X = np.c_[ln_eta, -ln_1m]
    coef, inter = _sklearn_fit(X, y)
    if coef[0] < 0:
        c, inter = _sklearn_fit(X[:, 1:], y)
        coef = np.array([0.0, c[0]])
    elif coef[1] < 0:
        c, inter = _sklearn_fit(X[:, :1], y)
        coef = np.array([c[0], 0.0])
    return coef[0], coef[1], inter


def _scipy_bounded_reference(ln_eta, ln_1m, y):
    X = np.c_[ln_eta, -ln_1m, np.ones_like(ln_eta)]

    def f(t):
        s = X @ t
        return np.mean(np.logaddexp(0, s) - y * s), X.T @ (1 / (1 + np.exp(-s)) - y) / len(y)

    return minimize(f, np.array([1.0, 1.0, 0.0]), jac=True, method="L-BFGS-B",
                    bounds=[(0, None), (0, None), (None, None)], options={"gtol": 1e-12, "ftol": 1e-15}).x


@pytest.mark.parametrize("variant", ["stable", "naive"])
def test_beta_matches_reference_fits_on_well_behaved_data(variant):
    rng = np.random.default_rng(2)
    n = 800
    # skewed scores so that a != b
    z = np.r_[rng.gamma(2.0, 0.8, n) - 3.0, rng.normal(1.0, 1.0, n)]
    y = np.r_[np.zeros(n), np.ones(n)]
    cal = BetaCalibration(variant).fit(z, y)
    ln_eta, ln_1m = (t.numpy() for t in cal.log_eta(torch.tensor(z)))
    a, b, c = _betacal_reference(ln_eta, ln_1m, y)
    assert (cal.a_, cal.b_, cal.c_) == pytest.approx((a, b, c), abs=2e-4)
    assert (cal.a_, cal.b_, cal.c_) == pytest.approx(tuple(_scipy_bounded_reference(ln_eta, ln_1m, y)), abs=2e-4)
    assert cal.a_ != pytest.approx(cal.b_, abs=1e-2)


def test_stable_and_naive_beta_agree_on_moderate_logits():
    z, y = _logits(seed=4)
    s = BetaCalibration("stable").fit(z, y)
    nv = BetaCalibration("naive").fit(z, y)
    assert (s.a_, s.b_, s.c_) == pytest.approx((nv.a_, nv.b_, nv.c_), abs=2e-3)


def test_beta_nonnegativity_is_enforced():
    # normal data at both extremes, anomalies in the middle: the unconstrained fit wants a < 0 or b < 0
    rng = np.random.default_rng(5)
    z = np.r_[rng.normal(-4, 1, 300), rng.normal(4, 1, 300), rng.normal(0, 0.5, 300)]
    y = np.r_[np.zeros(600), np.ones(300)]
    ln_eta, ln_1m = F.logsigmoid(torch.tensor(z)).numpy(), F.logsigmoid(-torch.tensor(z)).numpy()
    free, _ = _sklearn_fit(np.c_[ln_eta, -ln_1m], y)
    assert free.min() < 0  # the constraint is active
    cal = BetaCalibration().fit(z, y)
    assert cal.a_ >= 0 and cal.b_ >= 0
    assert (cal.a_, cal.b_, cal.c_) == pytest.approx(_betacal_reference(ln_eta, ln_1m, y), abs=2e-4)


def test_beta_with_a_equal_b_is_platt():
    z, y = _logits(seed=6)
    platt = PlattScaling().fit(z, y)
    beta = BetaCalibration.from_params(a=platt.a_, b=platt.a_, c=platt.c_)
    np.testing.assert_allclose(beta.transform(z), platt.transform(z), atol=1e-10)
    # Beta's family contains Platt's, so its fitted logistic loss can only be lower
    fitted = BetaCalibration().fit(z, y)
    loss = lambda cal: F.binary_cross_entropy_with_logits(cal.transform(torch.tensor(z)), torch.tensor(y)).item()
    assert loss(fitted) <= loss(platt) + 1e-12


def test_naive_beta_saturates_on_overconfident_logits_and_stable_does_not():
    # an overconfident logistic model: logits spread to |z| ~ 100, ranking still informative
    rng = np.random.default_rng(8)
    n = 1000
    z = np.r_[rng.normal(-20, 30, n), rng.normal(40, 30, n)].clip(-100, 100)
    y = np.r_[np.zeros(n), np.ones(n)]
    auc0 = roc_auc_score(y, z)
    stable = BetaCalibration("stable").fit(z, y)
    naive = BetaCalibration("naive").fit(z, y)
    zs, zn = stable.transform(z), naive.transform(z)
    assert roc_auc_score(y, zs) == pytest.approx(auc0, abs=1e-12)  # monotone: ranking preserved
    # naive: every |z| >~ 16 collapses onto one of two values -> massive ties, AUROC lost
    assert len(np.unique(zn)) < 0.5 * len(np.unique(z))
    assert roc_auc_score(y, zn) < auc0 - 0.02
    ln_eta, ln_1m = naive.log_eta(torch.tensor([30.0, 60.0, 100.0]))
    assert torch.unique(ln_1m).numel() == 1  # η̂ rounds to 1 - ε: all three logits look the same


# --- head ---------------------------------------------------------------------------------------
def test_head_fits_a_linearly_separable_set():
    rng = np.random.default_rng(9)
    X = np.r_[rng.normal(-2, 0.5, (200, 3)), rng.normal(2, 0.5, (200, 3))]
    y = np.r_[np.zeros(200), np.ones(200)]
    head = CalibrationHead(epochs=60, lr=1e-2, batch_size=32, seed=0).fit(X, y)
    p = head.predict_proba(X)
    assert ((p > 0.5) == y).mean() == 1.0
    assert head.losses_[-1] < head.losses_[0]
    with pytest.raises(ValueError, match="epochs"):
        CalibrationHead(epochs=0)


# --- calibrate(...) -------------------------------------------------------------------------------
def _images(n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 4, 4, generator=g) * 0.5 + shift).clamp(0, 1)


@pytest.mark.parametrize("method", ["platt", "beta", "beta_naive", "head"])
def test_calibrate_composes_a_frozen_calibrated_model(method):
    base = LinearModel(16, seed=1)
    base.lin.weight.data.abs_()  # anomalies (brighter) get larger logits
    before = {k: v.clone() for k, v in base.state_dict().items()}
    normal, anomalous = _images(200, 0.0, 1), _images(200, 0.5, 2)
    cm = calibrate(base, method, normal=normal, anomalous=anomalous, n=300, augment=False, seed=0,
                   epochs=30, lr=1e-2, progress=False)
    assert isinstance(cm, AnomalyModel) and cm.name == f"{method}[linear]"
    for k, v in base.state_dict().items():
        assert torch.equal(v, before[k])  # the base is frozen
    assert not any(p.requires_grad for p in base.parameters())
    x = torch.cat([_images(50, 0.0, 3), _images(50, 0.5, 4)])
    yt = torch.cat([torch.zeros(50), torch.ones(50)])
    o = cm.outputs(x)
    assert torch.allclose(o.eta, torch.sigmoid(o.logit)) and torch.equal(o.score, o.logit)
    loss = cm.loss(x, yt)
    assert loss.shape == (100,)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(o.logit, yt, reduction="none"))
    if method in ("platt", "beta"):  # monotone transforms keep the ranking
        assert roc_auc_score(yt, o.score.detach()) == pytest.approx(roc_auc_score(yt, base.score(x).detach()), abs=1e-12)
    # gradients reach the input through calibrator and frozen base
    xg = x.clone().requires_grad_(True)
    cm.loss(xg, yt).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_calibrate_uses_augmentation_and_n():
    calls = []

    def aug(x, generator):
        calls.append(len(x))
        return (x + 0.01 * torch.rand(x.shape, generator=generator)).clamp(0, 1)

    base = LinearModel(16, seed=2)
    base.lin.weight.data.abs_()
    cm = calibrate(base, "platt", normal=_images(30, 0.0, 1), anomalous=_images(500, 0.5, 2), n=100,
                   augment=aug, batch_size=40, progress=False)
    assert sum(calls) == 100  # n augmented normal images drawn from only 30
    assert cm.calibrator.fitted_
    # reproducible with the same seed
    a = calibrate(base, "platt", normal=_images(30, 0.0, 1), anomalous=_images(500, 0.5, 2), n=100, augment=aug,
                  seed=5, progress=False).calibrator
    b = calibrate(base, "platt", normal=_images(30, 0.0, 1), anomalous=_images(500, 0.5, 2), n=100, augment=aug,
                  seed=5, progress=False).calibrator
    assert (a.a_, a.c_) == (b.a_, b.c_)


def test_calibrate_pixelwise_and_rejections():
    base = PixelModel()
    normal, anomalous = _images(40, 0.0, 1), _images(40, 0.5, 2)
    cm = calibrate(base, "platt", normal=normal, anomalous=anomalous, n=40, augment=False, progress=False)
    assert cm.pixelwise and cm.outputs(normal).logit.shape == (40, 4, 4)
    z = torch.cat([base.logit(normal), base.logit(anomalous)]).detach().double()
    ref = PlattScaling().fit(z, torch.cat([torch.zeros(40), torch.ones(40)]))
    assert (cm.calibrator.a_, cm.calibrator.c_) == pytest.approx((ref.a_, ref.c_), abs=1e-6)
    assert cm.loss(normal, torch.zeros(40)).shape == (40,)
    with pytest.raises(ValueError, match="detection models only"):
        calibrate(base, "head", normal=normal, anomalous=anomalous, augment=False, progress=False)
    with pytest.raises(ValueError, match="unknown calibration method"):
        calibrate(base, "isotonic", normal=normal, anomalous=anomalous, augment=False, progress=False)
    with pytest.raises(ValueError, match="normal must be"):
        calibrate(base, "platt", normal=normal[:0], anomalous=anomalous, augment=False, progress=False)


def test_module_is_reachable_from_package():
    assert calad.calibration.PlattScaling is PlattScaling


@pytest.mark.parametrize("make", [lambda: PlattScaling(), lambda: BetaCalibration("stable"),
                                  lambda: BetaCalibration("naive")])
def test_constant_logits_give_the_base_rate_with_one_warning(make):
    y = np.r_[np.zeros(40), np.ones(10)]          # 0.7 has a rounding-level spread once averaged
    with pytest.warns(UserWarning, match="constant") as caught:
        cal = make().fit(np.full(50, 0.7), y)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    np.testing.assert_allclose(cal.predict_proba(np.array([-3.0, 0.7, 9.0])), 0.2, atol=1e-6)
    assert all(abs(v) < 10 for v in cal.coefficients().values())
