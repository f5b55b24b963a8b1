"""The one logistic fit behind Platt, β and the location-adaptive calibrators (eq. 2.15, §3.2).

:func:`fit_logistic` minimises the mean logistic loss of ``X w + c`` (plus an optional L2 penalty
on the standardised weights) with SciPy's L-BFGS-B, optionally with ``w_j ≥ 0``: the problem is
convex, so this reaches its minimiser, which the thesis approached with Adam.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

__all__ = ["LogisticFit", "fit_logistic", "one_thread"]


class LogisticFit(NamedTuple):
    """Weights and intercept in the features' original units, and how the fit went."""

    w: np.ndarray
    c: float
    constant: np.ndarray      # features with no spread beyond rounding (their weight is 0)
    loss: float
    iterations: int
    converged: bool


class one_thread:
    """Run small CPU fits on one thread: on ~10⁵ values, thread hand-offs cost more than they save."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


def fit_logistic(X: torch.Tensor, y: torch.Tensor, *, nonneg: Sequence[bool] | None = None, l2: float = 0.0,
                 start: str = "unit", low_precision: bool = False, ftol: float = 1e-14, gtol: float = 1e-10,
                 maxiter: int = 2000) -> LogisticFit:
    """Minimise ``mean ℓ(y, X w + c) + l2/2 ‖w̃‖²`` over ``(w, c)`` (``w̃``: weights of the standardised features).

    Features are centred and scaled by their standard deviation (a positive rescaling, so the
    bounds ``nonneg[j]`` keep their meaning); a feature whose spread is at rounding level keeps
    ``w_j = 0``. ``start="unit"`` starts from unit weights in original units (Platt's and β's
    identity ``z ↦ z``), ``"first"`` from weight 1 on the first standardised feature only.
    ``low_precision`` holds the standardised features in float32 for the matrix products (the loss
    and gradient are accumulated in float64), for fits on millions of pixels.
    """
    X = X.reshape(X.shape[0], -1).to(torch.float64) if X.ndim > 1 else X.reshape(-1, 1).to(torch.float64)
    yf = y.reshape(-1).to(torch.float64)
    k = X.shape[1]
    nonneg = tuple(nonneg) if nonneg is not None else (False,) * k
    mu, sd = X.mean(0), X.std(0)
    constant = sd <= 1e-10 * torch.clamp(mu.abs(), min=1.0)
    sd = torch.where(constant, torch.ones_like(sd), sd)
    Xs = torch.where(constant, torch.zeros_like(X), (X - mu) / sd)
    if low_precision:
        Xs = Xs.to(torch.float32)

    def fun(theta: np.ndarray):
        t = torch.as_tensor(theta, dtype=torch.float64, device=X.device)
        w = t[:k].to(Xs.dtype)
        s = (Xs @ w).to(torch.float64) + t[k]
        loss = (F.softplus(s) - yf * s).mean() + 0.5 * l2 * (t[:k] ** 2).sum()
        r = (torch.sigmoid(s) - yf) / s.numel()
        grad = torch.cat([(Xs.T @ r.to(Xs.dtype)).to(torch.float64) + l2 * t[:k], r.sum().reshape(1)])
        return float(loss), grad.cpu().numpy()

    fixed = constant.cpu().numpy()
    theta0 = np.zeros(k + 1)
    if start == "unit":
        theta0[:k] = np.where(fixed, 0.0, sd.cpu().numpy())
    elif start == "first":
        theta0[0] = 1.0
    else:
        raise ValueError(f"unknown start {start!r}; choose 'unit' or 'first'")
    bounds = [(0.0, 0.0) if f else (0.0, None) if nn_ else (None, None) for nn_, f in zip(nonneg, fixed)]
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds + [(None, None)],
                   options={"maxiter": maxiter, "ftol": ftol, "gtol": gtol, "maxcor": 20})
    w = res.x[:k] / sd.cpu().numpy()
    c = float(res.x[k]) - float((torch.as_tensor(w, dtype=torch.float64, device=X.device) * mu).sum())
    return LogisticFit(w, c, fixed, float(res.fun), int(res.nit), bool(res.success))
