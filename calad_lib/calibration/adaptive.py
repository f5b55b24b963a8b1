"""Location-adaptive post-hoc calibration of anomaly maps (beyond the thesis: the open question of §4.3.2, ch. 5).

Per-pixel Platt scaling and β calibration (§3.2, Proposition 1) apply **one strictly increasing map to
every pixel**: they cannot change which pixel of an image looks most anomalous, nor bring in where
anomalies tend to be. Two calibrators that can, both fitted post hoc on a frozen pixel-wise base:

* :class:`LocalCalibrator` — a logistic model of the per-pixel label on **per-pixel features**
  (eq. 2.15 averaged over pixels), a superset of per-pixel Platt:

  ``z'_p = a z_p + Σ_s b_s (B_s * z)_p + d · mean(z) + Σ_ij θ_ij cos(π i u_p) cos(π j v_p) + w · f_p + c``

  with ``"logit"`` the base logit ``z``; ``"context"`` box means of ``z`` at a few scales (a learnt
  linear filter: centre–surround contrast, smoothing) and the image mean of ``z``; ``"position"`` a
  low-order cosine basis of the pixel's normalised position ``(u, v)`` (a learnt location prior);
  ``"network"`` the base network's last feature map, upsampled — a **1×1-convolution calibration
  head**, §3.2.3 made pixel-wise. Fitted on standardised features with a small L2 penalty, on a
  random subset of the pixels.
* :class:`LocationPlatt` — one Platt transform ``(a_p, c_p)`` **per map location** ``p``: a second
  reading of "calibrating each output pixel of the anomaly map with Platt scaling" (§4.3.2), fitted
  by batched Newton steps with a small ridge.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .base import Calibrator
from .logistic import fit_logistic, one_thread

__all__ = ["LocalCalibrator", "LocationPlatt", "context_features", "position_features", "FEATURES"]

#: feature groups a :class:`LocalCalibrator` may use
FEATURES = ("logit", "context", "position", "network")


def _kernel(scale: float, size: int) -> int:
    k = 2 * int(scale * size // 2) + 1
    return max(3, min(k, 2 * (size // 2) - 1 if size > 2 else 1))


def context_features(z: torch.Tensor, scales: Sequence[float] = (1 / 16, 1 / 8, 1 / 4)) -> torch.Tensor:
    """Box means of maps ``z (N, H, W)`` at each scale (fraction of the side) and the image mean: ``(N, k, H, W)``.

    Borders average over the pixels inside the image only. Differentiable.
    """
    x = z.unsqueeze(1)
    h = z.shape[-2]
    out = [F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
           for k in (_kernel(s, h) for s in scales)]
    out.append(z.mean(dim=(-2, -1), keepdim=True).unsqueeze(1).expand_as(x))
    return torch.cat(out, dim=1)


def position_features(h: int, w: int, degree: int = 2, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The cosine basis ``cos(π i u) cos(π j v)``, ``0 ≤ i, j ≤ degree``, ``(i, j) ≠ (0, 0)``.

    Returns ``((degree + 1)² − 1, H, W)``; ``u, v`` are the pixel centres' positions in ``(0, 1)``.
    """
    u = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    v = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    feats = [torch.cos(math.pi * j * v)[:, None] * torch.cos(math.pi * i * u)[None, :]
             for j in range(degree + 1) for i in range(degree + 1) if (i, j) != (0, 0)]
    return torch.stack(feats) if feats else torch.zeros(0, h, w, device=device, dtype=dtype)


def _labels_map(y, z: torch.Tensor) -> torch.Tensor:
    y = torch.as_tensor(y, dtype=torch.float64, device=z.device)
    if y.ndim == 1 and y.shape[0] == z.shape[0]:
        y = y.view(-1, 1, 1).expand_as(z)
    if y.shape != z.shape:
        raise ValueError(f"labels of shape {tuple(y.shape)} must be masks {tuple(z.shape)} or one label per image")
    if not torch.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (normal pixel) or 1 (anomalous pixel)")
    if y.min() == y.max():
        raise ValueError("calibration needs both normal (0) and anomalous (1) pixels; only one class was given")
    return y


def _check_maps(z, what: str = "z") -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.ndim != 3 or z.numel() == 0:
        raise ValueError(f"{what} must be a non-empty tensor of maps (N, H, W)")
    if not torch.isfinite(z).all():
        raise ValueError(f"{what} contains NaN or infinite values; check the base model's outputs")
    return z


class LocalCalibrator(Calibrator):
    """Logistic calibration of a map on per-pixel features (module doc); a superset of per-pixel Platt.

    Parameters
    ----------
    features : subset of :data:`FEATURES`; ``"logit"`` is always used. With ``"network"`` the
        calibrator reads ``(z, feature maps)`` from its base (``reads = "feature_maps"``).
    scales : box sizes of the ``"context"`` features, as fractions of the map side.
    degree : order of the ``"position"`` cosine basis (``(degree+1)² − 1`` features).
    l2 : L2 penalty on the standardised weights (not the intercept).
    max_pixels, max_values : the fit uses a random subset of at most ``max_pixels`` pixels (the mean
        loss stays unbiased), and fewer when ``pixels × features`` would pass ``max_values`` (but at
        least 20,000 pixels).
    seed : seeds the choice of pixels.
    """

    pixelwise_only = True

    def __init__(self, features: Sequence[str] = ("logit", "context", "position"), *,
                 scales: Sequence[float] = (1 / 16, 1 / 8, 1 / 4), degree: int = 2, l2: float = 1e-4,
                 max_pixels: int = 100_000, max_values: int = 3_000_000, seed: int = 0):
        feats = tuple(dict.fromkeys(("logit", *features)))
        bad = [f for f in feats if f not in FEATURES]
        if bad:
            raise ValueError(f"unknown feature group {bad[0]!r}; choose from {', '.join(FEATURES)}")
        if "context" in feats and (not len(scales) or any(not 0 < s <= 1 for s in scales)):
            raise ValueError(f"scales = {scales} must be fractions of the map side in (0, 1]")
        if int(degree) < 1 and "position" in feats:
            raise ValueError(f"degree = {degree} must be at least 1 for position features")
        if not l2 >= 0:
            raise ValueError(f"l2 = {l2} must be >= 0")
        if int(max_pixels) < 100:
            raise ValueError(f"max_pixels = {max_pixels} must be at least 100")
        self.features, self.scales, self.degree = feats, tuple(float(s) for s in scales), int(degree)
        self.l2, self.max_pixels, self.max_values, self.seed = float(l2), int(max_pixels), int(max_values), int(seed)
        self.name = "local" if len(feats) == 1 else "local_" + "+".join(f for f in feats if f != "logit")
        self.reads = "feature_maps" if "network" in feats else "logit"
        self.w_: torch.Tensor | None = None

    def _split(self, X) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.reads == "feature_maps":
            if not (isinstance(X, tuple) and len(X) == 2):
                raise ValueError("the 'network' features need X = (z, feature maps); use "
                                 "calad.calibration.network_features(base, x)")
            return X
        return X, None

    def design(self, z: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Per-pixel features ``(N, k, H, W)`` of maps ``z (N, H, W)``; ``extra``: network features ``(N, C, H, W)``."""
        parts = [z.unsqueeze(1)]
        if "context" in self.features:
            parts.append(context_features(z, self.scales))
        if "position" in self.features:
            pos = position_features(*z.shape[-2:], self.degree, device=z.device, dtype=z.dtype)
            parts.append(pos.unsqueeze(0).expand(z.shape[0], -1, -1, -1))
        if extra is not None:
            if extra.ndim != 4 or extra.shape[0] != z.shape[0] or extra.shape[-2:] != z.shape[-2:]:
                raise ValueError("the 'network' feature maps must be (N, C, H, W) matching z")
            parts.append(extra.to(z.dtype))
        return torch.cat(parts, dim=1)

    def n_features(self, extra: torch.Tensor | None = None) -> int:
        k = 1 + (len(self.scales) + 1 if "context" in self.features else 0)
        k += (self.degree + 1) ** 2 - 1 if "position" in self.features else 0
        return k + (extra.shape[1] if extra is not None else 0)

    def sample(self, z: torch.Tensor, y, extra: torch.Tensor | None = None, *, keep: float = 1.0,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``(X (m, k), y (m,))`` of a random fraction ``keep`` of the pixels of ``z`` (all if ``keep = 1``)."""
        z = _check_maps(z)
        y = _labels_map(y, z) if not (isinstance(y, torch.Tensor) and y.shape == z.shape) else y.to(torch.float64)
        D = self.design(z.float(), extra)
        if keep < 1.0:
            n_i, r_i, c_i = (torch.rand(z.shape, generator=generator) < keep).nonzero(as_tuple=True)
        else:
            n_i, r_i, c_i = torch.ones(z.shape, dtype=torch.bool).nonzero(as_tuple=True)
        dev = D.device
        n_i, r_i, c_i = n_i.to(dev), r_i.to(dev), c_i.to(dev)
        return (D[n_i, :, r_i, c_i].detach().to("cpu", torch.float64),
                y.to(dev)[n_i, r_i, c_i].detach().to("cpu", torch.float64))

    def _fit(self, X, y) -> None:
        """Fit on maps ``z (N, H, W)`` (or ``(z, feature maps)``) with pixel labels (masks or one per image)."""
        z, extra = self._split(X)
        z = _check_maps(torch.as_tensor(z))
        y = _labels_map(y, z)
        keep = min(1.0, self.max_pixels / z.numel())
        self._fit_rows(*self.sample(z, y, extra, keep=keep, generator=torch.Generator().manual_seed(self.seed)))

    # fitting from a stream of batches: sample pixels as they come instead of keeping every map
    def _begin(self, n_images: int) -> None:
        self._n_images, self._keep, self._rows = int(n_images), None, []
        self._g = torch.Generator().manual_seed(self.seed)

    def _add(self, X, y) -> None:
        z, extra = self._split(X)
        if self._keep is None:
            budget = max(20_000, min(self.max_pixels, self.max_values // self.n_features(extra)))
            self._keep = min(1.0, budget / (self._n_images * z.shape[-2] * z.shape[-1]))
        self._rows.append(self.sample(z, y.to(torch.float64), extra, keep=self._keep, generator=self._g))

    def _end(self) -> "LocalCalibrator":
        rows, self._rows = self._rows, []
        self._fit_rows(torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows]))
        self.fitted_ = True
        return self

    def _fit_rows(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """L-BFGS on the mean logistic loss of rows ``X (m, k)`` (from :meth:`sample`) with labels ``y (m,)``."""
        if X.ndim != 2 or len(X) != len(y) or len(X) == 0:
            raise ValueError("X must be (m, k) rows with one label each")
        if y.min() == y.max():
            raise ValueError("calibration needs both normal (0) and anomalous (1) pixels; only one class was given")
        with one_thread():
            fit = fit_logistic(X, y, l2=self.l2, start="first", low_precision=True, ftol=1e-11, gtol=1e-7)
        self.w_, self.c_ = torch.as_tensor(fit.w), fit.c
        self.loss_, self.iterations_ = fit.loss, fit.iterations

    def _transform(self, X) -> torch.Tensor:
        z, extra = self._split(X)
        D = self.design(z, extra)
        if D.shape[1] != len(self.w_):
            raise ValueError(f"{D.shape[1]} features but the calibrator was fitted on {len(self.w_)}; "
                             "give the same network features as in fitting")
        return torch.einsum("nkhw,k->nhw", D, self.w_.to(D.device, D.dtype)) + self.c_

    def coefficients(self) -> dict[str, float]:
        """Fitted weights by feature name (original units) and the intercept."""
        self.check_fitted()
        names = ["logit"]
        if "context" in self.features:
            names += [f"box_{s:.4g}" for s in self.scales] + ["image_mean"]
        if "position" in self.features:
            names += [f"cos{i}{j}" for j in range(self.degree + 1) for i in range(self.degree + 1) if (i, j) != (0, 0)]
        names += [f"net{i}" for i in range(len(self.w_) - len(names))]
        return {**dict(zip(names, self.w_.tolist())), "intercept": self.c_}

    def __repr__(self) -> str:
        return f"LocalCalibrator({', '.join(self.features)}{'' if self.fitted_ else ', unfitted'})"


class LocationPlatt(Calibrator):
    """One Platt transform ``z'_p = a_p z_p + c_p`` per location ``p`` of the map (§4.3.2, second reading).

    Fitted independently at every location on the mean logistic loss plus ``l2/2 · a_p²`` (on the
    standardised logit, which keeps the fit finite where the data separate), by batched Newton steps.
    """

    name = "location_platt"
    pixelwise_only = True

    def __init__(self, l2: float = 1e-3, iterations: int = 50):
        if not l2 > 0:
            raise ValueError(f"l2 = {l2} must be > 0 (it keeps separable locations finite)")
        if int(iterations) < 1:
            raise ValueError(f"iterations = {iterations} must be at least 1")
        self.l2, self.iterations = float(l2), int(iterations)

    def _fit(self, z, y) -> None:
        """Fit on maps ``z (N, H, W)`` and labels ``y`` (masks or one per image)."""
        z = _check_maps(torch.as_tensor(z)).to("cpu", torch.float64)
        y = _labels_map(y, z).cpu()
        mu, sd = z.mean(0), z.std(0)
        sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
        zs = (z - mu) / sd
        a, c = torch.zeros_like(mu), torch.zeros_like(mu)
        with one_thread():
            a, c = self._newton(zs, y, a, c, z.shape[0])
        self.a_ = (a / sd).float()
        self.c_ = (c - a * mu / sd).float()

    def _newton(self, zs, y, a, c, n):
        for _ in range(self.iterations):
            p = torch.sigmoid(a * zs + c)
            r = p - y
            ga = (r * zs).sum(0) / n + self.l2 * a
            gc = r.sum(0) / n
            wgt = p * (1 - p)
            haa = (wgt * zs * zs).sum(0) / n + self.l2
            hac = (wgt * zs).sum(0) / n
            hcc = (wgt.sum(0) / n).clamp_min(1e-12)
            det = (haa * hcc - hac ** 2).clamp_min(1e-18)
            da = (hcc * ga - hac * gc) / det
            dc = (haa * gc - hac * ga) / det
            a = a - da.clamp(-5, 5)
            c = c - dc.clamp(-5, 5)
            if max(float(da.abs().max()), float(dc.abs().max())) < 1e-10:
                break
        return a, c

    def _transform(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[-2:]) != tuple(self.a_.shape):
            raise ValueError(f"maps of size {tuple(z.shape[-2:])} do not match the fitted {tuple(self.a_.shape)}")
        return self.a_.to(z.device, z.dtype) * z + self.c_.to(z.device, z.dtype)
