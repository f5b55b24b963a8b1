"""Base losses of §4.1: links, stability, the logit/η̂/score of every model, and that each loss trains."""
import numpy as np
import pytest
import torch

import calad_lib as calad
from calad_lib.losses import (LOSSES, build_model, hsc_eta, hsc_logit, hsc_loss, hsc_v, logistic_loss, prob_logit,
                              pseudo_huber)
from calad_lib.nets import count_bias

pytestmark = pytest.mark.usefixtures("one_thread")


SHAPE = (1, 28, 28)


def test_hsc_link_round_trips_including_extreme_values():
    v64 = torch.logspace(-12, 2.5, 300, dtype=torch.float64)
    eta = hsc_eta(v64)
    z = hsc_logit(v64)
    # η̂ → z → η̂ (in log space, so values of η̂ near 0 and near 1 are both checked)
    assert torch.allclose(torch.nn.functional.logsigmoid(z), torch.log(eta), rtol=1e-9, atol=1e-12)
    assert torch.allclose(torch.nn.functional.logsigmoid(-z), -v64, rtol=1e-9)        # ln(1 - η̂) = -v
    # v ↔ η̂ where η̂ < 1 is representable
    ok = v64 < 10
    assert torch.allclose(hsc_v(eta[ok]), v64[ok], rtol=1e-8)
    # independent reference for moderate v: z = ln(e^v - 1)
    mid = (v64 > 1e-6) & (v64 < 30)
    assert np.allclose(z[mid].numpy(), np.log(np.expm1(v64[mid].numpy())), rtol=1e-10)
    # float32 extremes stay finite and ordered
    v32 = torch.tensor([0.0, 1e-30, 1e-8, 1e-3, 1.0, 20.0, 88.0, 200.0, 1e4])
    z32 = hsc_logit(v32)
    assert torch.isfinite(z32).all() and (z32.diff() > 0).all()
    assert z32[-1] == pytest.approx(1e4) and z32[2] == pytest.approx(np.log(1e-8), rel=1e-5)
    assert torch.isfinite(hsc_eta(v32)).all()


def test_hsc_loss_matches_eq_4_1_and_is_finite_with_finite_gradients():
    v = torch.tensor([1e-3, 0.1, 1.0, 5.0, 30.0], dtype=torch.float64)
    for y in (0.0, 1.0):
        ref = -y * np.log(1 - np.exp(-v.numpy())) + (1 - y) * v.numpy()
        assert np.allclose(hsc_loss(v, torch.full_like(v, y)).numpy(), ref, rtol=1e-12)
    v0 = torch.tensor([0.0, 1e-20, 100.0], requires_grad=True)
    loss = hsc_loss(v0, torch.ones(3))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(v0.grad).all()


def test_pseudo_huber_is_exact_near_zero():
    sq = torch.tensor([0.0, 1e-10, 1e-4, 1.0, 1e6], dtype=torch.float32)
    ref = np.sqrt(sq.double().numpy() + 1) - 1
    ref[1] = 0.5e-10                                   # first-order expansion where float64 cancels
    assert np.allclose(pseudo_huber(sq).numpy(), ref, rtol=1e-6)


def test_logistic_loss_and_clamped_logit():
    z = torch.linspace(-30, 30, 61, dtype=torch.float64)
    for y in (0.0, 1.0):
        ref = y * np.log1p(np.exp(-z.numpy())) + (1 - y) * np.log1p(np.exp(z.numpy()))
        assert np.allclose(logistic_loss(z, torch.tensor(y)).numpy(), ref, rtol=1e-10)
    e = torch.tensor([0.0, 0.3, 1.0])
    lz = prob_logit(e)
    assert torch.isfinite(lz).all()
    assert lz[1] == pytest.approx(np.log(0.3 / 0.7), rel=1e-5)


def _data(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    normal = (0.5 + 0.1 * torch.randn(n, *SHAPE, generator=g)).clamp(0, 1)
    normal[:, :, 8:20, 8:20] += 0.3                       # a common bright square
    anomal = torch.rand(n, *SHAPE, generator=g)
    return normal.clamp(0, 1), anomal


@pytest.mark.parametrize("loss", LOSSES)
def test_outputs_have_the_shapes_and_ranges_of_section_4_1(loss):
    torch.manual_seed(0)
    model = build_model(loss, SHAPE, mean=0.5, std=0.25, dataset="fashion_mnist").eval()
    x = torch.cat(_data(3))
    with torch.no_grad():
        z, eta, score = model.outputs(x)
        per = model.loss(x, torch.tensor([0, 0, 0, 1, 1, 1.0]))
    shape = (6, 28, 28) if model.pixelwise else (6,)
    assert z.shape == eta.shape == score.shape == shape and per.shape == (6,)
    assert model.pixelwise == (loss in ("fcdd", "ssim_pixel", "unet")) and model.name == loss
    assert model.supervised == (loss in ("hsc", "logistic", "fcdd", "unet"))
    assert ((eta >= 0) & (eta <= 1)).all() and torch.isfinite(z).all()
    assert torch.allclose(torch.sigmoid(z), eta, atol=1e-5)                 # η̂ = σ(z)
    if loss == "svdd":
        assert torch.equal(z, score) and (score >= 0).all() and (eta >= 0.5).all()
    elif loss in ("hsc", "fcdd"):
        assert (score >= 0).all() and torch.allclose(eta, 1 - torch.exp(-score), atol=1e-6)
    elif loss in ("logistic", "unet"):
        assert torch.equal(z, score)
    else:                                                                  # ssim, ssim_pixel
        assert ((score >= 0) & (score <= 2)).all() and torch.allclose(score, 2 * eta, atol=1e-5)
    assert torch.equal(model(x[:2]), model.outputs(x[:2]).logit)


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_decreases_on_a_tiny_problem(loss):
    torch.manual_seed(1)
    normal, anomal = _data(8)
    model = build_model(loss, SHAPE, mean=0.5, std=0.25, dataset="fashion_mnist")
    x = torch.cat([normal, anomal]) if model.supervised else normal
    y = torch.cat([torch.zeros(8), torch.ones(8)]) if model.supervised else torch.zeros(8)
    if loss == "svdd":
        with torch.no_grad():
            model.train()
            model.set_center(model.head_features(normal).mean(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    history = []
    for _ in range(15):
        value = model.loss(x, y).mean()
        opt.zero_grad()
        value.backward()
        opt.step()
        history.append(float(value.detach()))
    assert np.mean(history[-3:]) < 0.8 * history[0], history


def test_svdd_network_is_bias_free_and_centre_avoids_zero():
    model = build_model("svdd", SHAPE)
    assert count_bias(model.net) == 0
    assert count_bias(build_model("hsc", SHAPE).net) > 0
    model.set_center(torch.tensor([0.0, -0.05, 0.05, 0.5] + [0.0] * 28), eps=0.1)
    assert model.c[:4].tolist() == pytest.approx([0.1, -0.1, 0.1, 0.5])


def test_head_features_follow_section_3_2_3():
    x = torch.rand(4, *SHAPE)
    expected = {"svdd": 32, "hsc": 32, "logistic": 32, "ssim": 100, "ssim_pixel": 100, "unet": 100}
    for loss, d in expected.items():
        model = build_model(loss, SHAPE).eval()
        with torch.no_grad():
            f = model.head_features(x)
        assert f.shape == (4, d), loss
    # the scalar network's head features are the layer before its final linear unit
    model = build_model("logistic", SHAPE).eval()
    with torch.no_grad():
        assert torch.allclose(model.net.linear(model.head_features(x)).squeeze(-1), model.logit(x), atol=1e-6)
    # vector networks: the output vector (HSC's v is its pseudo-Huber norm)
    model = build_model("hsc", SHAPE).eval()
    with torch.no_grad():
        assert torch.allclose(pseudo_huber((model.head_features(x) ** 2).sum(1)), model.score(x), atol=1e-6)
    with pytest.raises(NotImplementedError):
        build_model("fcdd", SHAPE).head_features(x)


def test_preprocessing_inside_the_model():
    model = build_model("hsc", (3, 32, 32), mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 2.0])
    x = torch.rand(2, 3, 32, 32)
    ref = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(model.prep(x), ref)
    ssim = build_model("ssim", (3, 32, 32), mean=0.4, std=0.2)           # grayscale statistics
    gray = (x * torch.tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(ssim.prep(x), (gray - 0.4) / 0.2, atol=1e-6)
    m, s = calad.losses.input_stats(x, grayscale=True)
    assert m.shape == s.shape == (1,) and m.item() == pytest.approx(gray.mean().item(), rel=1e-5)


def test_ssim_model_compares_intensities_so_z_scores_do_not_change_it():
    torch.manual_seed(0)
    a = build_model("ssim", SHAPE, mean=0.3, std=0.2)
    torch.manual_seed(0)
    b = build_model("ssim", SHAPE, mean=0.3, std=0.2)
    x = torch.rand(2, *SHAPE)
    a.eval(), b.eval()
    with torch.no_grad():
        rec = a.reconstruct(x)
        s = calad.losses.ssim_map(x, rec, pad_value=0.3)
        assert torch.allclose(a.similarity(x), s, atol=1e-6)
        assert torch.allclose(a.loss(x), (1 - s).flatten(1).mean(1), atol=1e-6)
        assert torch.allclose(a.score(x), b.score(x))


def test_pixelwise_losses_accept_masks_and_inputs_are_differentiable():
    x = torch.rand(2, *SHAPE, requires_grad=True)
    mask = torch.zeros(2, 28, 28)
    mask[1, 5:10, 5:10] = 1
    for loss in ("unet", "fcdd", "ssim_pixel"):
        model = build_model(loss, SHAPE).eval()
        value = model.loss(x, mask)
        assert value.shape == (2,)
        (g,) = torch.autograd.grad(value.sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    unet = build_model("unet", SHAPE).eval()
    with torch.no_grad():
        ref = torch.nn.functional.binary_cross_entropy_with_logits(unet.logit(x), mask, reduction="none").mean((1, 2))
        assert torch.allclose(unet.loss(x, mask), ref, atol=1e-6)


def test_bad_arguments_fail_with_one_line_messages():
    cases = [lambda: build_model("focal", SHAPE), lambda: build_model("svdd", (28, 28)),
             lambda: build_model("svdd", SHAPE, net="ae28"),
             lambda: build_model("ssim", (3, 32, 32), mean=[0.1, 0.2, 0.3]),
             lambda: build_model("hsc", SHAPE, std=0.0),
             lambda: build_model("hsc", SHAPE).outputs(torch.rand(2, 3, 28, 28))]
    for case in cases:
        with pytest.raises(ValueError) as err:
            case()
        assert "\n" not in str(err.value)
