"""Measurements of synthetic data: radially averaged power spectra and coverage.

* :func:`radial_power_spectrum` and :func:`spectral_slope` check the ``1/f^α`` behaviour
  that spectral images share with natural images (thesis §3.4; natural images have a
  power spectrum close to ``1/f²``, van der Schaaf & van Hateren 1996).
* :func:`coverage` measures how well one sample covers another (Naeem et al. 2020,
  "Reliable fidelity and diversity metrics for generative models", §3): the fraction of
  reference points whose k-nearest-neighbour ball (among the reference points) holds at
  least one candidate point. §3.4 argues that random images cannot cover a
  high-dimensional input space but can cover a frozen model's low-dimensional outputs.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

__all__ = ["radial_power_spectrum", "spectral_slope", "coverage"]


def radial_power_spectrum(x: torch.Tensor, *, window: bool = True, reduce: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean power ``|FFT|²`` of images ``(N, C, H, W)`` in rings of radial frequency.

    Each image channel has its mean removed and, with ``window=True``, is multiplied by
    a 2-D Hann window (to suppress the cross that non-periodic borders add to the
    spectrum). Rings are one frequency step (``1 / min(H, W)`` cycles per pixel) wide,
    from the first non-zero frequency up to the Nyquist frequency 0.5. Returns
    ``(frequency in cycles per pixel, mean power)``, both 1-D arrays; with
    ``reduce=False`` the power is per image, shape ``(N, n_frequencies)``.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    h, w = x.shape[-2:]
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    if window:
        x = x * (torch.hann_window(h, periodic=False, dtype=x.dtype, device=x.device)[:, None]
                 * torch.hann_window(w, periodic=False, dtype=x.dtype, device=x.device)[None, :])
    power = (torch.fft.fft2(x).abs() ** 2).mean(dim=1).cpu().numpy() / (h * w)  # (N, H, W)
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    r = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    step = 1.0 / min(h, w)
    ring = np.round(r / step).astype(int)
    nmax = int(np.floor(0.5 / step))
    keep = (ring >= 1) & (ring <= nmax)
    onehot = np.zeros((keep.sum(), nmax), dtype=np.float64)
    onehot[np.arange(keep.sum()), ring[keep] - 1] = 1.0
    onehot /= onehot.sum(axis=0, keepdims=True)
    rings = power[:, keep] @ onehot                                               # (N, nmax) ring means
    freqs = np.arange(1, nmax + 1) * step
    return (freqs, rings.mean(axis=0)) if reduce else (freqs, rings)


def spectral_slope(freqs: np.ndarray, power: np.ndarray, fmin: float | None = None,
                   fmax: float | None = None) -> tuple[float, float]:
    """Least-squares fit ``log P = c - α log f`` over ``[fmin, fmax]``; returns ``(α, c)``."""
    f, p = np.asarray(freqs, dtype=float), np.asarray(power, dtype=float)
    sel = (p > 0) & (f >= (fmin if fmin is not None else f.min())) & (f <= (fmax if fmax is not None else f.max()))
    if sel.sum() < 2:
        raise ValueError("spectral_slope needs at least two frequencies with positive power in [fmin, fmax]")
    slope, intercept = np.polyfit(np.log(f[sel]), np.log(p[sel]), 1)
    return float(-slope), float(intercept)


def _flat(a) -> np.ndarray:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return a.reshape(len(a), -1).astype(np.float64)


def coverage(reference, candidates, k: int = 5) -> float:
    """Naeem et al.'s coverage of ``reference`` points by ``candidates`` (both ``(N, ...)``, flattened).

    ``mean_i 1[min_j ‖c_j − r_i‖ < d_k(r_i)]`` where ``d_k(r_i)`` is the distance from
    ``r_i`` to its k-th nearest other reference point. 1 means every reference point has
    a candidate nearby; random candidates in a high-dimensional space give about 0.
    """
    ref, cand = _flat(reference), _flat(candidates)
    if ref.shape[1] != cand.shape[1]:
        raise ValueError(f"reference and candidates differ in dimension ({ref.shape[1]} vs {cand.shape[1]})")
    if not 1 <= k < len(ref):
        raise ValueError(f"k must lie in 1..{len(ref) - 1} for {len(ref)} reference points, got {k}")
    radius = NearestNeighbors(n_neighbors=k + 1).fit(ref).kneighbors(ref)[0][:, k]
    nearest = NearestNeighbors(n_neighbors=1).fit(cand).kneighbors(ref)[0][:, 0]
    return float(np.mean(nearest < radius))
