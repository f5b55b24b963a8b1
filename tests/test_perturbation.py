"""Gradient input perturbation (thesis §3.3, eq. 3.3): sign, size, loss decrease, batching, calibrated models."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from test_metrics import _brute_bins

from calad_lib import perturbation
from calad_lib.calibration import calibrate
from calad_lib.detector import AnomalyModel, Outputs
from calad_lib.perturbation import gradient_norms, perturb, perturbation_effect, perturbed_outputs


class LinearModel(AnomalyModel):
    """logit = w · x + b with a logistic loss: ∇ₓ loss = (σ(z) − y) w, known in closed form."""

    name = "linear"

    def __init__(self, d: int = 12, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(d, generator=g))
        self.w.data[0] = 0.0  # one pixel the loss does not depend on
        self.b = torch.nn.Parameter(torch.tensor(0.3))

    def outputs(self, x):
        z = x.flatten(1) @ self.w + self.b
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        z = self.logit(x)
        return F.binary_cross_entropy_with_logits(z, torch.as_tensor(y, dtype=z.dtype).expand_as(z), reduction="none")


class SquaredNorm(AnomalyModel):
    """An unsupervised (SVDD-like) loss ‖x − c‖², label ignored; batch-norm to check eval mode."""

    name = "svdd_toy"

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(12)

    def outputs(self, x):
        s = ((self.bn(x.flatten(1)) - 0.5) ** 2).sum(1)
        return Outputs(s, torch.sigmoid(s), s)

    def loss(self, x, y):
        return self.score(x)


def _x(n=20, seed=1):
    return torch.rand(n, 3, 2, 2, generator=torch.Generator().manual_seed(seed))


def test_sign_and_magnitude_match_the_closed_form():
    model, x, eps = LinearModel(), _x(), 0.01
    xt = perturb(model, x, eps, y=0)
    with torch.no_grad():
        grad = (torch.sigmoid(model.logit(x)) - 0.0)[:, None] * model.w[None]  # d loss / d x for y = 0
    expected = x - eps * torch.sign(grad).view_as(x)
    torch.testing.assert_close(xt, expected)
    diff = (xt - x).flatten(1)
    assert torch.allclose(diff[:, 1:].abs(), torch.full_like(diff[:, 1:], eps))  # ‖x̃ − x‖∞ = ε where grad ≠ 0
    assert torch.equal(diff[:, 0], torch.zeros(len(x)))  # sgn(0) = 0: untouched


@pytest.mark.parametrize("y", [0, 1])
def test_loss_decreases_to_first_order(y):
    model, x = LinearModel(seed=3), _x(seed=2)
    for eps in (1e-4, 1e-3):
        xt = perturb(model, x, eps, y=y)
        with torch.no_grad():
            before, after = model.loss(x, y), model.loss(xt, y)
            # first order: Δloss ≈ −ε ‖∇ₓ loss‖₁ = −ε |σ(z) − y| ‖w‖₁
            pred = -eps * (torch.sigmoid(model.logit(x)) - y).abs() * model.w.abs().sum()
        assert (after < before).all()
        torch.testing.assert_close(after - before, pred, rtol=0.05, atol=1e-7)


def test_eps_validation_and_zero():
    model, x = LinearModel(), _x()
    for bad in (-1e-3, float("nan"), "big"):
        with pytest.raises(ValueError, match="eps") as exc:
            perturb(model, x, bad)
        assert "\n" not in str(exc.value)
    x0 = perturb(model, x, 0.0)
    assert torch.equal(x0, x) and x0 is not x
    with pytest.raises(ValueError, match="shape"):
        perturb(model, x.flatten(1), 1e-3)


def test_batched_equals_unbatched_and_eval_mode():
    model, x = SquaredNorm(), _x(n=37)
    model.train()
    model(x)  # give the batch-norm non-trivial running statistics
    full = perturb(model, x, 2e-3, batch_size=1000)
    small = perturb(model, x, 2e-3, batch_size=5)
    torch.testing.assert_close(full, small)
    assert model.training  # the caller's mode is restored
    one = torch.stack([perturb(model, x[i:i + 1], 2e-3)[0] for i in range(len(x))])
    torch.testing.assert_close(one, full)


def test_perturbed_outputs_matches_perturb_then_score():
    model, x = LinearModel(), _x(n=30)
    o = perturbed_outputs(model, x, eps=3e-3, batch_size=7)
    with torch.no_grad():
        ref = model.outputs(perturb(model, x, 3e-3))
    torch.testing.assert_close(o.score, ref.score)
    plain = perturbed_outputs(model, x, eps=0.0)
    torch.testing.assert_close(plain.logit, model.logit(x).detach())


def test_works_through_a_calibrated_model():
    base = LinearModel(seed=4)
    with torch.no_grad():
        base.w.abs_()
    normal, anomalous = _x(100, 5) * 0.5, (_x(100, 6) * 0.5 + 0.5)
    for method in ("platt", "beta"):
        cm = calibrate(base, method, normal=normal, anomalous=anomalous, augment=False, progress=False)
        x = _x(40, 7)
        xt = perturb(cm, x, 1e-3, y=0)
        assert torch.allclose((xt - x).abs().flatten(1)[:, 1:], torch.full((40, 11), 1e-3))
        with torch.no_grad():
            before, after = cm.loss(x, 0), cm.loss(xt, 0)
            assert (after <= before).all()
            visible = before > 1e-5  # below that the float32 loss rounds to the same value
            assert visible.sum() > 20 and (after[visible] < before[visible]).all()
            # towards normal: both the calibrated and (here, monotone) base logit go down
            assert (cm.logit(xt) < cm.logit(x)).all() and (base.logit(xt) < base.logit(x)).all()
        assert all(p.grad is None for p in base.parameters())


def test_perturbation_effect_reports_losses_and_scores():
    model, x = LinearModel(seed=5), _x(n=25)
    eff = perturbation_effect(model, x, eps=2e-3, y=0, batch_size=6)
    xt = perturb(model, x, 2e-3)
    with torch.no_grad():
        torch.testing.assert_close(eff["loss"], model.loss(x, 0))
        torch.testing.assert_close(eff["loss_perturbed"], model.loss(xt, 0))
        torch.testing.assert_close(eff["score_perturbed"], model.score(xt))
    assert (eff["loss_perturbed"] <= eff["loss"]).all()


def test_predicted_label_convention():
    model, x = LinearModel(seed=6), _x(n=40)
    with torch.no_grad():
        pred = (model.logit(x) > 0).float()
    assert 0 < pred.sum() < len(pred)  # both predicted classes occur
    torch.testing.assert_close(perturb(model, x, 1e-3, y="predicted", batch_size=7), perturb(model, x, 1e-3, y=pred))
    with pytest.raises(ValueError, match="predicted"):
        perturb(model, x, 1e-3, y="normal")


def test_monotone_calibrator_with_label_0_takes_the_base_step():
    # sgn ∇ₓ softplus(a z + c) = sgn(a ∇ₓ z) = sgn ∇ₓ softplus(z) for a > 0: the same x̃ as the base model
    base = LinearModel(seed=7)
    with torch.no_grad():
        base.w.abs_()
    normal, anomalous = _x(200, 8) * 0.6, _x(200, 9) * 0.6 + 0.3
    cm = calibrate(base, "platt", normal=normal, anomalous=anomalous, augment=False, progress=False)
    assert cm.calibrator.a_ > 0
    x = _x(50, 10)
    torch.testing.assert_close(perturb(cm, x, 1e-3, y=0), perturb(base, x, 1e-3, y=0))
    # with the predicted label the calibrator's threshold decides the direction, so the steps differ
    assert not torch.equal(perturb(cm, x, 1e-3, y="predicted"), perturb(base, x, 1e-3, y="predicted"))


@pytest.mark.parametrize("y", [0, 1])
def test_gradient_norms_match_the_closed_form_and_the_first_order_loss_drop(y):
    model, x, eps = LinearModel(seed=4), _x(seed=5), 1e-4
    with torch.no_grad():
        closed = (torch.sigmoid(model.logit(x)) - y).abs() * model.w.abs().sum()   # ‖(σ(z) − y) w‖₁
    g = gradient_norms(model, x, y=y, batch_size=7)
    torch.testing.assert_close(g, closed)
    torch.testing.assert_close(gradient_norms(model, x, y=y, p=2),
                               (torch.sigmoid(model.logit(x)) - y).abs().detach() * model.w.detach().norm())
    eff = perturbation_effect(model, x, eps, y=y)   # one sign step lowers the loss by ε‖∇ₓℓ‖₁ to first order
    torch.testing.assert_close(eff["loss"] - eff["loss_perturbed"], eps * g, rtol=0.05, atol=1e-8)
    torch.testing.assert_close(eff["grad_norm"], g)  # the effect reports the norms its step was taken from


# --- evaluate -------------------------------------------------------------------------------------------------
class Linear(AnomalyModel):
    name = "linear"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1, 2, 16))

    def outputs(self, x):
        z = x.flatten(1) @ self.w - 4
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        z = self.logit(x)
        return F.binary_cross_entropy_with_logits(z, torch.as_tensor(y, dtype=z.dtype).expand_as(z), reduction="none")


def test_evaluate_follows_the_protocol():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(80, 1, 4, 4, generator=g)
    y = (torch.arange(80) % 2).float()
    x[y == 1] += 0.3 * torch.rand(40, 1, 4, 4, generator=g)
    held_out = torch.rand(100, 1, 4, 4, generator=g) + 0.5
    model = Linear()
    res = perturbation.evaluate(model, x, y, calib_anomalies=held_out, eps=1e-2, batch_size=16)
    with torch.no_grad():
        s0 = model.score(x)
        s1 = model.score(perturb(model, x, 1e-2))
        eta = torch.cat([model.eta(x[y == 0]), model.eta(held_out[:40])])
    lab = np.r_[np.zeros(40), np.ones(40)]
    assert res["auroc"] == pytest.approx(roc_auc_score(y, s0))
    assert res["auroc_perturbed"] == pytest.approx(roc_auc_score(y, s1))
    assert res["kappa"] == pytest.approx((res["auroc_perturbed"] - res["auroc"]) / (1 - res["auroc"]))
    assert res["ece"] == pytest.approx(_brute_bins(lab, eta.numpy(), 10)[0])
    assert res["mce"] == pytest.approx(_brute_bins(lab, eta.numpy(), 10)[1])
    no_cal = perturbation.evaluate(model, x, y, eps=None)
    assert set(no_cal) == {"auroc", "ece", "mce"} and np.isnan(no_cal["ece"])


def test_auroc_vs_eps_matches_single_evaluations():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(60, 1, 4, 4, generator=g)
    y = (torch.arange(60) % 2).float()
    x[y == 1] += 0.2
    model = Linear()
    curve = perturbation.auroc_vs_eps(model, x, y, [0.01, 0.002])
    assert curve["eps"].tolist() == [0.0, 0.002, 0.01]
    for e, a in zip(curve["eps"], curve["auroc"]):
        with torch.no_grad():
            s = model.score(perturb(model, x, e)) if e else model.score(x)
        assert a == pytest.approx(roc_auc_score(y, s))
    assert curve["kappa"][0] == 0.0


def test_a_sweep_takes_one_gradient_and_gives_each_steps_scores(monkeypatch):
    model = LinearModel()
    x = torch.rand(50, 1, 3, 4, generator=torch.Generator().manual_seed(3))
    calls = []
    real = perturbation._input_grad
    monkeypatch.setattr(perturbation, "_input_grad", lambda *a: calls.append(1) or real(*a))
    sweep = perturbation.perturbed_scores(model, x, [0.0, 0.003, 0.02], batch_size=20)
    assert len(calls) == 3                                   # one backward pass per batch, not per step
    for e, s in sweep.items():
        assert torch.equal(s, perturbed_outputs(model, x, eps=e, batch_size=20).score)
