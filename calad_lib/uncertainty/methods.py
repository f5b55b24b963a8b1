"""The uncertainty methods of chapter 08 that the trainer does not build: energy, MC dropout, deep ensembles.

Every method is an :class:`~calad_lib.detector.AnomalyModel` whose ``η̂`` is read as the probability that
an input is anomalous, so ECE/MCE (thesis §2.4.3) and post-hoc calibration (§3.2) apply to all of them.
The energy model follows Liu et al. (2020, §3.2): normal inputs are pushed below ``m_in`` and anomalies
above ``m_out`` by squared hinges; there is no probability in the loss, so its ``η̂`` is a convention (the
logit ``E − (m_in + m_out)/2``) that only post-hoc calibration can make calibrated. MC dropout draws its
``T`` masks once from ``mask_seed`` and shares each across a batch, so ``η̂(x)`` is a deterministic function
of ``x`` (the average of ``T`` fixed thinned networks). ``spread`` (MC dropout, ensemble) is the standard
deviation of the members' ``σ(z)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..detector import AnomalyModel, Outputs
from ..losses import BaseModel, logistic_loss
from ..nets import LeNet

__all__ = ["EnergyModel", "MCDropoutModel", "Ensemble", "mean_prob_logit"]


def mean_prob_logit(z: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``σ⁻¹(mean_t σ(z_t))`` along ``dim``, in log space: ``logsumexp log σ(z) − logsumexp log σ(−z)``."""
    return torch.logsumexp(F.logsigmoid(z), dim) - torch.logsumexp(F.logsigmoid(-z), dim)


class EnergyModel(BaseModel):
    """Energy score of a vector network ``f`` (Liu et al., 2020): ``E(x) = −log Σ_j exp f_j(x)``.

    Loss (§3.2 of Liu et al., without the classification term, which a one-class task lacks):
    ``(1 − y)·max(0, E − m_in)² + y·max(0, m_out − E)²``. Score ``E``; logit ``E − (m_in + m_out)/2``.
    """

    name, supervised = "energy", True

    def __init__(self, net, in_shape, mean=None, std=None, m_in: float = -6.0, m_out: float = -2.0):
        super().__init__(net, in_shape, mean, std)
        if not m_in < m_out:
            raise ValueError(f"the energy margins need m_in < m_out, got m_in={m_in}, m_out={m_out}")
        self.m_in, self.m_out = float(m_in), float(m_out)

    def head_features(self, x):
        return self.net(self._z(x))

    def energy(self, x):
        return -torch.logsumexp(self.net(self._z(x)), dim=1)

    def outputs(self, x):
        e = self.energy(x)
        z = e - 0.5 * (self.m_in + self.m_out)
        return Outputs(z, torch.sigmoid(z), e)

    def loss(self, x, y):
        e = self.energy(x)
        y = torch.as_tensor(y, dtype=e.dtype, device=e.device)
        return (1 - y) * F.relu(e - self.m_in) ** 2 + y * F.relu(self.m_out - e) ** 2


class MCDropoutModel(BaseModel):
    """A LeNet classifier with dropout before each fully connected layer, logistic loss (eq. 2.15).

    Training mode: one stochastic pass (independent masks per input). Evaluation: ``T = passes``
    fixed masks (drawn from ``mask_seed``); the convolutional features are computed once and the
    fully connected layers ``T`` times. ``η̂`` is the predictive mean of ``σ(z_t)``, the logit its
    log-odds (:func:`mean_prob_logit`), the score that logit.
    """

    name, supervised = "mc_dropout", True

    def __init__(self, net: LeNet, in_shape, mean=None, std=None, p: float = 0.2, passes: int = 30,
                 mask_seed: int = 0):
        super().__init__(net, in_shape, mean, std)
        if not 0 < p < 1:
            raise ValueError(f"dropout probability p must lie in (0, 1), got {p}")
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
            raise ValueError(f"passes must be a positive integer, got {passes!r}")
        self.p, self.passes, self.mask_seed = float(p), int(passes), int(mask_seed)
        self.linear = nn.Linear(net.rep_dim, 1)
        g = torch.Generator().manual_seed(self.mask_seed)
        dims = (net.fc1.in_features, net.fc2.in_features, net.rep_dim)
        for i, d in enumerate(dims):
            keep = (torch.rand(self.passes, d, generator=g) >= self.p).float() / (1 - self.p)
            self.register_buffer(f"mask{i}", keep, persistent=False)

    def _head(self, h, masks):
        net = self.net
        h = net.fc1(h * masks[0])
        lead = h.shape[:-1]
        h = F.leaky_relu(net.bn1(h.reshape(-1, h.shape[-1])).reshape(*lead, -1))
        h = net.fc2(h * masks[1])
        return self.linear(h * masks[2]).squeeze(-1)

    def pass_logits(self, x) -> torch.Tensor:
        """Logits of the ``T`` thinned networks, ``(T, N)``."""
        h = self.net.conv(self._z(x)).flatten(1).unsqueeze(0)             # (1, N, d)
        return self._head(h, [m[:, None, :] for m in (self.mask0, self.mask1, self.mask2)])

    def _stochastic_logit(self, x):
        h = self.net.conv(self._z(x)).flatten(1)
        shapes = (h.shape[1], self.net.fc2.in_features, self.net.rep_dim)
        masks = [F.dropout(torch.ones(len(h), d, device=h.device), self.p, training=True) for d in shapes]
        return self._head(h, masks)

    def head_features(self, x):
        return self.net(self._z(x))

    def outputs(self, x):
        if self.training:
            z = self._stochastic_logit(x)
            return Outputs(z, torch.sigmoid(z), z)
        z = mean_prob_logit(self.pass_logits(x))
        return Outputs(z, torch.sigmoid(z), z)

    def spread(self, x) -> torch.Tensor:
        """Standard deviation of ``σ(z_t)`` over the ``T`` passes, ``(N,)``."""
        return torch.sigmoid(self.pass_logits(x)).std(0, unbiased=False)

    def loss(self, x, y):
        return logistic_loss(self.outputs(x).logit, y)


class Ensemble(AnomalyModel):
    """The average of ``M`` members' probability estimates; logit = its log-odds; loss = its logistic loss."""

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if len(members) < 1 or not all(isinstance(m, AnomalyModel) for m in members):
            raise ValueError("an ensemble needs at least one calad AnomalyModel member")
        self.members = nn.ModuleList(members)
        self.name = f"ensemble[{members[0].name}×{len(members)}]"

    def member_logits(self, x) -> torch.Tensor:
        """``(M, N)`` member logits."""
        return torch.stack([m.outputs(x).logit for m in self.members])

    def outputs(self, x):
        z = mean_prob_logit(self.member_logits(x))
        return Outputs(z, torch.sigmoid(z), z)

    def spread(self, x) -> torch.Tensor:
        """Standard deviation of the members' ``σ(z)``, ``(N,)``."""
        return torch.sigmoid(self.member_logits(x)).std(0, unbiased=False)

    def loss(self, x, y):
        return logistic_loss(self.outputs(x).logit, y)

    def head_features(self, x):
        return torch.cat([m.head_features(x) for m in self.members], dim=1)
