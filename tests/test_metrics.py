"""Metrics (thesis §2.4.3, §4.2.2, §4.3) against brute force, scikit-learn and SciPy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage, stats
from sklearn.metrics import roc_auc_score

from calad_lib import metrics
from calad_lib.metrics.aupro import aupro_slow, pro_curve


# --- AUROC ----------------------------------------------------------------------------------------
def _auroc_pairs(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def test_auroc_is_the_pairwise_ranking_probability():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(y, 1.0), 1)  # with ties
    assert metrics.auroc(y, s) == pytest.approx(_auroc_pairs(y, s), abs=1e-12)
    assert metrics.auroc(torch.tensor(y), torch.tensor(s)) == pytest.approx(roc_auc_score(y, s))
    with pytest.raises(ValueError, match="both"):
        metrics.auroc(np.zeros(5), np.arange(5))
    with pytest.raises(ValueError, match="labels"):
        metrics.auroc(np.arange(5), np.arange(5))


def test_pixel_auroc_matches_sklearn_on_flattened_pixels():
    rng = np.random.default_rng(1)
    masks = rng.random((4, 8, 8)) < 0.2
    maps = rng.normal(masks * 1.0, 1.0)
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)


# --- ECE / MCE --------------------------------------------------------------------------------------
def _brute_bins(y, p, K):
    rows = []
    for k in range(K):
        lo, hi = k / K, (k + 1) / K
        inside = [i for i in range(len(p)) if (lo < p[i] <= hi) or (k == 0 and p[i] == 0.0)]
        if inside:
            freq = sum(y[i] for i in inside) / len(inside)
            conf = sum(p[i] for i in inside) / len(inside)
            rows.append((len(inside), abs(freq - conf)))
    n = len(p)
    return sum(c / n * g for c, g in rows), max(g for _, g in rows)


@pytest.mark.parametrize("K", [1, 3, 10, 15])
def test_ece_mce_match_brute_force(K):
    rng = np.random.default_rng(K)
    for trial in range(5):
        n = int(rng.integers(1, 40))
        p = rng.random(n) ** 3  # skewed: leaves empty bins
        p[rng.random(n) < 0.2] = 0.0
        p[rng.random(n) < 0.1] = 1.0
        p[: min(n, 3)] = np.round(p[: min(n, 3)] * K) / K  # values exactly on bin edges
        y = (rng.random(n) < p).astype(int)
        e, m = _brute_bins(y, p, K)
        assert metrics.ece(y, p, K) == pytest.approx(e, abs=1e-12)
        assert metrics.mce(y, p, K) == pytest.approx(m, abs=1e-12)


def test_reliability_edges_and_empty_bins():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.0, 1.0, 0.3, 0.1, 0.55])
    r = metrics.reliability(y, p, n_bins=10)
    assert list(r.columns) == ["bin", "lower", "upper", "count", "freq", "conf"]
    assert r["count"].tolist() == [2, 0, 1, 0, 0, 1, 0, 0, 0, 1]  # 0 and 0.1 -> bin 0; 0.3 -> (0.2, 0.3]
    assert np.isnan(r.loc[1, "freq"]) and np.isnan(r.loc[1, "conf"])
    assert r.loc[0, "conf"] == pytest.approx(0.05) and r.loc[0, "freq"] == 0.0
    # perfectly calibrated bins -> zero error; all-wrong certain predictions -> error 1
    assert metrics.ece([0, 1], [0.0, 1.0]) == 0.0 and metrics.mce([0, 1], [1.0, 0.0]) == 1.0
    assert metrics.DEFAULT_BINS == 10
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.ece([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="n_bins"):
        metrics.ece([0, 1], [0.5, 0.5], n_bins=0)


def test_pixel_ece_is_ece_over_pixels():
    rng = np.random.default_rng(2)
    masks = rng.random((3, 5, 5)) < 0.3
    eta = rng.random((3, 5, 5))
    assert metrics.pixel_ece(masks, eta) == pytest.approx(_brute_bins(masks.ravel().astype(int), eta.ravel(), 10)[0])
    assert metrics.pixel_mce(masks, eta) == pytest.approx(_brute_bins(masks.ravel().astype(int), eta.ravel(), 10)[1])


# --- AUPRO --------------------------------------------------------------------------------------------
def _aupro_reference(masks, maps, limit=0.3):
    """Straight from the definition: binarise at every distinct score, label regions with SciPy,
    average per-region overlap, global FPR, trapezoids from (0, 0) up to the limit, / limit."""
    regions = []
    for m, a in zip(masks, maps):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [(a, lab == i) for i in range(1, n + 1)]
    ok = ~masks
    pts = [(0.0, 0.0)]
    for t in sorted(np.unique(maps), reverse=True):
        pred = maps >= t
        fpr = (pred & ok).sum() / ok.sum()
        pro = np.mean([(a >= t)[r].sum() / r.sum() for a, r in regions])
        pts.append((fpr, pro))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 >= limit:
            break
        if x1 > limit:
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


def _blobs(rng, n, h, w, k=2):
    masks = np.zeros((n, h, w), dtype=bool)
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        for _ in range(int(rng.integers(0, k + 1))):
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(1, max(2, h // 4))
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    masks[0, 0, 0], masks[0, -1, -1] = True, False  # at least one anomalous and one normal pixel
    return masks


@pytest.mark.parametrize("seed", range(6))
def test_aupro_matches_the_definition_on_random_small_masks(seed):
    rng = np.random.default_rng(seed)
    masks = _blobs(rng, 5, 12, 10)
    maps = rng.normal(masks * 0.8, 1.0)
    if seed % 2:
        maps = np.round(maps, 1)  # many ties
    for limit in (0.3, 0.05, 1.0):
        ref = _aupro_reference(masks, maps, limit)
        assert metrics.aupro(masks, maps, fpr_limit=limit) == pytest.approx(ref, abs=1e-9)
    assert aupro_slow(masks, maps) == pytest.approx(_aupro_reference(masks, maps), abs=1e-9)
    assert aupro_slow(masks, maps, thresholds=200) == pytest.approx(_aupro_reference(masks, maps), abs=2e-2)


def test_aupro_perfect_random_and_curve():
    rng = np.random.default_rng(7)
    masks = _blobs(rng, 6, 16, 16)
    assert metrics.aupro(masks, masks * 1.0 + rng.random(masks.shape) * 0.1) == pytest.approx(1.0)
    # a random map: PRO ≈ FPR, so the normalised area ≈ limit / 2
    big = _blobs(rng, 30, 32, 32)
    assert metrics.aupro(big, rng.random(big.shape)) == pytest.approx(0.15, abs=0.03)
    fpr, pro, thr = pro_curve(masks, rng.random(masks.shape))
    assert fpr[0] == pro[0] == 0 and fpr[-1] == pytest.approx(1) and pro[-1] == pytest.approx(1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0) and np.all(np.diff(thr) < 0)
    with pytest.raises(ValueError, match="anomalous pixel"):
        metrics.aupro(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="shape"):
        metrics.aupro(masks, masks[:1] * 1.0)


def test_aupro_regions_do_not_cross_images():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, -1, :] = masks[1, 0, :2] = True  # would touch if the batch were one image
    maps = np.zeros((2, 4, 4))
    maps[0, -1, :] = 1.0  # only the first region (4 pixels) is found, not the second (2 pixels)
    # curve (0, 0) -> (0, 1/2) -> (1, 1): area to 0.3 is 0.3 (1/2 + 0.65) / 2; one merged region would give PRO 2/3
    assert metrics.aupro(masks, maps) == pytest.approx(0.575)


# --- kappa, Spearman ------------------------------------------------------------------------------------
def test_kappa_and_spearman():
    assert metrics.kappa(0.9, 0.8) == pytest.approx(0.5)
    assert metrics.kappa(0.7, 0.8) == pytest.approx(-0.5)
    np.testing.assert_allclose(metrics.kappa([0.9, 1.0], [0.8, 1.0]), [0.5, np.nan])
    a, b = np.array([1, 2, 3, 4, np.nan]), np.array([2, 1, 4, 3, 5])
    rho, p = metrics.spearman(a, b)
    assert rho == pytest.approx(stats.spearmanr(a[:4], b[:4]).statistic)


# --- conformal p-values and Benjamini-Hochberg ----------------------------------------------------------------
def test_conformal_pvalues_brute_force_and_uniformity():
    rng = np.random.default_rng(3)
    c, t = rng.normal(size=50), rng.normal(size=20)
    brute = [(1 + sum(ci >= ti for ci in c)) / 51 for ti in t]
    np.testing.assert_allclose(metrics.conformal_pvalues(c, t), brute)
    # exchangeable data: the test point's rank among n+1 is uniform -> p uniform on {1/(n+1), ..., 1}
    n, reps = 9, 20000
    draws = rng.normal(size=(reps, n + 1))
    p = np.array([metrics.conformal_pvalues(d[:n], d[n:])[0] for d in draws])
    counts = np.array([(np.isclose(p, k / (n + 1))).sum() for k in range(1, n + 2)])
    assert counts.sum() == reps
    assert stats.chisquare(counts).pvalue > 1e-3
    for alpha in (0.1, 0.2, 0.5):
        assert (p <= alpha).mean() <= alpha + 0.01


def _bh_brute(p, alpha):
    m = len(p)
    best = 0
    for k in range(1, m + 1):  # largest k such that at least k p-values are <= k α / m
        if np.sum(p <= k * alpha / m) >= k and sorted(p)[k - 1] <= k * alpha / m:
            best = k
    thr = sorted(p)[best - 1] if best else -1
    return p <= thr


def test_benjamini_hochberg_matches_brute_force_and_scipy():
    rng = np.random.default_rng(4)
    for trial in range(30):
        m = int(rng.integers(1, 30))
        p = np.where(rng.random(m) < 0.3, rng.random(m) * 0.01, rng.random(m))
        if trial % 3 == 0:
            p = np.round(p, 2)  # ties
        for alpha in (0.05, 0.2):
            got = metrics.benjamini_hochberg(p, alpha)
            np.testing.assert_array_equal(got, _bh_brute(p, alpha))
            np.testing.assert_array_equal(got, stats.false_discovery_control(p, method="bh") <= alpha)
    with pytest.raises(ValueError, match="alpha"):
        metrics.benjamini_hochberg([0.1], 1.5)


def test_pairs_changed_adds_up_to_the_auroc_change():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 70)
    s0 = np.round(rng.normal(y, 1.0), 1)
    s1 = np.round(s0 + rng.normal(0, 0.5, 70), 1)
    r = metrics.pairs_changed(y, s0, s1, chunk=7)
    assert r["fixed"] - r["broken"] == pytest.approx(roc_auc_score(y, s1) - roc_auc_score(y, s0), abs=1e-12)
    pos, neg = np.nonzero(y == 1)[0], np.nonzero(y == 0)[0]
    contrib = lambda s, i, j: 1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0
    gains = [contrib(s1, i, j) - contrib(s0, i, j) for i in pos for j in neg]
    assert r["fixed"] == pytest.approx(sum(g for g in gains if g > 0) / len(gains))
    assert r["broken"] == pytest.approx(-sum(g for g in gains if g < 0) / len(gains))


def test_wilcoxon_p_and_format_p():
    d = np.array([0.3, -0.1, 0.5, 0.0, np.nan, 0.2, 0.4])
    kept = np.array([0.3, -0.1, 0.5, 0.2, 0.4])
    assert metrics.wilcoxon_p(d) == pytest.approx(stats.wilcoxon(kept).pvalue)
    assert metrics.wilcoxon_p(d, "greater") == pytest.approx(stats.wilcoxon(kept, alternative="greater").pvalue)
    assert np.isnan(metrics.wilcoxon_p([0.0, 0.0, 1.0]))
    assert [metrics.format_p(p) for p in (0.0123, 0.0004, float("nan"))] == ["0.012", "< 0.001", "n/a"]
