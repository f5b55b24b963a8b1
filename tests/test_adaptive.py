"""Location-adaptive calibration (beyond §4.3.2): patches, features, fits against scikit-learn, known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

import calad_lib as calad
from calad_lib.calibration import (LocalCalibrator, LocationPlatt, NotFittedError, PlattScaling, calibrate,
                                   context_features, network_features, position_features)
from calad_lib.localization import BrightnessModel, toy_case
from calad_lib.metrics import within_image_rank_corr
from calad_lib.synthesis import paste_patches
from calad_lib.perturbation import perturb


def _noise(n, size=16, mean=0.5, seed=0, channels=1):
    g = torch.Generator().manual_seed(seed)
    return (mean + 0.1 * torch.randn(n, channels, size, size, generator=g)).clamp(0, 1)


# --- pasted patches ------------------------------------------------------------------------------
def test_paste_patches_masks_are_exactly_the_pasted_pixels():
    normal = torch.zeros(12, 3, 24, 24)
    source = torch.ones(5, 3, 24, 24)
    x, m = paste_patches(normal, source, seed=3)
    assert x.shape == normal.shape and m.shape == (12, 24, 24) and m.dtype == torch.float32
    changed = (x != normal).any(1).float()
    assert torch.equal(changed, m)
    assert (m.flatten(1).sum(1) >= 1).all()                      # every image got an anomaly
    x2, m2 = paste_patches(normal, source, seed=3)                # seeded
    assert torch.equal(x, x2) and torch.equal(m, m2)
    x3, _ = paste_patches(normal, source, seed=4)
    assert not torch.equal(x, x3)


def test_paste_patches_respects_the_region_and_counts():
    normal, source = torch.zeros(50, 1, 40, 40), torch.ones(7, 1, 40, 40)
    _, m = paste_patches(normal, source, n=80, region=(0.0, 0.25, 0.75, 1.0), radius=(0.02, 0.05), seed=0)
    assert m.shape == (80, 40, 40)
    rows, cols = torch.nonzero(m.sum(0), as_tuple=True)
    # centres lie in the top-right quarter box; radii ≤ 0.05·40 = 2 pixels around it
    assert rows.max() <= 0.25 * 40 + 2 and cols.min() >= 0.75 * 40 - 2 - 1


def test_paste_patches_rejects_bad_input_in_one_line():
    with pytest.raises(ValueError, match="shape of the normal images") as e:
        paste_patches(torch.zeros(2, 1, 8, 8), torch.zeros(2, 3, 8, 8))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="radius"):
        paste_patches(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), radius=(0.3, 0.1))
    with pytest.raises(ValueError, match="region"):
        paste_patches(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), region=(0.5, 0.2, 0, 1))


# --- features ------------------------------------------------------------------------------------
def test_context_features_are_box_means_inside_the_image():
    z = torch.randn(2, 9, 9, generator=torch.Generator().manual_seed(0))
    f = context_features(z, scales=(3 / 9,))                      # one 3×3 box and the image mean
    assert f.shape == (2, 2, 9, 9)
    a = z.numpy()
    for n in range(2):
        for i in range(9):
            for j in range(9):
                win = a[n, max(0, i - 1):i + 2, max(0, j - 1):j + 2]   # border windows average inside pixels only
                assert f[n, 0, i, j].item() == pytest.approx(win.mean(), abs=1e-5)
        assert torch.allclose(f[n, 1], torch.full((9, 9), a[n].mean()), atol=1e-6)


def test_position_features_are_the_cosine_basis():
    p = position_features(4, 8, degree=2)
    assert p.shape == (8, 4, 8)
    u = (np.arange(8) + 0.5) / 8
    v = (np.arange(4) + 0.5) / 4
    np.testing.assert_allclose(p[0].numpy(), np.tile(np.cos(np.pi * u), (4, 1)), atol=1e-6)        # (i, j) = (1, 0)
    np.testing.assert_allclose(p[-1].numpy(), np.outer(np.cos(2 * np.pi * v), np.cos(2 * np.pi * u)), atol=1e-6)


def test_network_features_hook_the_last_feature_map():
    model = calad.losses.build_model("fcdd", (3, 32, 32), net="fcdd_small")
    x = torch.rand(3, 3, 32, 32)
    z, f = network_features(model, x)
    assert torch.allclose(z, model.logit(x))
    assert f.shape == (3, 128, 32, 32)                             # fcdd_small ends with 128 channels
    with pytest.raises(ValueError, match="no .net"):
        network_features(BrightnessModel(), x)


# --- fits against independent implementations ------------------------------------------------------
def _maps(n=40, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, size, size, generator=g)
    y = (torch.rand(n, size, size, generator=g) < torch.sigmoid(1.5 * z - 1.0)).double()
    return z, y


def test_local_calibrator_on_the_logit_alone_is_per_pixel_platt():
    z, y = _maps()
    local = LocalCalibrator(("logit",), l2=0.0).fit(z, y)
    platt = PlattScaling().fit(z.double(), y)
    assert local.w_[0].item() == pytest.approx(platt.a_, rel=1e-4)
    assert local.c_ == pytest.approx(platt.c_, abs=1e-4)


def test_local_calibrator_matches_scikit_learn_on_its_design():
    z, y = _maps(n=30, size=8, seed=1)
    cal = LocalCalibrator(("logit", "context", "position"), l2=1e-3, scales=(0.25, 0.5)).fit(z, y)
    X = cal.design(z).permute(0, 2, 3, 1).reshape(-1, len(cal.w_)).double().numpy()
    mu, sd = X.mean(0), X.std(0, ddof=1)
    Xs = (X - mu) / sd
    m = len(Xs)
    ref = LogisticRegression(C=1.0 / (1e-3 * m), tol=1e-10, max_iter=5000).fit(Xs, y.flatten().numpy())
    ours = cal.transform(z).flatten().double().numpy()
    theirs = ref.decision_function(Xs)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_location_platt_is_one_platt_per_location():
    z, y = _maps(n=60, size=3, seed=2)
    cal = LocationPlatt(l2=1e-3).fit(z, y)
    zs = (z - z.mean(0)) / z.std(0)
    for i in range(3):
        for j in range(3):
            ref = LogisticRegression(C=1.0 / (1e-3 * 60), tol=1e-12, max_iter=5000)
            ref.fit(zs[:, i, j].double().numpy().reshape(-1, 1), y[:, i, j].numpy())
            np.testing.assert_allclose(cal.transform(z)[:, i, j].numpy(),
                                       ref.decision_function(zs[:, i, j].double().numpy().reshape(-1, 1)), atol=1e-3)


# --- known answers ---------------------------------------------------------------------------------
def test_corner_toy_position_aware_beats_per_pixel_platt():
    r = toy_case("corner", n=60, seed=0)
    # per-pixel Platt is one increasing map: the ranking, hence AUROC/AUPRO and within-image order, are the base's
    assert r["platt"]["pixel_auroc"] == pytest.approx(r["base"]["pixel_auroc"], abs=1e-12)
    assert r["platt_patches"]["aupro"] == pytest.approx(r["base"]["aupro"], abs=1e-12)
    assert r["platt"]["rank_corr"] == pytest.approx(1.0) and r["platt_patches"]["rank_corr"] == pytest.approx(1.0)
    for k in ("local_position", "location_platt", "local_context"):
        assert r[k]["pixel_auroc"] > r["platt"]["pixel_auroc"] + 0.05, k
        assert r[k]["aupro"] > r["platt"]["aupro"] + 0.1, k
        assert r[k]["rank_corr"] < 0.9, k                           # they reorder pixels within an image


def test_offset_toy_only_the_context_calibrator_adapts_to_the_image():
    r = toy_case("offset", n=60, seed=1)
    assert r["local_context"]["pixel_auroc"] > r["platt"]["pixel_auroc"] + 0.1
    assert abs(r["local_position"]["pixel_auroc"] - r["platt"]["pixel_auroc"]) < 0.05   # position alone cannot help


def test_platt_cannot_reorder_pixels_within_an_image():
    base = BrightnessModel()
    cm = calibrate(base, "platt", normal=_noise(30), anomalous=_noise(30, mean=0.65, seed=1), n=30, augment=False,
                   progress=False)
    x = _noise(5, seed=2)
    z, zc = base.logit(x), cm.logit(x)
    for i in range(5):
        assert np.array_equal(np.argsort(z[i].flatten().numpy(), kind="stable"),
                              np.argsort(zc[i].detach().flatten().numpy(), kind="stable"))
        assert spearmanr(z[i].flatten(), zc[i].detach().flatten()).statistic == pytest.approx(1.0)
    assert within_image_rank_corr(z, zc.detach()) == pytest.approx(1.0)


# --- the model wrapper and the protocol ---------------------------------------------------------------
def test_adaptive_model_is_an_anomaly_model_that_perturbation_can_use():
    base = BrightnessModel()
    normal, source = _noise(20, size=16), _noise(20, size=16, mean=0.7, seed=1)
    model = calibrate(base, "local", normal=normal, anomalous=source, n=20, anomalies="pasted", augment=False,
                      progress=False)
    assert model.pixelwise and model.name == "local_context+position[brightness]"
    x = _noise(4, size=16, seed=3)
    o = model.outputs(x)
    assert o.logit.shape == (4, 16, 16) and torch.allclose(o.eta, torch.sigmoid(o.logit))
    assert model.loss(x, torch.zeros(4)).shape == (4,)
    assert model.loss(x, torch.zeros(4, 16, 16)).shape == (4,)
    xt = perturb(model, x, eps=0.01)
    assert (xt - x).abs().max() == pytest.approx(0.01, abs=1e-6)
    assert (model.loss(xt, torch.zeros(4)) < model.loss(x, torch.zeros(4))).all()


def test_one_pass_fits_the_same_calibrators_as_separate_passes():
    base = BrightnessModel()
    normal, source = _noise(10, size=12), _noise(10, size=12, mean=0.7, seed=1)
    kw = dict(normal=normal, anomalous=source, n=16, anomalies="pasted", augment=False, seed=4, progress=False,
              batch_size=8)

    def local(features):
        return LocalCalibrator(features, seed=4)

    both = calibrate(base, {"a": local(("logit", "context")), "b": local(("logit", "position")),
                            "platt": PlattScaling()}, **kw)
    a = calibrate(base, {"a": local(("logit", "context"))}, **kw)["a"]
    b = calibrate(base, {"b": local(("logit", "position"))}, **kw)["b"]
    platt = calibrate(base, "platt", **kw)
    x = _noise(3, size=12, seed=5)
    assert torch.allclose(both["a"].logit(x), a.logit(x), atol=1e-5)      # another calibrator does not change the draws
    assert torch.allclose(both["b"].logit(x), b.logit(x), atol=1e-5)
    assert both["platt"].calibrator.coefficients() == platt.calibrator.coefficients()
    # forward passes in smaller batches than the draws give the same fit
    small = calibrate(base, {"a": local(("logit", "context"))}, forward_batch=3, **kw)["a"]
    assert torch.allclose(small.logit(x), a.logit(x), atol=1e-6)


def test_head_on_network_features_fits_and_applies():
    model = calad.losses.build_model("fcdd", (3, 32, 32), net="fcdd_small").eval()
    normal, source = torch.rand(3, 3, 32, 32) * 0.2, torch.rand(3, 3, 32, 32)
    head = calibrate(model, {"net": LocalCalibrator(("logit", "network"), l2=1e-2)}, normal=normal, anomalous=source,
                     n=3, anomalies="pasted", augment=False, progress=False)["net"]
    assert len(head.calibrator.w_) == 1 + 128 and head.calibrator.reads == "feature_maps"
    assert head.outputs(torch.rand(2, 3, 32, 32)).logit.shape == (2, 32, 32)


def test_bad_arguments_are_rejected_in_one_line():
    base = BrightnessModel()
    with pytest.raises(ValueError, match="unknown feature group"):
        LocalCalibrator(("logit", "colour"))
    with pytest.raises(ValueError, match="unknown calibration method"):
        calibrate(base, "isotonic", normal=_noise(2), anomalous=_noise(2), progress=False)
    det = calad.losses.build_model("svdd", (1, 28, 28), net="lenet28")
    with pytest.raises(ValueError, match="pixel-wise"):
        calibrate(det, "local", normal=torch.rand(2, 1, 28, 28), anomalous=torch.rand(2, 1, 28, 28), progress=False)
    with pytest.raises(ValueError, match="pixel-wise"):
        calibrate(det, "platt", anomalies="pasted", normal=torch.rand(2, 1, 28, 28), anomalous=torch.rand(2, 1, 28, 28),
                  progress=False)
    with pytest.raises(ValueError, match="both normal"):
        LocalCalibrator().fit(torch.randn(2, 4, 4), torch.zeros(2))
    with pytest.raises(NotFittedError, match="not fitted"):
        LocationPlatt().transform(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="unknown toy case"):
        toy_case("stripes")
