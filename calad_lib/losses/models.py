"""The base models of thesis §4.1: a network, its preprocessing and its loss head.

Every model takes raw images in [0, 1], converts them to grayscale (SSIM only) and to
z-scores with the training statistics (buffers ``mean``/``std``, §4.2.1) and returns the
logit z, estimate η̂ and anomaly score of §4.1 (see :mod:`calad_lib.detector`):

=============  ==========================  ==========================  ====================
model          logit z                     η̂                           score
=============  ==========================  ==========================  ====================
svdd           ‖φ(x) - c‖²                 σ(z)                        ‖φ(x) - c‖²
hsc            σ⁻¹(η̂) = ln(e^v - 1)        1 - e^{-v}                  v = √(‖φ‖²+1) - 1
logistic       φ(x) (scalar)               σ(z)                        z
ssim           σ⁻¹(η̂)                      mean_ij (1 - S_ij)/2        2η̂
ssim_pixel     σ⁻¹(η̂_ij)                   (1 - S_ij)/2                2η̂_ij
unet           φ(x)_ij                     σ(z_ij)                     z_ij
fcdd           σ⁻¹(η̂_ij)                   1 - e^{-A'_ij}              A'_ij (upsampled)
=============  ==========================  ==========================  ====================

SSIM is computed between the grayscale image and the reconstruction mapped back from
z-scores to intensities (``φ(x)·std + mean``), with data range 1 and the standard
constants c1 = (0.01)², c2 = (0.03)²: S is then the usual SSIM of an image in [0, 1] and
its reconstruction, and does not depend on the z-score statistics. Padding by 5 pixels
with the training mean intensity is padding the z-scored images with 0. SSIM estimates
can be exactly 0, so their η̂ is clamped to [1e-6, 1 - 1e-6] (z within ±13.8).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data.augment import grayscale as _grayscale
from ..detector import AnomalyModel, Outputs
from .ssim import ssim_map
from .functional import (hsc_eta, hsc_logit, hsc_loss, logistic_loss, prob_logit, pseudo_huber)

__all__ = ["Preprocess", "BaseModel", "SVDDModel", "HSCModel", "LogisticModel", "SSIMModel", "UNetModel",
           "FCDDModel", "input_stats"]


def _as_stats(value, channels: int, default: float, what: str) -> torch.Tensor:
    if value is None:
        return torch.full((channels,), float(default))
    t = torch.as_tensor(value, dtype=torch.float32).flatten().cpu()
    if t.numel() == 1:
        t = t.expand(channels).clone()
    if t.numel() != channels:
        raise ValueError(f"{what} has {t.numel()} values but the network sees {channels} channel(s); "
                         f"give one value per channel (grayscale statistics for SSIM models)")
    return t


def input_stats(x: torch.Tensor, grayscale: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) standard deviation of images ``x`` as the network sees them."""
    if grayscale:
        x = _grayscale(x)
    x = x.detach().to(torch.float64)
    return x.mean(dim=(0, 2, 3)).float().cpu(), x.std(dim=(0, 2, 3), unbiased=False).clamp_min(1e-6).float().cpu()


class Preprocess(nn.Module):
    """Raw images in [0, 1] → (grayscale) → z-scores ``(x - mean) / std`` per channel."""

    def __init__(self, channels: int, mean=None, std=None, grayscale: bool = False):
        super().__init__()
        self.grayscale = grayscale
        c = 1 if grayscale else channels
        std_t = _as_stats(std, c, 1.0, "std")
        if (std_t <= 0).any():
            raise ValueError("std must be > 0 in every channel")
        self.register_buffer("mean", _as_stats(mean, c, 0.0, "mean").view(1, c, 1, 1))
        self.register_buffer("std", std_t.view(1, c, 1, 1))

    def set_stats(self, mean, std) -> None:
        c = self.mean.shape[1]
        self.mean.copy_(_as_stats(mean, c, 0.0, "mean").view(1, c, 1, 1))
        self.std.copy_(_as_stats(std, c, 1.0, "std").view(1, c, 1, 1))

    def gray(self, x: torch.Tensor) -> torch.Tensor:
        return _grayscale(x) if self.grayscale else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.gray(x) - self.mean) / self.std


class BaseModel(AnomalyModel):
    """A network behind :class:`Preprocess`; subclasses add the loss head."""

    supervised: bool = False

    def __init__(self, net: nn.Module, in_shape: Sequence[int], mean=None, std=None, grayscale: bool = False):
        super().__init__()
        self.in_shape = tuple(int(v) for v in in_shape)
        self.prep = Preprocess(self.in_shape[0], mean, std, grayscale)
        self.net = net
        self.spec: dict = {}

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"{self.name} model expects images (N, {', '.join(map(str, self.in_shape))}), "
                             f"got shape {tuple(x.shape)}")
        return self.prep(x)

    def extra_repr(self) -> str:
        return f"name={self.name}, in_shape={self.in_shape}"


class SVDDModel(BaseModel):
    """Deep SVDD (§4.1.1): a bias-free vector network and a fixed centre ``c``."""

    name = "svdd"

    def __init__(self, net, in_shape, mean=None, std=None):
        super().__init__(net, in_shape, mean, std)
        self.register_buffer("c", torch.zeros(net.rep_dim))

    def set_center(self, c: torch.Tensor, eps: float = 0.1) -> None:
        """Set ``c``, moving coordinates with ``|c_i| < eps`` to ``±eps`` (as Ruff et al.'s code)."""
        c = c.detach().to(self.c)
        sign = torch.where(c < 0, -1.0, 1.0).to(c)
        self.c.copy_(torch.where(c.abs() < eps, sign * eps, c))

    def head_features(self, x):
        return self.net(self._z(x))

    def _dist(self, x):
        return ((self.net(self._z(x)) - self.c) ** 2).sum(dim=1)

    def outputs(self, x):
        d = self._dist(x)
        return Outputs(d, torch.sigmoid(d), d)

    def loss(self, x, y=None):
        return self._dist(x)


class HSCModel(BaseModel):
    """Hypersphere classifier (§4.1.2) with the pseudo-Huber ``v``."""

    name, supervised = "hsc", True

    def head_features(self, x):
        return self.net(self._z(x))

    def _v(self, x):
        return pseudo_huber((self.net(self._z(x)) ** 2).sum(dim=1))

    def outputs(self, x):
        v = self._v(x)
        return Outputs(hsc_logit(v), hsc_eta(v), v)

    def loss(self, x, y):
        return hsc_loss(self._v(x), y)


class LogisticModel(BaseModel):
    """Logistic loss (eq. 2.15) on a scalar output, trained with outlier exposure."""

    name, supervised = "logistic", True

    def head_features(self, x):
        return self.net.features(self._z(x))

    def outputs(self, x):
        z = self.net(self._z(x))
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        return logistic_loss(self.net(self._z(x)), y)


class SSIMModel(BaseModel):
    """SSIM autoencoder (§4.1.4); ``pixelwise=True`` gives the per-pixel maps (``ssim_pixel``)."""

    def __init__(self, net, in_shape, mean=None, std=None, pixelwise: bool = False, window: int = 11,
                 sigma: float = 1.5):
        super().__init__(net, in_shape, mean, std, grayscale=True)
        self.pixelwise = bool(pixelwise)
        self.name = "ssim_pixel" if pixelwise else "ssim"
        self.window, self.sigma = int(window), float(sigma)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x`` in grayscale intensities (``(N, 1, H, W)``)."""
        return self.net(self._z(x)) * self.prep.std + self.prep.mean

    def similarity(self, x: torch.Tensor) -> torch.Tensor:
        """The SSIM map ``S(x, φ(x))`` ``(N, H, W)`` after padding by 5 with the training mean."""
        g = self.prep.gray(x)
        rec = self.net(self._z(x)) * self.prep.std + self.prep.mean
        return ssim_map(g, rec, data_range=1.0, window=self.window, sigma=self.sigma,
                        padding="constant", pad_value=self.prep.mean.flatten())

    def head_features(self, x):
        return self.net.encode(self._z(x))

    def outputs(self, x):
        s = self.similarity(x)
        if self.pixelwise:
            eta = ((1 - s) / 2).clamp(1e-6, 1 - 1e-6)
            return Outputs(prob_logit(eta), eta, 1 - s)
        eta = ((1 - s) / 2).flatten(1).mean(1)
        return Outputs(prob_logit(eta), eta.clamp(1e-6, 1 - 1e-6), 2 * eta)

    def loss(self, x, y=None):
        return (1 - self.similarity(x)).flatten(1).mean(1)


def _pixel_labels(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    y = torch.as_tensor(y, device=like.device, dtype=like.dtype)
    if y.ndim == 1:
        return y.view(-1, 1, 1).expand_as(like)
    if y.shape != like.shape:
        raise ValueError(f"labels must have shape (N,) or (N, H, W) = {tuple(like.shape)}, got {tuple(y.shape)}")
    return y


class UNetModel(BaseModel):
    """U-Net with per-pixel logistic loss averaged over pixels (Proposition 1)."""

    name, supervised, pixelwise = "unet", True, True

    def head_features(self, x):
        return self.net.encode(self._z(x))

    def outputs(self, x):
        z = self.net(self._z(x))
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        z = self.net(self._z(x))
        return logistic_loss(z, _pixel_labels(y, z)).flatten(1).mean(1)


class FCDDModel(BaseModel):
    """FCDD (§4.1.3): pseudo-Huber heatmap ``A``, HSC loss on its mean, Gaussian upsampling at test time."""

    name, supervised, pixelwise = "fcdd", True, True

    def heatmap(self, x: torch.Tensor) -> torch.Tensor:
        """The low-resolution map ``A = √(φ(x)² + 1) - 1`` ``(N, h, w)``."""
        return pseudo_huber(self.net(self._z(x)) ** 2)

    def outputs(self, x):
        a = self.net.upsample(self.heatmap(x))
        return Outputs(hsc_logit(a), hsc_eta(a), a)

    def loss(self, x, y):
        v = self.heatmap(x).flatten(1).mean(1)
        y = torch.as_tensor(y, device=v.device)
        if y.ndim > 1:                                  # a mask: an image is anomalous if any pixel is
            y = y.flatten(1).amax(1)
        return hsc_loss(v, y)
