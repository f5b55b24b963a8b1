"""Unperturbed outputs of many models over a few image sets, with one forward pass of each base network.

The calibrators of one base (Platt, β, the head, the location-adaptive ones on the logit) only
transform what they read from it, so :class:`SharedOutputs` computes the base's logit or head
features once per image set and applies each calibrator's transform to them — exactly what the
calibrated model's own ``outputs`` computes, without a forward pass per calibrator.
"""
from __future__ import annotations

import torch

from .calibration import CalibratedModel
from .detector import Outputs
from .perturbation import perturbed_outputs
from .profile import timed

__all__ = ["SharedOutputs"]


class SharedOutputs:
    """``outputs(model, key)``: the unperturbed :class:`~calad_lib.detector.Outputs` of ``model`` on ``sets[key]``."""

    def __init__(self, sets: dict[str, torch.Tensor], batch_size: int = 256):
        self.sets, self.batch_size, self._memo = dict(sets), int(batch_size), {}

    def base_outputs(self, model, key: str) -> Outputs:
        """The outputs of ``model`` itself (a forward pass, memoised)."""
        k = (id(model), key, "outputs")
        if k not in self._memo:
            self._memo[k] = perturbed_outputs(model, self.sets[key], eps=0.0, batch_size=self.batch_size)
        return self._memo[k]

    def _head_features(self, model, key: str) -> torch.Tensor:
        k = (id(model), key, "head_features")
        if k not in self._memo:
            x = self.sets[key]
            with torch.no_grad():
                self._memo[k] = torch.cat([model.head_features(x[i:i + self.batch_size].to(model.device)).cpu()
                                           for i in range(0, len(x), self.batch_size)])
        return self._memo[k]

    @timed("evaluation")
    def outputs(self, model, key: str) -> Outputs:
        """Outputs of ``model`` on image set ``key``; calibrated models reuse their base's pass."""
        if isinstance(model, CalibratedModel) and model.calibrator.reads in ("logit", "head_features"):
            cal = model.calibrator
            inputs = (self.base_outputs(model.base, key).logit if cal.reads == "logit"
                      else self._head_features(model.base, key))
            with torch.no_grad():
                z = cal.transform(inputs).detach().cpu()
            return Outputs(z, torch.sigmoid(z), z)
        return self.base_outputs(model, key)
