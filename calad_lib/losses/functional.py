"""Loss and link functions of thesis §2.4.2 and §4.1, written to be numerically stable.

* logistic loss (eq. 2.15) ``λ(y, z) = y ln(1 + e^{-z}) + (1 - y) ln(1 + e^{z})``;
* HSC (eq. 4.1) ``λ(y, v) = -y ln(1 - e^{-v}) + (1 - y) v`` with inverse link
  ``ψ⁻¹(v) = 1 - e^{-v}`` and the pseudo-Huber ``v = √(‖φ‖² + 1) - 1``;
* the logit ``σ⁻¹(η̂)`` of an HSC estimate, ``ln(e^v - 1)``, for every ``v ≥ 0``.

Every function works elementwise on tensors of any shape.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pseudo_huber", "hsc_loss", "hsc_eta", "hsc_logit", "hsc_v", "logistic_loss", "prob_logit",
           "HSC_V_MIN", "PROB_EPS"]

#: below this ``v`` the anomalous HSC term ``-ln(1 - e^{-v})`` is held constant (≈ 27.6)
HSC_V_MIN = 1e-12
#: estimates that can reach exactly 0 or 1 (SSIM) are clamped to ``[PROB_EPS, 1 - PROB_EPS]``
PROB_EPS = 1e-6


def pseudo_huber(sq: torch.Tensor) -> torch.Tensor:
    """``√(sq + 1) - 1`` for ``sq ≥ 0``, as ``sq / (√(sq + 1) + 1)`` (no cancellation near 0)."""
    return sq / (torch.sqrt(sq + 1) + 1)


def hsc_loss(v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """HSC loss (eq. 4.1); the anomalous term is ``-log(-expm1(-v))`` (finite for ``v ≥ HSC_V_MIN``)."""
    y = torch.as_tensor(y, dtype=v.dtype, device=v.device)
    anomalous = -torch.log(-torch.expm1(-v.clamp_min(HSC_V_MIN)))
    return y * anomalous + (1 - y) * v


def hsc_eta(v: torch.Tensor) -> torch.Tensor:
    """HSC inverse link ``η̂ = 1 - e^{-v}`` (as ``-expm1(-v)``)."""
    return -torch.expm1(-v)


def hsc_logit(v: torch.Tensor) -> torch.Tensor:
    """``z = σ⁻¹(1 - e^{-v}) = ln(e^v - 1)``, computed as ``v + ln(1 - e^{-v})``: exact for tiny and huge ``v``."""
    v = v.clamp_min(torch.finfo(v.dtype).tiny)
    return v + torch.log(-torch.expm1(-v))


def hsc_v(eta: torch.Tensor) -> torch.Tensor:
    """The HSC link ``v = ψ(η̂) = -ln(1 - η̂)``."""
    return -torch.log1p(-eta)


def logistic_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logistic loss (eq. 2.15) of logits ``z``, elementwise (binary cross-entropy with logits)."""
    y = torch.as_tensor(y, dtype=z.dtype, device=z.device).expand_as(z)
    return F.binary_cross_entropy_with_logits(z, y, reduction="none")


def prob_logit(eta: torch.Tensor, eps: float = PROB_EPS) -> torch.Tensor:
    """``σ⁻¹(η̂)`` with ``η̂`` clamped to ``[eps, 1 - eps]`` (for estimates that can be exactly 0 or 1)."""
    eta = eta.clamp(eps, 1 - eps)
    return torch.log(eta) - torch.log1p(-eta)
