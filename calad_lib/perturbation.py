"""Gradient-based input perturbation of test inputs (thesis §3.3, eq. 3.3; ODIN).

``x̃ = x − ε · sgn(∇ₓ ℓ(y, x))`` where ``ℓ`` is ``model.loss`` — the base loss for a base model,
the logistic loss of the calibrated logit for a :class:`~calad_lib.calibration.CalibratedModel`
(so the gradient passes through the calibrator and the frozen base).

Conventions (stated once, used everywhere in the book):

* **Label.** ``y = 0`` by default: every test input, normal or not, is pushed towards
  "normal" (lower loss for the normal class). Unsupervised losses (SVDD, SSIM) ignore ``y``.
  ODIN instead uses each input's *predicted* class; ``y="predicted"`` does the same here
  (``y = 1`` where the model's own logit is ``> 0``, i.e. ``η̂ > 1/2``, per pixel for pixel-wise
  models), pushing every input towards the class the model already assigns it.
  With ``y = 0`` and a strictly increasing calibrator (Platt, β), ``sgn ∇ₓ`` of the calibrated
  loss equals that of the base logit wherever the gradient does not underflow, so the step is
  the one the base logit would take; with ``y="predicted"`` the calibrator's threshold matters.
* **Units.** ``ε`` is in raw pixel units: images are ``[0, 1]`` floats and models standardise
  internally, so the step is taken in raw pixel space. This matches ODIN, which perturbs the
  standardised input by ``ε / σ_c`` per channel ``c`` — the same raw-space step of ``ε``. No
  per-channel scaling is applied here, and the result is not clipped to ``[0, 1]`` (eq. 3.3 has no clip).
* ``sgn(0) = 0``: pixels with zero gradient are left unchanged (ODIN maps them to ``+ε``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from . import metrics as M
from .detector import AnomalyModel, Outputs
from .profile import phase, timed
from .progress import bar as progress_bar

__all__ = ["perturb", "perturbed_outputs", "perturbation_effect", "effect_summary", "step_report", "gradient_norms",
           "evaluate", "auroc_vs_eps", "perturbed_scores",
           "DEFAULT_EPS"]

#: ε of the thesis' experiments (§4.2.2)
DEFAULT_EPS = 1.4e-3


def _check_eps(eps) -> float:
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps = {eps!r} must be a number >= 0") from None
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps = {eps} must be a finite number >= 0 (the perturbation decreases the loss; eq. 3.3)")
    return eps


def _check_inputs(model, x) -> None:
    if not isinstance(model, AnomalyModel):
        raise TypeError(f"model must be a calad AnomalyModel, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError("x must be an image tensor of shape (N, C, H, W) with values in [0, 1]")


def _labels(y, n: int) -> torch.Tensor | None:
    """Labels as a tensor of ``n`` rows, or ``None`` for ``y="predicted"``."""
    if isinstance(y, str):
        if y != "predicted":
            raise ValueError(f"y = {y!r} is not a label; give 0, 1, one label per input or 'predicted'")
        return None
    y = torch.as_tensor(y, dtype=torch.float32)
    if y.ndim == 0:
        y = y.expand(n)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} labels for {n} inputs; give one label per input or a single label")
    return y


def _batch_labels(model: AnomalyModel, yy: torch.Tensor | None, xb: torch.Tensor, s: int) -> torch.Tensor:
    if yy is None:  # ODIN's convention: the model's own prediction
        with torch.no_grad():
            return (model.logit(xb) > 0).to(torch.float32)
    return yy[s:s + len(xb)].to(xb.device)


def _input_grad(model: AnomalyModel, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """``∇ₓ model.loss(x, y)`` per input (the losses of a batch are independent, so the sum's gradient is per input)."""
    with torch.enable_grad():
        xg = xb.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model.loss(xg, yb).sum(), xg)
    return grad.detach()


def _step(model: AnomalyModel, xb: torch.Tensor, yb: torch.Tensor, eps: float,
          grad: torch.Tensor | None = None) -> torch.Tensor:
    grad = _input_grad(model, xb, yb) if grad is None else grad
    return (xb - eps * torch.sign(grad)).detach()


class _EvalMode:
    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


@timed("perturbation")
def perturb(model: AnomalyModel, x: torch.Tensor, eps: float = DEFAULT_EPS, y=0, *, batch_size: int = 256,
            progress: bool = False) -> torch.Tensor:
    """Perturbed inputs ``x̃ = x − ε·sgn(∇ₓ model.loss(x, y))`` (eq. 3.3), on ``x``'s device.

    ``x``: raw images ``(N, C, H, W)`` in ``[0, 1]``; ``eps`` in raw pixel units (``≥ 0``;
    ``0`` returns a copy of ``x``); ``y``: label(s) of the loss — ``0`` (default) pushes every
    input towards normal, ``"predicted"`` towards the model's own prediction (ODIN).
    Computed in batches of ``batch_size`` on the model's device, in eval mode; each input's
    perturbation depends on that input only, so the result does not depend on the batching.
    """
    eps = _check_eps(eps)
    _check_inputs(model, x)
    if eps == 0:
        return x.clone()
    yy = _labels(y, len(x))
    dev = model.device
    out = torch.empty_like(x)
    with _EvalMode(model):
        for s in progress_bar(range(0, len(x), batch_size), desc="perturbing", disable=not progress, leave=False):
            xb = x[s:s + batch_size].to(dev)
            out[s:s + batch_size] = _step(model, xb, _batch_labels(model, yy, xb, s), eps).to(out.device)
    return out


def perturbed_outputs(model: AnomalyModel, x: torch.Tensor, eps: float = 0.0, y=0, *, batch_size: int = 256,
                      progress: bool = False) -> Outputs:
    """The model's :class:`~calad_lib.detector.Outputs` on ``x`` — perturbed first when ``eps > 0``.

    One batched pass (perturb, then score each batch) without keeping ``x̃``; results are CPU tensors.
    """
    eps = _check_eps(eps)
    _check_inputs(model, x)
    yy = _labels(y, len(x))
    dev = model.device
    parts: list[Outputs] = []
    with phase("perturbation" if eps > 0 else "evaluation"), _EvalMode(model):
        for s in progress_bar(range(0, len(x), batch_size), desc="scoring" if eps == 0 else f"scoring (eps={eps:g})",
                      disable=not progress, leave=False):
            xb = x[s:s + batch_size].to(dev)
            if eps > 0:
                xb = _step(model, xb, _batch_labels(model, yy, xb, s), eps)
            with torch.no_grad():
                o = model.outputs(xb)
            parts.append(Outputs(*(t.detach().cpu() for t in o)))
    return Outputs(*(torch.cat(ts) for ts in zip(*parts)))


@timed("perturbation")
def perturbation_effect(model: AnomalyModel, x: torch.Tensor, eps: float = DEFAULT_EPS, y=0, *,
                        batch_size: int = 256, progress: bool = False) -> dict[str, torch.Tensor]:
    """Per-input loss and score before and after perturbation, in one batched pass (§3.3's mechanism).

    Returns CPU tensors ``loss``, ``loss_perturbed`` (``model.loss(·, y)``, the loss being
    decreased, with the labels of the unperturbed input for ``y="predicted"``), ``score``,
    ``score_perturbed`` (the anomaly score that ranks the inputs) and ``grad_norm``, the
    ``‖∇ₓ loss‖₁`` of each input that the step's sign is taken of (see :func:`gradient_norms`).
    Pixel-wise models give per-image losses and per-pixel scores.
    """
    eps = _check_eps(eps)
    _check_inputs(model, x)
    yy = _labels(y, len(x))
    dev = model.device
    keys = ("loss", "loss_perturbed", "score", "score_perturbed", "grad_norm")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    with _EvalMode(model):
        for s in progress_bar(range(0, len(x), batch_size), desc="perturbation effect", disable=not progress, leave=False):
            xb = x[s:s + batch_size].to(dev)
            yb = _batch_labels(model, yy, xb, s)
            grad = _input_grad(model, xb, yb)
            parts["grad_norm"].append(grad.flatten(1).norm(p=1, dim=1).cpu())
            xt = _step(model, xb, yb, eps, grad) if eps > 0 else xb
            with torch.no_grad():
                for k, inp in (("", xb), ("_perturbed", xt)):
                    parts["loss" + k].append(model.loss(inp, yb).detach().cpu())
                    parts["score" + k].append(model.score(inp).detach().cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def effect_summary(effect: dict[str, torch.Tensor], y_test) -> dict[str, float]:
    """What a :func:`perturbation_effect` does to normal and anomalous inputs: the median change of the loss and
    of the score in each group, and the (normal, anomalous) pairs the step reorders (``pairs fixed`` − ``pairs
    broken`` is the AUROC change, :func:`calad_lib.metrics.pairs_changed`)."""
    y = torch.as_tensor(np.asarray(y_test)).bool()
    d_loss = (effect["loss_perturbed"] - effect["loss"]).double()
    d_score = (effect["score_perturbed"] - effect["score"]).double()
    pairs = M.pairs_changed(y.long(), effect["score"], effect["score_perturbed"])
    return {"Δloss normal": float(d_loss[~y].median()), "Δloss anomalous": float(d_loss[y].median()),
            "Δscore normal": float(d_score[~y].median()), "Δscore anomalous": float(d_score[y].median()),
            "pairs fixed": pairs["fixed"], "pairs broken": pairs["broken"]}


def step_report(model: AnomalyModel, x: torch.Tensor, eps: float = DEFAULT_EPS) -> dict[str, float]:
    """Eq. (3.3) checked on inputs ``x`` (label 0): the largest step, whether every moved pixel moved by exactly
    ``eps``, the share of pixels moved and the share of inputs whose loss did not increase."""
    xt = perturb(model, x, eps)
    d = (xt - x).abs()
    moved = d > 0
    with torch.no_grad():
        d_loss = model.loss(xt, 0) - model.loss(x, 0)
    return {"max step": float(d.max()), "every move is eps": bool(((d[moved] - eps).abs() < 1e-6).all()),
            "pixels moved": float(moved.float().mean()), "loss not increased": float((d_loss <= 0).float().mean())}


@timed("perturbation")
def gradient_norms(model: AnomalyModel, x: torch.Tensor, y=0, *, p: float = 1.0, batch_size: int = 256) -> torch.Tensor:
    """Per-input ``‖∇ₓ model.loss(x, y)‖_p`` (default ℓ1, the norm eq. 3.3's sign step is dual to).

    To first order, one step of eq. 3.3 lowers input ``x``'s loss by ``ε · ‖∇ₓ ℓ‖₁``, so the gap
    of these norms between anomalous and normal inputs measures how differently the step moves
    the two groups. CPU tensor of shape ``(N,)``.
    """
    _check_inputs(model, x)
    yy = _labels(y, len(x))
    dev = model.device
    out = []
    with _EvalMode(model):
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size].to(dev)
            out.append(_input_grad(model, xb, _batch_labels(model, yy, xb, s)).flatten(1).norm(p=p, dim=1).cpu())
    return torch.cat(out)


def _test_labels(y, n: int) -> np.ndarray:
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y).ravel()
    if len(y) != n:
        raise ValueError(f"{len(y)} labels for {n} test inputs; give one label per input")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    return y.astype(np.int64)


def evaluate(model, x_test: torch.Tensor, y_test, *, calib_normal: torch.Tensor | None = None,
             calib_anomalies: torch.Tensor | None = None, masks=None, eps: float | None = 1.4e-3, label=0,
             n_bins: int = 10, batch_size: int = 256, progress: bool = False) -> dict[str, float]:
    """The §4.2.2 evaluation of one model: unperturbed and perturbed AUROC (pixel AUROC and AUPRO), κ, ECE/MCE.

    Detection models: ``auroc`` on ``(x_test, y_test)`` and ``auroc_perturbed`` after gradient
    input perturbation with ``eps`` (skipped when ``eps`` is ``None``; label convention ``label``:
    ``0`` or ``"predicted"``, never the test labels), plus ``kappa``.
    Calibration (``ece``, ``mce``) is measured on a separate set: ``calib_normal`` (default: the
    normal test inputs) labelled 0 and an **equal number** of held-out synthetic anomalies
    ``calib_anomalies`` (never used for training or calibration) labelled 1 — the larger of the
    two is cut to the size of the smaller. Without ``calib_anomalies`` ECE/MCE are NaN.

    Pixel-wise models need ``masks`` ``(N, H, W)`` for ``x_test`` and give ``pixel_auroc``,
    ``aupro`` (each also ``_perturbed``), ``pixel_ece`` and ``pixel_mce`` (every pixel of a
    normal image labelled 0, of a synthetic anomaly 1).
    """
    if eps is not None and eps < 0:
        raise ValueError(f"eps = {eps} must be >= 0 (or None to skip the perturbed evaluation)")
    y = _test_labels(y_test, len(x_test))
    if model.pixelwise and masks is None:
        raise ValueError(f"{model.name} is pixel-wise: pass masks=(N, H, W) ground truth for x_test")
    kw = dict(batch_size=batch_size, progress=progress)
    out: dict[str, float] = {}
    runs = [("", 0.0)] + ([("_perturbed", eps)] if eps else [])
    for suffix, e in runs:
        o = perturbed_outputs(model, x_test, eps=e, y=label, **kw)
        if model.pixelwise:
            out["pixel_auroc" + suffix] = M.pixel_auroc(masks, o.score)
            out["aupro" + suffix] = M.aupro(masks, o.score)
        else:
            out["auroc" + suffix] = M.auroc(y, o.score)
    if eps and not model.pixelwise:
        out["kappa"] = M.kappa(out["auroc_perturbed"], out["auroc"])
    elif eps and eps > 0:
        out["kappa"] = M.kappa(out["pixel_auroc_perturbed"], out["pixel_auroc"])
    if calib_anomalies is None:
        key = ("pixel_" if model.pixelwise else "")
        out[key + "ece"] = out[key + "mce"] = float("nan")
        return out
    normal = calib_normal if calib_normal is not None else x_test[torch.as_tensor(y == 0)]
    m = min(len(normal), len(calib_anomalies))
    eta0 = perturbed_outputs(model, normal[:m], eps=0.0, **kw).eta
    eta1 = perturbed_outputs(model, calib_anomalies[:m], eps=0.0, **kw).eta
    eta = torch.cat([eta0, eta1]).numpy()
    lab = np.concatenate([np.zeros(eta0.shape), np.ones(eta1.shape)])
    key = "pixel_" if model.pixelwise else ""
    out[key + "ece"] = M.ece(lab, eta, n_bins)
    out[key + "mce"] = M.mce(lab, eta, n_bins)
    return out


def perturbed_scores(model: AnomalyModel, x: torch.Tensor, eps_values, y=0, *, batch_size: int = 256) -> dict:
    """``{ε: anomaly scores of x̃(ε)}`` for several steps from **one** gradient per input.

    The sign of ``∇ₓ loss`` does not depend on ε, so a sweep needs one backward pass per batch and one
    forward pass per ε; each score equals ``perturbed_outputs(model, x, eps=ε, y=y).score``.
    """
    values = [_check_eps(e) for e in eps_values]
    _check_inputs(model, x)
    yy = _labels(y, len(x))
    dev = model.device
    parts: dict[float, list[torch.Tensor]] = {e: [] for e in values}
    with phase("perturbation"), _EvalMode(model):
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size].to(dev)
            step = torch.sign(_input_grad(model, xb, _batch_labels(model, yy, xb, s))) if any(values) else None
            with torch.no_grad():
                for e in values:
                    parts[e].append(model.score(xb - e * step if e > 0 else xb).detach().cpu())
    return {e: torch.cat(v) for e, v in parts.items()}


def auroc_vs_eps(model, x_test: torch.Tensor, y_test, eps_values, *, label=0, batch_size: int = 256,
                 progress: bool = False) -> pd.DataFrame:
    """AUROC of ``model`` on ``(x_test, y_test)`` after gradient input perturbation with each ``ε`` (§3.3).

    ``label`` is the perturbation's label convention (``0`` or ``"predicted"``, see
    :mod:`calad_lib.perturbation`); the test labels ``y_test`` are never used to perturb. One gradient per
    input serves every ε (:func:`perturbed_scores`).

    Detection models only; returns a DataFrame with columns ``eps``, ``auroc`` and ``kappa``
    (relative to the unperturbed AUROC, which is always computed).
    """
    if model.pixelwise:
        raise ValueError(f"{model.name} is pixel-wise; use evaluate(..., masks=...) for pixel AUROC and AUPRO")
    y = _test_labels(y_test, len(x_test))
    values = sorted({float(e) for e in eps_values} | {0.0})
    if values[0] < 0:
        raise ValueError(f"eps values must be >= 0, got {values[0]}")
    scores = perturbed_scores(model, x_test, values, y=label, batch_size=batch_size)
    aucs = [M.auroc(y, scores[e]) for e in values]
    return pd.DataFrame({"eps": values, "auroc": aucs, "kappa": M.kappa(np.array(aucs), aucs[0])})
