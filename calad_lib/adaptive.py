"""Location-adaptive post-hoc calibration of anomaly maps (beyond the thesis: the open question of §4.3.2, ch. 5).

Per-pixel Platt scaling and β calibration (§3.2, Proposition 1) apply **one strictly increasing map to
every pixel**: they cannot change which pixel of an image looks most anomalous, nor bring in where
anomalies tend to be. The thesis closes (§4.3.2, ch. 5) by asking whether a calibration that adapts
to the location of anomalous regions could improve localization. This module gives three answers to
test that question, all fitted post hoc on a frozen base model, with few parameters:

* :class:`LocalCalibrator` — a logistic model of the per-pixel label on **per-pixel features**
  (eq. 2.15 averaged over pixels, Proposition 1), a superset of per-pixel Platt:

  ``z'_p = a z_p + Σ_s b_s (B_s * z)_p + d · mean(z) + Σ_ij θ_ij cos(π i u_p) cos(π j v_p) + w · f_p + c``

  with ``"logit"`` the base logit ``z``; ``"context"`` box means of ``z`` at a few scales (a learnt
  linear filter: centre–surround contrast, smoothing) and the image mean of ``z`` (so an image-wide
  offset can be removed); ``"position"`` a low-order cosine basis of the pixel's normalised position
  ``(u, v)`` (a learnt location prior); ``"network"`` the base network's last feature map, upsampled —
  a **1×1-convolution calibration head** (§3.2.3 made pixel-wise). Fitted by L-BFGS (SciPy) on
  standardised features with a small L2 penalty, on a random subset of at most ``max_pixels`` pixels.
* :class:`LocationPlatt` — one Platt transform ``(a_p, c_p)`` **per map location** ``p``: a second reading
  of "calibrating each output pixel of the anomaly map with Platt scaling" (§4.3.2), fitted by batched
  Newton steps with a small ridge.
* :func:`paste_patches` — the training data that lets a calibrator *see* local anomalies: normal
  images with elliptic patches of synthetic anomalous images (spectral or OE, §3.4) pasted in,
  and the exact masks of the pasted pixels.

:func:`calibrate_adaptive` (one calibrator) and :func:`calibrate_adaptive_set` (several, from one pass
over the data) run the protocol — augmented normal calibration images labelled 0; pasted images labelled
by their masks, or whole synthetic anomalies labelled 1 as in §4.2.1 — and return
:class:`AdaptiveCalibratedModel` objects, themselves anomaly models (:mod:`calad_lib.detector`), so gradient
input perturbation (§3.3) and every metric apply unchanged. :func:`toy_case` builds two problems whose
answer is known (anomalies only in one corner; images with their own brightness offsets).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from torch import nn
from .progress import bar as progress_bar

from .calibration import logistic_loss, resolve_augment
from .detector import AnomalyModel, Outputs

__all__ = ["paste_patches", "context_features", "position_features", "network_features", "LocalCalibrator",
           "LocationPlatt", "AdaptiveCalibratedModel", "calibrate_adaptive", "calibrate_adaptive_set",
           "within_image_rank_corr", "BrightnessModel", "toy_case", "FEATURES", "KINDS"]

#: feature groups a :class:`LocalCalibrator` may use
FEATURES = ("logit", "context", "position", "network")
#: calibrator kinds :func:`calibrate_adaptive` builds
KINDS = ("local", "location_platt")


# ---------------------------------------------------------------------------------------------
# synthetic local anomalies
def paste_patches(normal: torch.Tensor, source: torch.Tensor, n: int | None = None, *,
                  patches: tuple[int, int] = (1, 3), radius: tuple[float, float] = (0.04, 0.15),
                  region: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0), seed: int = 0,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal images with elliptic patches of ``source`` images pasted in, and their masks.

    Image ``i`` is ``normal[i % len(normal)]``; it receives ``k ~ U{patches}`` rotated ellipses with
    semi-axes ``U[radius]`` × the image side, centred uniformly in ``region = (top, bottom, left,
    right)`` (fractions of the height and width), all filled with the pixels (same positions) of one
    random ``source`` image. Returns ``(images (n, C, H, W), masks (n, H, W) float {0, 1})``; the mask is
    exactly the set of pasted pixels. Seeded (``seed`` or a CPU ``generator``); shapes are checked.
    """
    for what, t in (("normal", normal), ("source", source)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or len(t) == 0:
            raise ValueError(f"{what} must be a non-empty image tensor (N, C, H, W)")
    if tuple(source.shape[1:]) != tuple(normal.shape[1:]):
        raise ValueError(f"source images {tuple(source.shape[1:])} must have the shape of the normal images "
                         f"{tuple(normal.shape[1:])}; resize them or build them with the same size and channels")
    n = len(normal) if n is None else int(n)
    if n < 1:
        raise ValueError(f"n = {n} must be at least 1")
    k_lo, k_hi = (int(v) for v in patches)
    r_lo, r_hi = (float(v) for v in radius)
    top, bottom, left, right = (float(v) for v in region)
    if not 1 <= k_lo <= k_hi:
        raise ValueError(f"patches = {patches} must be a range 1 <= lo <= hi of patch counts")
    if not 0 < r_lo <= r_hi <= 1:
        raise ValueError(f"radius = {radius} must be a range 0 < lo <= hi <= 1 (fractions of the image side)")
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise ValueError(f"region = {region} must be (top, bottom, left, right) fractions with top < bottom and "
                         "left < right")
    g = generator if generator is not None else torch.Generator().manual_seed(int(seed))
    _, c, h, w = normal.shape
    k = torch.randint(k_lo, k_hi + 1, (n,), generator=g)
    cy = top + (bottom - top) * torch.rand(n, k_hi, generator=g)
    cx = left + (right - left) * torch.rand(n, k_hi, generator=g)
    ry = r_lo + (r_hi - r_lo) * torch.rand(n, k_hi, generator=g)
    rx = r_lo + (r_hi - r_lo) * torch.rand(n, k_hi, generator=g)
    th = math.pi * torch.rand(n, k_hi, generator=g)
    src = torch.randint(len(source), (n,), generator=g)
    yy = ((torch.arange(h) + 0.5) / h).view(1, 1, h, 1)
    xx = ((torch.arange(w) + 0.5) / w).view(1, 1, 1, w)
    dy, dx = yy - cy[..., None, None], xx - cx[..., None, None]
    cos, sin = torch.cos(th)[..., None, None], torch.sin(th)[..., None, None]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    inside = (u / rx[..., None, None]) ** 2 + (v / ry[..., None, None]) ** 2 <= 1.0
    inside &= (torch.arange(k_hi).view(1, -1) < k.view(-1, 1))[..., None, None]
    masks = inside.any(dim=1)
    # a patch too small to cover a pixel centre still marks its centre pixel
    empty = ~masks.flatten(1).any(1)
    if empty.any():
        iy = (cy[empty, 0] * h).long().clamp(0, h - 1)
        ix = (cx[empty, 0] * w).long().clamp(0, w - 1)
        masks[empty.nonzero().flatten(), iy, ix] = True
    base = normal[torch.arange(n) % len(normal)]
    pasted = source[src.to(source.device)].to(base.device, base.dtype)
    m = masks.to(base.device)
    out = torch.where(m[:, None], pasted, base)
    return out, masks.to(torch.float32).to(base.device)


# ---------------------------------------------------------------------------------------------
# per-pixel features
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


def _last_conv(module: nn.Module) -> nn.Module:
    last = None
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            last = m
    if last is None:
        raise ValueError(f"{type(module).__name__} has no convolution whose input could serve as a feature map")
    return last


def network_features(base: AnomalyModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logit (N, H, W), features (N, C, H, W))``: the base logit and the input of its network's last
    convolution (the last feature map), bilinearly upsampled to the map size, from one forward pass."""
    net = getattr(base, "net", None)
    if net is None:
        raise ValueError(f"{base.name} has no .net; the 'network' features need a calad base model")
    store: list[torch.Tensor] = []
    handle = _last_conv(net).register_forward_hook(lambda mod, inp, out: store.append(inp[0]))
    try:
        z = base.logit(x)
    finally:
        handle.remove()
    f = store[-1].float()
    if f.shape[-2:] != z.shape[-2:]:
        f = F.interpolate(f, size=z.shape[-2:], mode="bilinear", align_corners=False)
    return z, f


# ---------------------------------------------------------------------------------------------
class _OneThread:
    """Run small CPU fits on one thread: on ~10⁵ values, thread hand-offs cost more than they save."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


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


class LocalCalibrator:
    """Logistic calibration of a map on per-pixel features (module doc); a superset of per-pixel Platt.

    Parameters
    ----------
    features : subset of :data:`FEATURES`; ``"logit"`` is always used.
    scales : box sizes of the ``"context"`` features, as fractions of the map side.
    degree : order of the ``"position"`` cosine basis (``(degree+1)² − 1`` features).
    l2 : L2 penalty on the standardised weights (not the intercept).
    max_pixels : at most this many randomly chosen pixels are used to fit (the mean loss stays unbiased);
        :func:`calibrate_adaptive` also keeps ``pixels × features ≤ max_values`` (but at least 20,000 pixels).
    """

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
        self.name = "local[" + "+".join(f for f in feats if f != "logit") + "]" if len(feats) > 1 else "local"
        self.w_: torch.Tensor | None = None

    @property
    def needs_network(self) -> bool:
        return "network" in self.features

    def design(self, z: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Per-pixel features ``(N, k, H, W)`` of maps ``z (N, H, W)``; ``extra``: network features ``(N, C, H, W)``."""
        parts = [z.unsqueeze(1)]
        if "context" in self.features:
            parts.append(context_features(z, self.scales))
        if "position" in self.features:
            pos = position_features(*z.shape[-2:], self.degree, device=z.device, dtype=z.dtype)
            parts.append(pos.unsqueeze(0).expand(z.shape[0], -1, -1, -1))
        if self.needs_network:
            if extra is None or extra.ndim != 4 or extra.shape[0] != z.shape[0] or extra.shape[-2:] != z.shape[-2:]:
                raise ValueError("the 'network' features need extra=(N, C, H, W) feature maps matching z; "
                                 "use calad.adaptive.network_features(base, x)")
            parts.append(extra.to(z.dtype))
        return torch.cat(parts, dim=1)

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
        X = D[n_i, :, r_i, c_i]
        yy = y.to(dev)[n_i, r_i, c_i]
        return X.detach().to("cpu", torch.float64), yy.detach().to("cpu", torch.float64)

    def _k(self, extra, z) -> int:
        k = 1 + (len(self.scales) + 1 if "context" in self.features else 0)
        k += (self.degree + 1) ** 2 - 1 if "position" in self.features else 0
        return k + (extra.shape[1] if self.needs_network and extra is not None else 0)

    def fit(self, z, y, extra: torch.Tensor | None = None):
        """Fit on maps ``z (N, H, W)`` with pixel labels ``y`` (masks ``(N, H, W)`` or one label per image)."""
        z = _check_maps(torch.as_tensor(z))
        y = _labels_map(y, z)
        keep = min(1.0, self.max_pixels / z.numel())
        X, yy = self.sample(z, y, extra, keep=keep, generator=torch.Generator().manual_seed(self.seed))
        return self.fit_rows(X, yy)

    def fit_rows(self, X: torch.Tensor, y: torch.Tensor):
        """Fit on rows ``X (m, k)`` (from :meth:`sample`) and labels ``y (m,)``: L-BFGS on the mean logistic loss.

        Features are standardised and held in float32 for the matrix products (the loss and the
        gradient are accumulated in float64).
        """
        X, y = X.to(torch.float64), y.to(torch.float64)
        if X.ndim != 2 or len(X) != len(y) or len(X) == 0:
            raise ValueError("X must be (m, k) rows with one label each")
        if y.min() == y.max():
            raise ValueError("calibration needs both normal (0) and anomalous (1) pixels; only one class was given")
        mu, sd = X.mean(0), X.std(0)
        sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
        Xs = ((X - mu) / sd).to(torch.float32)
        k = X.shape[1]

        def fun(theta):
            t = torch.as_tensor(theta, dtype=torch.float64)
            s = (Xs @ t[:k].float()).double() + t[k]
            loss = (F.softplus(s) - y * s).mean() + 0.5 * self.l2 * (t[:k] ** 2).sum()
            r = (torch.sigmoid(s) - y) / len(y)
            grad = torch.cat([(Xs.T @ r.float()).double() + self.l2 * t[:k], r.sum().view(1)])
            return float(loss), grad.numpy()

        theta0 = np.zeros(k + 1)
        theta0[0] = 1.0
        with _OneThread():
            res = minimize(fun, theta0, jac=True, method="L-BFGS-B",
                           options={"maxiter": 2000, "ftol": 1e-11, "gtol": 1e-7, "maxcor": 20})
        w = torch.as_tensor(res.x[:k]) / sd
        c = float(res.x[k]) - float((w * mu).sum())
        self.w_, self.c_, self.loss_, self.iterations_ = w, c, float(res.fun), int(res.nit)
        return self

    def transform(self, z: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated logit maps of base logit maps ``z (N, H, W)`` (differentiable)."""
        if self.w_ is None:
            raise RuntimeError("LocalCalibrator is not fitted yet; call .fit(z, y) first")
        X = self.design(z, extra)
        if X.shape[1] != len(self.w_):
            raise ValueError(f"{X.shape[1]} features but the calibrator was fitted on {len(self.w_)}; "
                             "give the same network features as in fitting")
        w = self.w_.to(X.device, X.dtype)
        return torch.einsum("nkhw,k->nhw", X, w) + self.c_

    def predict_proba(self, z, extra=None):
        return torch.sigmoid(self.transform(z, extra))

    def coefficients(self) -> dict[str, float]:
        """Fitted weights by feature name (original units) and the intercept."""
        if self.w_ is None:
            raise RuntimeError("LocalCalibrator is not fitted yet")
        names = ["logit"]
        if "context" in self.features:
            names += [f"box_{s:.4g}" for s in self.scales] + ["image_mean"]
        if "position" in self.features:
            names += [f"cos{i}{j}" for j in range(self.degree + 1) for i in range(self.degree + 1) if (i, j) != (0, 0)]
        names += [f"net{i}" for i in range(len(self.w_) - len(names))]
        return {**dict(zip(names, self.w_.tolist())), "intercept": self.c_}

    def __repr__(self) -> str:
        return f"LocalCalibrator({', '.join(self.features)}{'' if self.w_ is not None else ', unfitted'})"


class LocationPlatt:
    """One Platt transform ``z'_p = a_p z_p + c_p`` per location ``p`` of the map (§4.3.2, second reading).

    Fitted independently at every location on the mean logistic loss plus ``l2/2 · a_p²`` (on the
    standardised logit, which keeps the fit finite where the data separate), by batched Newton steps.
    """

    name = "location_platt"

    def __init__(self, l2: float = 1e-3, iterations: int = 50):
        if not l2 > 0:
            raise ValueError(f"l2 = {l2} must be > 0 (it keeps separable locations finite)")
        self.l2, self.iterations = float(l2), int(iterations)
        self.a_: torch.Tensor | None = None

    @property
    def needs_network(self) -> bool:
        return False

    def fit(self, z, y, extra=None):
        """Fit on maps ``z (N, H, W)`` and labels ``y`` (masks or one per image)."""
        z = _check_maps(torch.as_tensor(z)).to("cpu", torch.float64)
        y = _labels_map(y, z).cpu()
        mu, sd = z.mean(0), z.std(0)
        sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
        zs = (z - mu) / sd
        a = torch.zeros_like(mu)
        c = torch.zeros_like(mu)
        n = z.shape[0]
        with _OneThread():
            a, c = self._newton(zs, y, a, c, n)
        self.a_ = (a / sd).float()
        self.c_ = (c - a * mu / sd).float()
        return self

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

    def transform(self, z: torch.Tensor, extra=None) -> torch.Tensor:
        if self.a_ is None:
            raise RuntimeError("LocationPlatt is not fitted yet; call .fit(z, y) first")
        if tuple(z.shape[-2:]) != tuple(self.a_.shape):
            raise ValueError(f"maps of size {tuple(z.shape[-2:])} do not match the fitted {tuple(self.a_.shape)}")
        return self.a_.to(z.device, z.dtype) * z + self.c_.to(z.device, z.dtype)

    def predict_proba(self, z, extra=None):
        return torch.sigmoid(self.transform(z))

    def __repr__(self) -> str:
        return f"LocationPlatt({'fitted' if self.a_ is not None else 'unfitted'})"


# ---------------------------------------------------------------------------------------------
class AdaptiveCalibratedModel(AnomalyModel):
    """A frozen pixel-wise base model followed by a :class:`LocalCalibrator` or :class:`LocationPlatt`.

    ``outputs`` gives the calibrated logit, ``σ`` of it, and the calibrated logit as score; ``loss`` is
    the logistic loss of the calibrated logit averaged over pixels (Proposition 1), so gradient input
    perturbation differentiates through calibrator and base.
    """

    pixelwise = True

    def __init__(self, base: AnomalyModel, calibrator, name: str | None = None):
        super().__init__()
        if not getattr(base, "pixelwise", False):
            raise ValueError(f"{getattr(base, 'name', 'model')} is not pixel-wise; adaptive calibration needs maps")
        self.base = base.eval().requires_grad_(False)
        self.calibrator = calibrator
        self.name = name or f"{calibrator.name}[{base.name}]"

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()
        return self

    def calibrated_logit(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrator.needs_network:
            z, f = network_features(self.base, x)
            return self.calibrator.transform(z, f)
        return self.calibrator.transform(self.base.logit(x))

    def outputs(self, x):
        z = self.calibrated_logit(x)
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        z = self.calibrated_logit(x)
        y = torch.as_tensor(y, dtype=z.dtype, device=z.device)
        if y.ndim <= 1:
            y = y.view(-1, 1, 1) if y.ndim == 1 else y
        return logistic_loss(z, y.expand_as(z)).flatten(1).mean(1)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, calibrator={self.calibrator!r}"


def calibrate_adaptive(base: AnomalyModel, kind: str = "local", *, normal: torch.Tensor, anomalous: torch.Tensor,
                       n: int = 1000, paste: bool | None = None,
                       features: Sequence[str] = ("logit", "context", "position"),
                       patch_kw: dict | None = None, augment: bool | Callable = True, seed: int = 0,
                       batch_size: int = 64, calibrator_kw: dict | None = None, progress: bool = True,
                       name: str | None = None) -> AdaptiveCalibratedModel:
    """Fit an adaptive calibrator on a frozen pixel-wise ``base`` (protocol of §4.2.1 with local anomalies).

    ``n`` augmented normal calibration images (label 0 everywhere, cycling through ``normal``) and
    ``n`` anomalous images: with ``paste`` (default for ``kind="local"``) normal images (augmented,
    other draws) with patches of ``anomalous`` pasted in (:func:`paste_patches` with ``patch_kw``),
    labelled by their masks; without it the whole ``anomalous`` images, labelled 1 (the thesis'
    per-pixel protocol; default for ``kind="location_platt"``).
    """
    paste = (kind == "local") if paste is None else bool(paste)
    models = calibrate_adaptive_set(base, {"model": (kind, tuple(features), calibrator_kw)}, normal=normal,
                                    anomalous=anomalous, n=n, paste=paste, patch_kw=patch_kw, augment=augment,
                                    seed=seed, batch_size=batch_size, progress=progress)
    model = models["model"]
    model.name = name or f"{model.calibrator.name}[{base.name}]"
    return model


def calibrate_adaptive_set(base: AnomalyModel, specs: dict, *, normal: torch.Tensor, anomalous: torch.Tensor,
                           n: int = 1000, paste: bool = True, patch_kw: dict | None = None,
                           augment: bool | Callable = True, seed: int = 0, batch_size: int = 64,
                           progress: bool = True) -> dict[str, AdaptiveCalibratedModel]:
    """Several adaptive calibrators fitted on the same draws in one pass over the data (see :func:`calibrate_adaptive`).

    ``specs`` maps a name to ``(kind, features, calibrator_kw)`` (``features`` is ignored for
    ``location_platt``); returns ``{name: AdaptiveCalibratedModel}`` named ``name``.
    """
    if not isinstance(base, AnomalyModel) or not base.pixelwise:
        raise ValueError("calibrate_adaptive needs a pixel-wise calad AnomalyModel (fcdd, ssim_pixel, unet)")
    for what, data in (("normal", normal), ("anomalous", anomalous)):
        if not isinstance(data, torch.Tensor) or data.ndim != 4 or len(data) == 0:
            raise ValueError(f"{what} must be a non-empty image tensor of shape (N, C, H, W)")
    if int(n) < 1:
        raise ValueError(f"n = {n} must be at least 1")
    cals = {}
    for key, (kind, features, kw) in specs.items():
        if kind not in KINDS:
            raise ValueError(f"unknown adaptive calibrator {kind!r}; choose one of {', '.join(KINDS)}")
        cals[key] = (LocalCalibrator(features, seed=seed, **(kw or {})) if kind == "local"
                     else LocationPlatt(**(kw or {})))
    aug = resolve_augment(augment)
    g = torch.Generator().manual_seed(int(seed))
    dev = base.device
    base.eval()
    n = int(n)
    network = any(getattr(c, "needs_network", False) for c in cals.values())

    def images(start: int, stop: int, anomalous_part: bool):
        if anomalous_part and not paste:
            return anomalous[torch.arange(start, stop) % len(anomalous)].to(dev, torch.float32), None
        x = normal[torch.arange(start, stop) % len(normal)]
        if aug is not None:
            x = aug(x, generator=g)
        x = x.to(dev, torch.float32)
        if not anomalous_part:
            return x, None
        return paste_patches(x, anomalous.to(dev), generator=g, **(patch_kw or {}))

    rows = {k: [] for k in cals}
    labels = {k: [] for k in cals}
    keep: dict[str, float] = {}
    steps = [(s, min(s + batch_size, n), part) for part in (False, True) for s in range(0, n, batch_size)]
    with torch.no_grad():
        for s, e, part in progress_bar(steps, desc="adaptive calibration", disable=not progress, leave=False):
            x, m = images(s, e, part)
            z, f = network_features(base, x) if network else (base.logit(x), None)
            y = m if m is not None else torch.full(z.shape, float(part), device=z.device)
            for key, cal in cals.items():
                if isinstance(cal, LocationPlatt):
                    rows[key].append(z.cpu())
                    labels[key].append(y.cpu())
                    continue
                if key not in keep:    # pixels to fit on: at most max_pixels, and fewer for many features
                    budget = max(20_000, min(cal.max_pixels, cal.max_values // cal._k(f, z)))
                    keep[key] = min(1.0, budget / (2 * n * z.shape[-2] * z.shape[-1]))
                X, yy = cal.sample(z, y.to(torch.float64), f if cal.needs_network else None, keep=keep[key],
                                   generator=g)
                rows[key].append(X)
                labels[key].append(yy)
    out = {}
    for key, cal in cals.items():
        if isinstance(cal, LocationPlatt):
            cal.fit(torch.cat(rows[key]), torch.cat(labels[key]))
        else:
            cal.fit_rows(torch.cat(rows[key]), torch.cat(labels[key]))
        out[key] = AdaptiveCalibratedModel(base, cal, key)
    return out


# ---------------------------------------------------------------------------------------------
# known-answer toy cases
class BrightnessModel(AnomalyModel):
    """A toy pixel-wise base model: logit ``gain · (mean over channels of x − 0.5)`` at every pixel."""

    pixelwise, name = True, "brightness"

    def __init__(self, gain: float = 8.0):
        super().__init__()
        self.gain = float(gain)

    def outputs(self, x):
        z = self.gain * (x.mean(1) - 0.5)
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        z = self.logit(x)
        y = torch.as_tensor(y, dtype=z.dtype, device=z.device)
        return logistic_loss(z, (y.view(-1, 1, 1) if y.ndim == 1 else y).expand_as(z)).flatten(1).mean(1)


def _toy_images(case: str, n: int, size: int, g: torch.Generator, region, radius):
    """``(normal, anomalous, masks)`` of a toy case; ``anomalous`` holds local anomalies with ``masks``."""
    if case == "corner":      # brighter patches, only ever in the top-left corner
        normal = (0.5 + 0.1 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
        source = (0.62 + 0.1 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
        x, m = paste_patches(normal, source, generator=g, region=region, radius=radius)
        return normal, x, m, source
    offset = 0.3 * torch.rand(n, 1, 1, 1, generator=g) - 0.15   # "offset": each image has its own brightness
    normal = (0.5 + offset + 0.05 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
    _, m = paste_patches(normal, torch.ones_like(normal), generator=g, radius=radius)
    x = (normal + 0.12 * m[:, None]).clamp(0, 1)
    return normal, x, m, (normal + 0.12).clamp(0, 1)


def toy_case(case: str = "corner", *, n: int = 200, size: int = 32, seed: int = 0) -> dict:
    """Per-pixel Platt versus location-adaptive calibrators where the right answer is known.

    ``case="corner"``: anomalies are brighter patches that only ever appear in the top-left corner (the
    region ``[0, 0.35]²``); a calibrator that knows the position can discount bright pixels elsewhere.
    ``case="offset"``: each image has its own overall brightness and anomalies are locally brighter
    patches anywhere; a calibrator that sees the image's mean can subtract it. In both, the base logit is
    the pixel's brightness (:class:`BrightnessModel`).

    Calibrators: ``platt`` (the thesis' per-pixel protocol: normal images 0, whole synthetic anomalies 1),
    ``platt_patches`` (one Platt fitted on the pasted anomalies and their masks), ``location_platt``
    (:class:`LocationPlatt` on the same), ``local_position`` and ``local_context`` (:class:`LocalCalibrator`
    on logit + position, and logit + context + position, on the same). Returns a dict of the test set's
    ``pixel_auroc``, ``aupro`` and ``rank_corr`` (mean within-image Spearman ρ with the base map) per model.
    """
    if case not in ("corner", "offset"):
        raise ValueError(f"unknown toy case {case!r}; choose 'corner' or 'offset'")
    with _OneThread():
        return _toy_case(case, n, size, seed)


def _toy_case(case: str, n: int, size: int, seed: int) -> dict:
    from . import metrics
    from .calibration import PlattScaling

    g = torch.Generator().manual_seed(int(seed))
    region = (0.0, 0.35, 0.0, 0.35) if case == "corner" else (0.0, 1.0, 0.0, 1.0)
    radius = (0.05, 0.12)
    base = BrightnessModel()
    normal, x_an, m_an, whole = _toy_images(case, n, size, g, region, radius)
    test_normal, test_an, test_m, _ = _toy_images(case, n // 2, size, g, region, radius)
    z0, z1 = base.logit(normal), base.logit(x_an)
    z_pasted, y_pasted = torch.cat([z0, z1]), torch.cat([torch.zeros_like(m_an), m_an])
    cals = {
        "platt": PlattScaling().fit(torch.cat([z0, base.logit(whole)]).double(),
                                    torch.cat([torch.zeros(n), torch.ones(n)])),
        "platt_patches": PlattScaling().fit(z_pasted.double(), y_pasted),
        "location_platt": LocationPlatt().fit(z_pasted, y_pasted),
        "local_position": LocalCalibrator(("logit", "position"), seed=seed).fit(z_pasted, y_pasted),
        "local_context": LocalCalibrator(("logit", "context", "position"), seed=seed).fit(z_pasted, y_pasted),
    }
    x_test = torch.cat([test_normal, test_an])
    masks = torch.cat([torch.zeros_like(test_m), test_m])
    z = base.logit(x_test)
    scores = {"base": z, **{k: c.transform(z.double() if k.startswith("platt") else z) for k, c in cals.items()}}
    out = {}
    for k, s in scores.items():
        s = s.detach().double()
        out[k] = {"pixel_auroc": metrics.pixel_auroc(masks, s), "aupro": metrics.aupro(masks, s),
                  "rank_corr": within_image_rank_corr(z, s)}
    return out


def within_image_rank_corr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean within-image Spearman ρ between the pixels of maps ``a`` and ``b`` ``(N, H, W)``; constant maps skipped."""
    from scipy.stats import rankdata

    ra = rankdata(a.flatten(1).double().numpy(), axis=1)
    rb = rankdata(b.flatten(1).double().numpy(), axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(1) / np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    return float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")
