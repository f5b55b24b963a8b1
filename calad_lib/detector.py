"""The contract every anomaly model in calad fulfils (thesis §4.1).

A model maps a batch of **raw images** ``x`` (``float32``, shape ``(N, C, H, W)``, values
in ``[0, 1]``) to the three quantities the thesis uses for each base loss:

* a **logit** ``z`` (used by Platt scaling and the logistic loss),
* a **probability estimate** ``η̂ = σ(z)`` (used by β calibration),
* an **anomaly score** (used to rank test inputs; larger = more anomalous).

Preprocessing (grayscale for the SSIM loss, z-scores with the training statistics)
lives *inside* the model, so gradient input perturbation (§3.3) and every metric
act on raw pixels, and a calibrated model is simply another :class:`AnomalyModel`
wrapping a base one.

Detection models return one value per image (shape ``(N,)``). Localization models
(``pixelwise = True``) return one value per pixel (shape ``(N, H, W)``, the input's
height and width), and :meth:`AnomalyModel.image_outputs` may still reduce them.

``logit`` must be computed stably (never as ``log(η̂) - log(1 - η̂)`` after
materialising ``η̂``): the *stable* β calibration reads ``ln η̂ = logsigmoid(z)`` and
``ln(1 - η̂) = logsigmoid(-z)`` from it.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["Outputs", "AnomalyModel"]


class Outputs(NamedTuple):
    """The per-input quantities of §4.1; each has shape ``(N,)`` or ``(N, H, W)``."""

    logit: torch.Tensor
    eta: torch.Tensor
    score: torch.Tensor


class AnomalyModel(nn.Module):
    """Abstract anomaly model; subclasses implement :meth:`outputs` and :meth:`loss`.

    Attributes
    ----------
    pixelwise : bool
        ``True`` for localization models whose quantities are per-pixel maps.
    name : str
        Short name used in tables (``svdd``, ``hsc``, ``logistic``, ``ssim``, ``fcdd``,
        ``platt[svdd]``, ...).
    """

    pixelwise: bool = False
    name: str = "model"

    def outputs(self, x: torch.Tensor) -> Outputs:
        """Logit, η̂ and anomaly score of raw images ``x`` from a single forward pass."""
        raise NotImplementedError

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The per-sample loss (shape ``(N,)``) this model is trained or calibrated with.

        ``y`` is ``0`` for normal and ``1`` for anomalous inputs; unsupervised losses ignore
        it. Gradient input perturbation (§3.3) differentiates this with respect to ``x``.
        Pixel-wise models average their per-pixel loss over pixels (Proposition 1).
        """
        raise NotImplementedError

    def head_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features a calibration head (§3.2.3) is fitted on, shape ``(N, d)``.

        Autoencoders: the bottleneck; vector-output networks: the output vector;
        scalar-output networks: the layer before the final fully connected layer.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose calibration-head features")

    # convenience views of :meth:`outputs` ---------------------------------------------
    def logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x).logit

    def eta(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x).eta

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x).score

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D401 - nn.Module API
        """The logit (so ``model(x)`` is what a logistic loss consumes)."""
        return self.outputs(x).logit

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")
