"""The API every post-hoc calibrator shares (thesis §3.2): ``fit``, ``transform``, ``predict_proba``.

A calibrator maps what it *reads* from a frozen base model to a calibrated logit. ``reads`` is
``"logit"`` (the base logit ``z``, one per image or a map, for Platt, β and the location-adaptive
calibrators on ``z``), ``"head_features"`` (:meth:`~calad_lib.detector.AnomalyModel.head_features`,
for the calibration head of §3.2.3) or ``"feature_maps"`` (the logit map and the network's last
feature map, for a pixel-wise head). :meth:`Calibrator.inputs` reads it from a base model, so
:class:`~calad_lib.calibration.CalibratedModel` needs no special cases. Labels are 0 (normal) and
1 (synthetic anomaly), one per value, one per image of a map, or masks.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..detector import AnomalyModel

__all__ = ["Calibrator", "NotFittedError", "READS", "network_features", "to_tensor", "labels_like", "check_finite"]

#: what a calibrator may read from its base model
READS = ("logit", "head_features", "feature_maps")


class NotFittedError(RuntimeError):
    """A calibrator was used before :meth:`Calibrator.fit`."""


def to_tensor(a, dtype=torch.float64, device=None) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to(dtype=dtype, device=device if device is not None else a.device)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def labels_like(z: torch.Tensor, y, what: str = "z") -> torch.Tensor:
    """Labels broadcast to the shape of ``z`` (per-image labels of maps are spread over pixels), float64."""
    y = to_tensor(y, dtype=torch.float64, device=z.device)
    if y.shape != z.shape:
        if y.ndim == 1 and z.ndim > 1 and y.shape[0] == z.shape[0]:
            y = y.view(-1, *([1] * (z.ndim - 1))).expand_as(z)
        else:
            raise ValueError(f"labels of shape {tuple(y.shape)} do not match {what} of shape {tuple(z.shape)}; "
                             "give one label per value, one per image, or masks")
    if not torch.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    if y.numel() and (y.min() == y.max()):
        raise ValueError("calibration needs both normal (0) and anomalous (1) examples; only one class was given")
    return y


def check_finite(z: torch.Tensor, what: str) -> None:
    if z.numel() == 0:
        raise ValueError(f"{what} is empty; calibration needs data")
    if not torch.isfinite(z).all():
        raise ValueError(f"{what} contains NaN or infinite values; check the base model's outputs")


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
        raise ValueError(f"{base.name} has no .net; feature maps need a calad base model")
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


class Calibrator:
    """Base of the post-hoc calibrators: one ``fit`` / ``transform`` / ``predict_proba``, one fitted check.

    Subclasses set :attr:`name` and :attr:`reads` and implement ``_fit(X, y)`` and ``_transform(X)``;
    ``X`` is what :meth:`inputs` reads from a base model (a tensor, or ``(z, features)`` for
    ``reads = "feature_maps"``). :meth:`transform` keeps tensors differentiable (gradient input
    perturbation, §3.3, goes through it) and returns arrays for arrays.
    """

    #: the method's name in tables and result rows
    name: str = "calibrator"
    #: what the calibrator reads from its base model (one of :data:`READS`)
    reads: str = "logit"
    #: whether it needs a pixel-wise base (maps)
    pixelwise_only: bool = False
    fitted_: bool = False

    def fit(self, X, y) -> "Calibrator":
        """Fit on inputs ``X`` (see :meth:`inputs`) with labels ``y``; returns ``self``."""
        self._fit(X, y)
        self.fitted_ = True
        return self

    @property
    def fitted(self) -> bool:
        return bool(self.fitted_)

    def check_fitted(self) -> None:
        if not self.fitted_:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call .fit(X, y) first "
                                 "(or calad.calibration.calibrate(base, ...))")

    def transform(self, X):
        """Calibrated logits of inputs ``X`` (tensors stay differentiable tensors; arrays give arrays)."""
        self.check_fitted()
        if isinstance(X, torch.Tensor) or isinstance(X, tuple):
            return self._transform(X)
        out = self._transform(torch.as_tensor(np.asarray(X, dtype=np.float64)))
        return out.detach().numpy()

    def predict_proba(self, X):
        """Calibrated probability estimates ``σ(transform(X))``."""
        t = self.transform(X)
        return torch.sigmoid(t) if isinstance(t, torch.Tensor) else 1.0 / (1.0 + np.exp(-t))

    def inputs(self, base: AnomalyModel, x: torch.Tensor):
        """What this calibrator reads from ``base`` for raw images ``x`` (differentiable in ``x``)."""
        if self.reads == "head_features":
            return base.head_features(x)
        if self.reads == "feature_maps":
            return network_features(base, x)
        return base.logit(x)

    def coefficients(self) -> dict[str, float]:
        """The fitted parameters by name (empty for calibrators with too many to list)."""
        return {}

    # --- fitting from a stream of batches (used by calad.calibration.calibrate) ---------------
    def _begin(self, n_images: int) -> None:
        self._parts: list = []

    def _add(self, X, y) -> None:
        self._parts.append((X, y))

    def _end(self) -> "Calibrator":
        parts, self._parts = self._parts, []
        if isinstance(parts[0][0], tuple):
            X = tuple(torch.cat([p[0][i] for p in parts]) for i in range(len(parts[0][0])))
        else:
            X = torch.cat([p[0] for p in parts])
        return self.fit(X, torch.cat([p[1] for p in parts]))

    def _fit(self, X, y) -> None:
        raise NotImplementedError

    def _transform(self, X):
        raise NotImplementedError

    def __repr__(self) -> str:
        if not self.fitted_:
            return f"{type(self).__name__}(unfitted)"
        coef = ", ".join(f"{k}={v:.4g}" for k, v in self.coefficients().items())
        return f"{type(self).__name__}({coef or 'fitted'})"
