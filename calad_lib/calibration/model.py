"""A frozen base model followed by a post-hoc calibrator: an anomaly model in its own right (§3.2, §3.3)."""
from __future__ import annotations

import torch
from torch import nn

from ..detector import AnomalyModel, Outputs
from ..losses import logistic_loss
from .base import Calibrator

__all__ = ["CalibratedModel"]


class CalibratedModel(AnomalyModel):
    """``outputs(x)``: the calibrated logit, ``σ`` of it, and the calibrated logit as anomaly score.

    The calibrated logit is ``calibrator.transform(calibrator.inputs(base, x))``, whatever the
    calibrator reads. ``loss(x, y)`` is the logistic loss of the calibrated logit (pixel-wise
    models: the mean over pixels, Proposition 1), so gradient input perturbation (§3.3)
    differentiates through the calibrator and the frozen base. Outputs keep the base's dtype
    (float32): rankings are those of the base up to the rare float32 rounding of ``a z + c`` onto a
    neighbouring value. The base is put in eval mode and its parameters are frozen; gradients still
    flow to the input ``x``.
    """

    def __init__(self, base: AnomalyModel, calibrator: Calibrator, name: str | None = None):
        super().__init__()
        if not isinstance(base, AnomalyModel):
            raise TypeError(f"base must be a calad AnomalyModel, got {type(base).__name__}")
        if not isinstance(calibrator, Calibrator):
            raise TypeError(f"calibrator must be a calad Calibrator, got {type(calibrator).__name__}")
        calibrator.check_fitted()
        self.base = base.eval().requires_grad_(False)
        self.calibrator = calibrator
        if isinstance(getattr(calibrator, "module", None), nn.Module):
            self.calibrator_module = calibrator.module       # registered, so .to(device) moves it
        self.method = calibrator.name
        self.pixelwise = bool(getattr(base, "pixelwise", False))
        self.name = name or f"{calibrator.name}[{getattr(base, 'name', 'model')}]"

    def train(self, mode: bool = True):  # the base stays in eval mode (frozen batch-norm statistics)
        super().train(mode)
        self.base.eval()
        return self

    def calibrated_logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.calibrator.transform(self.calibrator.inputs(self.base, x))

    def outputs(self, x: torch.Tensor) -> Outputs:
        z = self.calibrated_logit(x)
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x: torch.Tensor, y) -> torch.Tensor:
        z = self.calibrated_logit(x)
        y = torch.as_tensor(y, dtype=z.dtype, device=z.device)
        if y.ndim == 1 and z.ndim > 1:
            y = y.view(-1, *([1] * (z.ndim - 1)))
        per = logistic_loss(z, y.expand_as(z))
        return per.flatten(1).mean(1) if per.ndim > 1 else per

    def head_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.head_features(x)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, calibrator={self.calibrator!r}"
