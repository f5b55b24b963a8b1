"""Platt scaling and β calibration of the base logit (thesis §3.2.1–§3.2.2).

Both are fitted on the **logistic loss** (eq. 2.15) by :func:`~calad_lib.calibration.logistic.fit_logistic`
to the exact minimiser. Given maps ``(N, H, W)`` they are the *per-pixel* versions: one transform for
every pixel, fitted on the average per-pixel logistic loss (Proposition 1; all maps have the same
size, so this is the mean over all pixels). The thesis fitted the per-pixel versions with Adam;
the convex objective is the same.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .base import Calibrator, check_finite, labels_like, to_tensor
from .logistic import fit_logistic

__all__ = ["PlattScaling", "BetaCalibration"]

_F32_EPS = float(np.finfo(np.float32).eps)


class _LogitCalibrator(Calibrator):
    """A logistic model on features of the base logit ``z`` (Platt: ``z``; β: ``ln η̂, −ln(1 − η̂)``)."""

    reads = "logit"

    def _features(self, z: torch.Tensor) -> torch.Tensor:  # (m,) -> (m, k)
        raise NotImplementedError

    def _nonneg(self) -> tuple[bool, ...]:
        raise NotImplementedError

    def _set(self, w: np.ndarray, c: float) -> None:
        raise NotImplementedError

    def _fit(self, z, y) -> None:
        """Fit on base logits ``z`` (``(N,)`` or maps ``(N, H, W)``) and labels ``y`` (same shape or ``(N,)``)."""
        zt = to_tensor(z, dtype=torch.float64)
        check_finite(zt, "z")
        yt = labels_like(zt, y)
        fit = fit_logistic(self._features(zt.reshape(-1)), yt.reshape(-1), nonneg=self._nonneg())
        self.degenerate_ = bool(fit.constant.all())
        if self.degenerate_:
            warnings.warn(f"{type(self).__name__}: the calibration logits are constant, so only the base rate "
                          f"{float(yt.mean()):.3g} can be fitted; every input gets that probability", stacklevel=3)
        self._set(fit.w, fit.c)
        self.n_iter_, self.converged_, self.loss_ = fit.iterations, fit.converged, fit.loss


class PlattScaling(_LogitCalibrator):
    """Platt scaling (§3.2.1, eq. 3.1): ``z_P = z / T + c = a z + c``.

    Unconstrained, like a one-feature logistic regression. Rankings are unchanged whenever
    ``a_ > 0``, i.e. whenever the base logit ranks calibration anomalies above normal data better
    than chance; a warning is raised otherwise (``quiet=True`` silences it for callers that record
    the fitted parameters). Attributes: ``a_`` (= 1/T), ``c_``, ``T_``.
    """

    name = "platt"

    def __init__(self, *, quiet: bool = False):
        self.quiet = bool(quiet)

    @classmethod
    def from_params(cls, a: float = 1.0, c: float = 0.0) -> "PlattScaling":
        """A Platt transform with given parameters (``a = 1/T``), e.g. to draw Figure 3.2."""
        cal = cls()
        cal.a_, cal.c_, cal.fitted_ = float(a), float(c), True
        return cal

    def _features(self, z):
        return z.reshape(-1, 1)

    def _nonneg(self):
        return (False,)

    def _set(self, w, c):
        self.a_, self.c_ = float(w[0]), float(c)
        if self.a_ <= 0 and not self.degenerate_ and not self.quiet:
            warnings.warn(f"Platt scaling fitted a = {self.a_:.3g} <= 0: it reverses the base ranking "
                          "(the base logit does not separate the calibration data)", stacklevel=4)

    @property
    def T_(self) -> float:
        return 1.0 / self.a_ if self.a_ != 0 else math.inf

    def coefficients(self) -> dict[str, float]:
        return {"a": self.a_, "c": self.c_}

    def _transform(self, z):
        return self.a_ * z + self.c_


class BetaCalibration(_LogitCalibrator):
    """Beta calibration (§3.2.2, eq. 3.2): ``z_β = a ln η̂ − b ln(1 − η̂) + c`` with ``a, b ≥ 0``.

    Fitted with the bounds ``a, b ≥ 0`` (betacal instead refits with one feature dropped when a
    coefficient comes out negative; both reach the constrained minimiser of this convex problem).
    Input is the base *logit* ``z`` in both variants:

    * ``"stable"``: ``ln η̂ = logsigmoid(z)``, ``−ln(1 − η̂) = softplus(z)``, in float64 —
      ``a = b`` gives exactly Platt's ``a z + c``.
    * ``"naive"``: ``η̂ = σ(z)`` in float32, clipped to ``[ε, 1 − ε]`` (float32 ε ≈ 1.19e-7),
      then logs — how a pipeline that hands float32 ``η̂`` to ``betacal`` behaves. Logits with
      ``|z| ≳ 15.9`` all collapse onto the clip value, so their ranking is lost (§4.3.1), and
      the clip also has zero gradient there.

    Attributes: ``a_``, ``b_``, ``c_``.
    """

    def __init__(self, variant: str = "stable"):
        if variant not in ("stable", "naive"):
            raise ValueError(f"unknown Beta calibration variant {variant!r}; choose 'stable' or 'naive'")
        self.variant = variant

    @property
    def name(self) -> str:
        return "beta" if self.variant == "stable" else "beta_naive"

    @classmethod
    def from_params(cls, a: float = 1.0, b: float = 1.0, c: float = 0.0, variant: str = "stable") -> "BetaCalibration":
        """A Beta transform with given parameters (``a, b ≥ 0``), e.g. to draw Figure 3.3."""
        if a < 0 or b < 0:
            raise ValueError(f"Beta calibration needs a, b >= 0; got a = {a}, b = {b}")
        cal = cls(variant)
        cal.a_, cal.b_, cal.c_, cal.fitted_ = float(a), float(b), float(c), True
        return cal

    def log_eta(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ln η̂, ln(1 − η̂))`` of logits ``z`` as this variant computes them."""
        if self.variant == "stable":
            return F.logsigmoid(z), F.logsigmoid(-z)
        eta = torch.sigmoid(z.to(torch.float32)).clamp(_F32_EPS, 1.0 - _F32_EPS)
        return torch.log(eta).to(z.dtype), torch.log(1.0 - eta).to(z.dtype)

    def _features(self, z):
        ln_eta, ln_1m = self.log_eta(z)
        return torch.stack([ln_eta, -ln_1m], dim=-1)

    def _nonneg(self):
        return (True, True)

    def _set(self, w, c):
        self.a_, self.b_, self.c_ = float(w[0]), float(w[1]), float(c)

    def coefficients(self) -> dict[str, float]:
        return {"a": self.a_, "b": self.b_, "c": self.c_}

    def _transform(self, z):
        ln_eta, ln_1m = self.log_eta(z)
        return self.a_ * ln_eta - self.b_ * ln_1m + self.c_

    def __repr__(self) -> str:
        return super().__repr__().replace("(", f"[{self.variant}](", 1)
