"""The row of one model in a detection experiment (thesis §4.2.2, §4.3.1): AUROC unperturbed and perturbed,
κ, ECE/MCE on held-out synthetic anomalies, conformal p-values, and label-free predictors of κ."""
from __future__ import annotations

import numpy as np
import torch

from .. import metrics as M
from ..perturbation import DEFAULT_EPS, perturbation_effect, perturbed_outputs
from ..scoring import SharedOutputs

__all__ = ["evaluate_model", "predictors", "SOURCES"]

#: the synthetic anomalies calibrators are fitted with: outlier exposure and spectral images (§3.4)
SOURCES = ("oe", "spectral")


def _calibration_error(eta_normal: torch.Tensor, eta_anom: torch.Tensor, n_bins: int) -> tuple[float, float]:
    m = min(len(eta_normal), len(eta_anom))
    eta = torch.cat([eta_normal[:m], eta_anom[:m]]).numpy()
    y = np.r_[np.zeros(m), np.ones(m)]
    return M.ece(y, eta, n_bins), M.mce(y, eta, n_bins)


def evaluate_model(method: str, model, scores: SharedOutputs, y_test: torch.Tensor, x_test: torch.Tensor, *,
                   eps: float, alpha: float, n_bins: int) -> dict:
    """The metrics of one model: AUROC (unperturbed; perturbed with label 0 and step ``eps``), κ, ECE/MCE of each
    held-out source and of the model's own (``ece``, ``mce``), conformal false alarms and Benjamini–Hochberg."""
    y = y_test.numpy()
    _, eta0, s0 = scores.outputs(model, "test")
    row = {"auroc": M.auroc(y, s0)}
    if eps > 0:
        row["auroc_perturbed"] = M.auroc(y, perturbed_outputs(model, x_test, eps=eps, y=0).score)
    else:
        row["auroc_perturbed"] = row["auroc"]
    row["kappa"] = M.kappa(row["auroc_perturbed"], row["auroc"])
    normal_eta = eta0[torch.as_tensor(y == 0)]
    for src in SOURCES:
        eta_a = scores.outputs(model, f"heldout_{src}").eta
        row[f"ece_{src}"], row[f"mce_{src}"] = _calibration_error(normal_eta, eta_a, n_bins)
    src = "spectral" if method.endswith("_spectral") else "oe"
    row.update(ece=row[f"ece_{src}"], mce=row[f"mce_{src}"], ece_source=src)
    # conformal anomaly detection: calibration split scores as the reference sample
    s_cal = scores.outputs(model, "calib").score
    p = M.conformal_pvalues(s_cal, s0)
    reject = M.benjamini_hochberg(p, alpha)
    normal = y == 0
    row.update(conformal_fpr=float(np.mean(p[normal] <= alpha)),
               bh_false_alarm=float(np.mean(reject[normal])), bh_power=float(np.mean(reject[~normal])),
               bh_fdr=float(np.sum(reject & normal) / max(int(reject.sum()), 1)), bh_rejections=int(reject.sum()))
    return row


def predictors(model, normal: torch.Tensor, anomalous: torch.Tensor, eps: float) -> dict:
    """Candidate predictors of the perturbation gain κ, measured without any test input (thesis' open question).

    On normal calibration images and held-out synthetic anomalies (half OE, half spectral), with the
    label y = 0 of the test-time step: the log-ratio of median input-gradient ℓ1 norms (anomalous over
    normal; to first order the step lowers a loss by ε‖∇ₓℓ‖₁), the mean loss drop of each group
    under the step, and AUROC and κ of the *proxy* task normal vs synthetic, unperturbed and perturbed.
    """
    eps = eps if eps > 0 else DEFAULT_EPS
    e_n, e_a = perturbation_effect(model, normal, eps), perturbation_effect(model, anomalous, eps)
    g_n, g_a = e_n["grad_norm"], e_a["grad_norm"]
    y = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    a0 = M.auroc(y, torch.cat([e_n["score"], e_a["score"]]))
    ap = M.auroc(y, torch.cat([e_n["score_perturbed"], e_a["score_perturbed"]]))
    tiny = torch.finfo(torch.float32).tiny
    drop_n = float((e_n["loss"] - e_n["loss_perturbed"]).double().mean())
    drop_a = float((e_a["loss"] - e_a["loss_perturbed"]).double().mean())
    return {"pred_grad_log_ratio": float(torch.log((g_a.median() + tiny) / (g_n.median() + tiny))),
            "pred_loss_drop_normal": drop_n, "pred_loss_drop_anomalous": drop_a,
            "pred_loss_drop_gap": drop_a - drop_n,
            "pred_proxy_auroc": a0, "pred_proxy_auroc_perturbed": ap, "pred_proxy_kappa": M.kappa(ap, a0)}
