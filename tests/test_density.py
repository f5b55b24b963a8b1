"""The exact-likelihood model (PixelCNN), typicality, likelihood ratios and the simple OOD images."""
import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

import calad_lib as calad
from calad_lib.uncertainty import density as D
from calad_lib.uncertainty import likelihood as LK
from calad_lib.train import CacheWarning

pytestmark = pytest.mark.usefixtures("one_thread", "model_cache")


def _random_model(shape, levels, seed=0, **kw):
    torch.manual_seed(seed)
    m = D.PixelCNN(shape, levels=levels, **kw).double()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.7)
    return m.eval()


@pytest.mark.parametrize("blocks,n_mix", [(0, 1), (1, 3), (2, 2)])
def test_probabilities_of_every_image_sum_to_one(blocks, n_mix):
    """On a 2×3 image with 4 levels all 4⁶ images are enumerated: an exact, normalised density."""
    levels, shape = 4, (1, 2, 3)
    m = _random_model(shape, levels, filters=6, blocks=blocks, n_mix=n_mix, first_kernel=3)
    grid = torch.tensor(list(itertools.product(range(levels), repeat=6)), dtype=torch.float64)
    x = (grid / (levels - 1)).view(-1, *shape)
    with torch.no_grad():
        p = m.log_prob(x).exp()
    assert p.min() > 0
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-9)


def test_each_pixel_depends_only_on_earlier_pixels():
    m = _random_model((1, 5, 5), 16, filters=8, blocks=2, first_kernel=5)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(16, (1, 1, 5, 5), generator=g).double() / 15
    base = m.pixel_log_prob(x).flatten()
    for j in range(25):
        y = x.clone().view(-1)
        y[j] = 1.0 - y[j] if y[j] != 0.5 else 0.0
        changed = m.pixel_log_prob(y.view(1, 1, 5, 5)).flatten()
        assert torch.equal(changed[:j], base[:j]), f"pixel {j} leaks into earlier conditionals"
        assert not torch.equal(changed[j:], base[j:])          # but it does matter for itself


def test_discretized_logistic_matches_scipy():
    levels = 8
    mu, log_s = 0.2, math.log(0.3)
    params = torch.tensor([0.0, mu, log_s], dtype=torch.float64).view(1, 3, 1, 1).expand(levels, 3, 1, 1)
    k = torch.arange(levels, dtype=torch.float64).view(levels, 1, 1)
    got = D.discretized_logistic_logp(k, params, levels).flatten().exp().numpy()
    d = 1 / (levels - 1)
    centres = 2 * d * np.arange(levels) - 1
    cdf = lambda t: stats.logistic.cdf(t, loc=mu, scale=0.3)  # noqa: E731
    want = cdf(centres + d) - cdf(centres - d)
    want[0], want[-1] = cdf(centres[0] + d), 1 - cdf(centres[-1] - d)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert got.sum() == pytest.approx(1.0, abs=1e-12)


def test_discretized_logistic_is_finite_for_sharp_components():
    """Tiny scales (clamped at e^-7) far from the bin give a finite, very negative log-probability."""
    params = torch.tensor([0.0, -1.0, -30.0], dtype=torch.float64).view(1, 3, 1, 1)
    lp = D.discretized_logistic_logp(torch.full((1, 1, 1), 200.0, dtype=torch.float64), params, 256)
    assert torch.isfinite(lp).all() and lp.item() < -100


def test_bits_per_dim_and_quantisation():
    m = _random_model((1, 4, 4), 256, filters=4, blocks=0, first_kernel=3).float()
    x = torch.rand(3, 1, 4, 4)
    with torch.no_grad():
        np.testing.assert_allclose(m.bits_per_dim(x), -m.log_prob(x) / (16 * math.log(2)), rtol=1e-6)
        # images with the same quantised levels have the same likelihood
        assert torch.equal(m.log_prob(x), m.log_prob(D.quantize(x, 256) / 255 + 1e-4))
    assert D.quantize(torch.tensor([0.0, 0.5, 1.0]), 256).tolist() == [0.0, 128.0, 255.0]


def test_bad_shapes_and_settings_raise_one_line():
    with pytest.raises(ValueError, match="single-channel"):
        D.PixelCNN((3, 8, 8))
    with pytest.raises(ValueError, match="odd kernel"):
        D.MaskedConv2d(1, 1, 4, "A")
    with pytest.raises(ValueError, match="mask_type"):
        D.MaskedConv2d(1, 1, 3, "C")
    m = D.PixelCNN((1, 8, 8), filters=4, blocks=0)
    with pytest.raises(ValueError, match=r"expects images \(N, 1, 8, 8\)"):
        m.log_prob(torch.rand(2, 1, 9, 9))
    with pytest.raises(ValueError, match="mutation_rate"):
        D.DensityConfig(mutation_rate=1.0)
    with pytest.raises(ValueError, match="training images"):
        D.fit_density(D.DensityConfig(), torch.rand(4, 3, 8, 8))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        D.fit_density(D.DensityConfig(), torch.rand(4, 1, 8, 8) * 2)


def test_typicality_and_likelihood_ratio():
    train = np.array([-10.0, -12.0, -14.0])               # mean -12
    np.testing.assert_allclose(D.typicality([-12.0, -9.0, -20.0], train), [0.0, -3.0, -8.0])
    np.testing.assert_allclose(D.likelihood_ratio([-5.0, -7.0], [-6.0, -6.0]), [1.0, -1.0])
    with pytest.raises(ValueError, match="train_logp"):
        D.typicality([1.0], [])
    with pytest.raises(ValueError, match="same shape"):
        D.likelihood_ratio([1.0, 2.0], [1.0])


def test_density_detector_scores():
    m = _random_model((1, 4, 4), 16, filters=4, blocks=1, first_kernel=3).float()
    bg = _random_model((1, 4, 4), 16, seed=3, filters=4, blocks=0, first_kernel=3).float()
    x = torch.rand(5, 1, 4, 4)
    with torch.no_grad():
        lp, lpb = m.log_prob(x), bg.log_prob(x)
        like = D.DensityDetector(m).outputs(x)
        typ = D.DensityDetector(m, "typicality", train_mean=-30.0).outputs(x)
        rat = D.DensityDetector(m, "ratio", background=bg).outputs(x)
    torch.testing.assert_close(like.score, -lp / 16)
    torch.testing.assert_close(typ.score, torch.from_numpy(-D.typicality(lp.numpy(), [-30.0]) / 16).float())
    torch.testing.assert_close(rat.score, torch.from_numpy(-D.likelihood_ratio(lp.numpy(), lpb.numpy()) / 16).float())
    torch.testing.assert_close(like.eta, torch.sigmoid(like.logit))
    with pytest.raises(ValueError, match="train_mean"):
        D.DensityDetector(m, "typicality")
    with pytest.raises(ValueError, match="background"):
        D.DensityDetector(m, "ratio")
    with pytest.raises(ValueError, match="unknown statistic"):
        D.DensityDetector(m, "entropy")


def test_perturb_rate():
    g = torch.Generator().manual_seed(0)
    k = torch.zeros(200_000)
    out = D.perturb(k, 0.2, 256, g)
    # a replaced level equals the old one with probability 1/256
    assert (out != k).float().mean().item() == pytest.approx(0.2 * 255 / 256, abs=0.005)
    assert out.max() <= 255 and out.min() >= 0
    assert torch.equal(D.perturb(k, 0.0, 256, g), k)


def _tiny_data(n=24):
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 1, 6, 6)
    x[:, :, 2:4, 1:5] = torch.rand(n, 1, 1, 1, generator=g) * 0.3 + 0.7     # a bright bar on black
    return x


def test_training_lowers_bits_per_dim_and_is_cached(monkeypatch):
    x = _tiny_data()
    cfg = D.DensityConfig(filters=8, blocks=1, n_mix=2, first_kernel=3, epochs=15, batch_size=8, lr=1e-2)
    untrained = cfg.build(x.shape[1:])
    m = D.fit_density(cfg, x, progress=False)
    with torch.no_grad():
        before, after = untrained.bits_per_dim(x).mean().item(), m.bits_per_dim(x).mean().item()
    assert after < before - 1.0
    assert D.cache_path(cfg, x).exists()
    monkeypatch.setattr(D, "_fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = D.fit_density(cfg, x, progress=False)
    for a, b in zip(m.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert D.load_cached(cfg, x) is not None
    assert D.load_cached(cfg, x[:-1]) is None                 # other data, other key


def test_corrupted_cache_is_reported_and_retrained():
    x = _tiny_data(8)
    cfg = D.DensityConfig(filters=4, blocks=0, n_mix=1, first_kernel=3, epochs=1, batch_size=4)
    D.fit_density(cfg, x, progress=False)
    path = D.cache_path(cfg, x)
    path.write_bytes(b"not a model")
    with pytest.warns(CacheWarning, match="unreadable"):
        D.fit_density(cfg, x, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        D.fit_density(cfg, x, progress=False)                 # the rewritten file loads cleanly


def test_background_training_is_seeded():
    x = _tiny_data(8)
    cfg = D.DensityConfig(filters=4, blocks=0, n_mix=1, first_kernel=3, epochs=2, batch_size=4, mutation_rate=0.3)
    a = D.fit_density(cfg, x, progress=False, cache=False)
    b = D.fit_density(cfg, x, progress=False, cache=False)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)


def test_simple_images():
    d = LK.simple_images("digits", 10, seed=1)
    assert d.shape == (10, 1, 28, 28) and d.dtype == torch.float32
    assert d[..., :4, :].abs().max() == 0 and d[..., :, -4:].abs().max() == 0    # MNIST's 4-pixel border
    assert d.max() > 0.9
    c = LK.simple_images("constant", 6, seed=2)
    assert torch.equal(c.amin(dim=(1, 2, 3)), c.amax(dim=(1, 2, 3)))
    s = LK.simple_images("smooth", 4, seed=3)
    assert s.amin(dim=(1, 2, 3)).max() == 0 and s.amax(dim=(1, 2, 3)).min() == pytest.approx(1.0)
    # smooth images: neighbouring pixels are strongly correlated, unlike uniform noise
    corr = np.corrcoef(s[:, 0, :, :-1].flatten(), s[:, 0, :, 1:].flatten())[0, 1]
    assert corr > 0.9
    assert torch.equal(LK.simple_images("smooth", 4, seed=3), s)
    with pytest.raises(ValueError, match="unknown simple image kind"):
        LK.simple_images("mnist", 3)
    assert LK.SIMPLE_KINDS == ("digits", "constant", "smooth")


def test_ood_sources_shapes_and_in_distribution_draw():
    test = torch.rand(50, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    src = LK.ood_sources(test, 6, seed=1, generator=g)
    assert list(src) == list(LK.SOURCE_KEYS) and next(iter(src)) == LK.IN_DISTRIBUTION
    for x in src.values():
        assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    # the in-distribution draw is a seeded subset of the test images
    picked = torch.randperm(50, generator=torch.Generator().manual_seed(0))[:6]
    assert torch.equal(src[LK.IN_DISTRIBUTION], test[picked])
    np.testing.assert_allclose(LK.bits_per_dim([-784 * np.log(2)]), [1.0])


def test_detection_table_and_verdicts():
    rng = np.random.default_rng(0)
    test = rng.normal(-100, 1, 200)
    lp = {LK.IN_DISTRIBUTION: test, "easy": test + 50, "hard": test - 50}          # "easy" is *more* likely
    logp = {"model": lp, "local background": {k: v + (60 if k == "easy" else 0) for k, v in lp.items()}}
    tab = LK.detection_table(logp, test)
    assert list(tab.index) == ["easy", "hard"]
    assert list(tab.columns) == ["bits/dim", "above test median", "likelihood", "typicality", "ratio (local bg)"]
    assert tab.loc["easy", "likelihood"] == 0.0 and tab.loc["hard", "likelihood"] == 1.0
    assert tab.loc["easy", "typicality"] == 1.0 and tab.loc["easy", "above test median"] == 1.0
    # the background finds "easy" far more likely than the model does: the ratio flags it; where the
    # background equals the model ("hard"), the ratio is blind (AUROC 0.5), clearly worse than the likelihood
    assert tab.loc["easy", "ratio (local bg)"] == 1.0 and tab.loc["hard", "ratio (local bg)"] == 0.5
    v = LK.statistic_verdicts(tab).set_index("key")
    assert list(v.index) == ["a1", "typicality", "ratio_local_bg"]
    assert v.loc["a1", "verdict"].startswith("holds: 1 of 2") and v.loc["a1", "count"] == 1
    assert v.loc["typicality", "verdict"].startswith("holds")
    assert v.loc["ratio_local_bg", "verdict"].startswith("mixed") and "hard" in v.loc["ratio_local_bg", "detail"]
    assert LK.statistic_key("ratio (perturbed bg)") == "ratio_perturbed_bg"
