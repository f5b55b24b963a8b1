"""Area under the per-region-overlap curve (AUPRO), by the MVTec AD definition (Bergmann et al., IJCV 2021).

For a threshold ``t`` a pixel is predicted anomalous when its score is ``≥ t``. The ground-truth
masks are split into connected components (8-connectivity, as the official MVTec evaluation
code); the **per-region overlap** is the fraction of each component's pixels predicted
anomalous, averaged over all components of all images; the **false-positive rate** is the
fraction of all anomaly-free pixels (of all images) predicted anomalous. AUPRO integrates the
PRO-versus-FPR curve (trapezoids, from ``(0, 0)``) up to ``fpr_limit`` (default 0.3, the
curve linearly interpolated at the limit) and divides by ``fpr_limit``, so a perfect map scores 1.

:func:`pro_curve` computes the curve **exactly at every distinct score** with one sort of the
pixels that matter: each anomaly-free pixel adds ``1/n_ok`` to the FPR once the threshold passes
it, each pixel of component ``r`` adds ``1/(|r| · n_regions)`` to the PRO; sorting by score and
taking cumulative sums gives both curves (ties are merged into one point). Pixels scoring below
the threshold at which the FPR first reaches ``fpr_limit`` cannot change the area, so
:func:`aupro` never sorts them (they are cut off with a linear-time partition), and it sums the
area directly: each anomaly-free pixel above the cut closes a curve segment of width ``1/n_ok``
at the PRO of the anomalous pixels scoring higher (plus half of those tied with it), so only
the anomalous pixels need a full sort.

Other libraries normalise differently: anomalib resamples each region's ROC curve on an index
grid and divides by the last FPR it reached, some code averages PRO at a fixed number of
FPR steps, uses 4-connectivity or labels components across the whole batch, and some report
the un-normalised area (≤ ``fpr_limit``). Numbers are comparable only under the same definition.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..profile import timed

__all__ = ["label_regions", "pro_curve", "aupro", "aupro_slow", "trapezoid_to"]

_STRUCTURE = {4: np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]]), 8: np.ones((3, 3), dtype=int)}


def _check(masks, maps) -> tuple[np.ndarray, np.ndarray]:
    masks = np.asarray(masks.cpu() if hasattr(masks, "cpu") else masks)
    maps = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps)
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None] if maps.ndim == 2 else maps
    if masks.shape != maps.shape or masks.ndim != 3:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} must both have shape (N, H, W)")
    if masks.dtype != bool:
        if not ((masks == 0) | (masks == 1)).all():
            raise ValueError("masks must be binary (0 = normal pixel, 1 = anomalous pixel)")
        masks = masks.astype(bool)
    if not masks.any():
        raise ValueError("AUPRO needs at least one anomalous pixel in the masks")
    if masks.all():
        raise ValueError("AUPRO needs at least one normal pixel in the masks (the FPR is undefined otherwise)")
    if not np.isfinite(maps).all():
        raise ValueError("anomaly maps contain NaN or infinite values")
    return masks, maps


def label_regions(masks: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of each mask (never across images), numbered ``1..n`` over the batch."""
    if connectivity not in _STRUCTURE:
        raise ValueError(f"connectivity = {connectivity} must be 4 or 8")
    structure = np.zeros((3, 3, 3), dtype=int)
    structure[1] = _STRUCTURE[connectivity]  # no connection between neighbouring images
    labels, n = ndimage.label(masks, structure=structure)
    return labels, n


def _curve(scores: np.ndarray, lab: np.ndarray, sizes: np.ndarray, n_ok: int, n_regions: int):
    """(fpr, pro, thresholds) at every distinct value of ``scores`` (pixels with region labels ``lab``)."""
    order = np.argsort(scores)[::-1]  # descending; ties are merged below, so the sort need not be stable
    s = scores[order]
    lab = lab[order]
    fpr = np.cumsum(lab == 0) / float(n_ok)
    pro = np.cumsum(np.where(lab > 0, 1.0 / (sizes[lab] * n_regions), 0.0))
    last = np.empty(len(s), dtype=bool)  # the last pixel of each group of equal scores
    np.not_equal(s[1:], s[:-1], out=last[:-1])
    last[-1] = True
    zero = np.zeros(1)
    return np.concatenate([zero, fpr[last]]), np.concatenate([zero, pro[last]]), s[last]


def pro_curve(masks, maps, *, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full PRO curve: ``(fpr, pro, thresholds)`` at every distinct score (plus the origin).

    ``fpr[i], pro[i]`` belong to ``thresholds[i-1]`` (predict anomalous when ``score ≥ threshold``).
    """
    masks, maps = _check(masks, maps)
    labels, n_regions = label_regions(masks, connectivity)
    lab = labels.ravel()
    sizes = np.bincount(lab, minlength=n_regions + 1).astype(np.float64)
    return _curve(maps.ravel(), lab, sizes, int(sizes[0]), n_regions)


def trapezoid_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under ``y(x)`` (``x`` non-decreasing) from ``x[0]`` to ``x_max``, interpolating at ``x_max``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    k = int(np.searchsorted(x, x_max, side="right"))  # x[:k] <= x_max
    xs, ys = x[:k], y[:k]
    if k < len(x) and (k == 0 or xs[-1] < x_max):
        x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
        y_lim = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0) if x1 > x0 else y1
        xs, ys = np.r_[xs, x_max], np.r_[ys, y_lim]
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


@timed("evaluation")
def aupro(masks, maps, fpr_limit: float = 0.3, *, connectivity: int = 8) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD definition; see module doc).

    ``masks``: binary ground truth ``(N, H, W)``; ``maps``: anomaly scores of the same shape
    (larger = more anomalous). Exact (every distinct score is a threshold).
    """
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit = {fpr_limit} must lie in (0, 1]")
    masks, maps = _check(masks, maps)
    labels, n_regions = label_regions(masks, connectivity)
    lab = labels.ravel()
    scores = maps.ravel()
    sizes = np.bincount(lab, minlength=n_regions + 1).astype(np.float64)
    n_ok = int(sizes[0])
    flat_mask = masks.ravel()
    # t*: the k-th largest anomaly-free score, where the FPR first reaches the limit
    k = max(1, min(n_ok, int(np.ceil(fpr_limit * n_ok - 1e-9))))
    ok_scores = scores[~flat_mask]
    t_star = np.partition(ok_scores, n_ok - k)[n_ok - k]
    ok_top = ok_scores[ok_scores >= t_star]
    c_eq = int(np.count_nonzero(ok_top == t_star))
    ok_top = np.sort(ok_top[ok_top > t_star])
    an = np.flatnonzero(flat_mask)
    an = an[scores[an] >= t_star]
    order = np.argsort(scores[an])
    an_s = scores[an][order]
    an_w = 1.0 / (sizes[lab[an][order]] * n_regions)
    above = np.concatenate([np.cumsum(an_w[::-1])[::-1], np.zeros(1)])  # above[i] = weight of an_s[i:]
    # each anomaly-free pixel above t* closes a segment of width 1/n_ok at the PRO of the anomalous
    # pixels scoring higher, plus half of those tied with it (the trapezoid of a tie group)
    p_gt = above[np.searchsorted(an_s, ok_top, side="right")]
    p_ge = above[np.searchsorted(an_s, ok_top, side="left")]
    area = float(np.sum(p_gt + p_ge)) / (2.0 * n_ok)
    # the tie group at t* crosses the limit: interpolate linearly inside it
    f_a, f_b = len(ok_top) / n_ok, (len(ok_top) + c_eq) / n_ok
    p_a = above[np.searchsorted(an_s, t_star, side="right")]
    p_b = above[0]
    p_lim = p_a + (p_b - p_a) * (fpr_limit - f_a) / (f_b - f_a)
    area += (fpr_limit - f_a) * (p_a + p_lim) / 2.0
    return area / fpr_limit


def aupro_slow(masks, maps, fpr_limit: float = 0.3, *, thresholds=None, connectivity: int = 8) -> float:
    """AUPRO by the straightforward definition: binarise at each threshold, measure every region.

    ``thresholds=None`` uses every distinct score (exact, slow); an integer ``k`` uses ``k``
    quantiles of the anomaly-free scores, as the original MVTec AD evaluation script did.
    For checking :func:`aupro` and for benchmarks.
    """
    masks, maps = _check(masks, maps)
    labels, n_regions = label_regions(masks, connectivity)
    ok = ~masks
    if thresholds is None:
        ts = np.unique(maps)
    elif np.isscalar(thresholds):
        ts = np.unique(np.quantile(maps[ok], np.linspace(0, 1, int(thresholds))))
    else:
        ts = np.unique(np.asarray(thresholds))
    fprs, pros = [0.0], [0.0]
    for t in ts[::-1]:
        pred = maps >= t
        fprs.append((pred & ok).sum() / ok.sum())
        hit = np.bincount(labels[pred], minlength=n_regions + 1)[1:]
        size = np.bincount(labels.ravel(), minlength=n_regions + 1)[1:]
        pros.append(float(np.mean(hit / size)))
    fprs.append(1.0)
    pros.append(1.0)
    return trapezoid_to(np.array(fprs), np.array(pros), fpr_limit) / fpr_limit
