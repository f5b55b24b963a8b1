"""The calibration head of thesis §3.2.3: a fresh ``Linear(d, 1)`` on frozen features, trained with Adam."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import get_device
from ..progress import bar as progress_bar
from .base import Calibrator, check_finite, labels_like, to_tensor

__all__ = ["CalibrationHead"]


class CalibrationHead(Calibrator):
    """Calibration head (§3.2.3) on :meth:`~calad_lib.detector.AnomalyModel.head_features`.

    The three rules of §3.2.3 (decapitate an autoencoder at the bottleneck; connect a vector
    output to one node; reset the final layer of a scalar-output network) all reduce to "a new
    linear layer on ``head_features``", which each model defines accordingly. Training follows
    §4.2.1: Adam, learning rate ``lr`` (1e-4), no weight decay, batches of ``batch_size`` balanced
    between normal and anomalous examples, learning rate divided by 10 at ``milestones`` (default:
    half and three quarters of the epochs, as 100 and 150 of 200).
    """

    name = "head"
    reads = "head_features"

    def __init__(self, epochs: int = 200, lr: float = 1e-4, batch_size: int = 128, *,
                 milestones: tuple[int, ...] | None = None, seed: int = 0, device=None, progress: bool = False):
        if int(epochs) < 1:
            raise ValueError(f"epochs = {epochs} must be at least 1")
        if not lr > 0:
            raise ValueError(f"lr = {lr} must be positive")
        if int(batch_size) < 2:
            raise ValueError(f"batch_size = {batch_size} must be at least 2 (one normal and one anomalous example)")
        self.epochs, self.lr, self.batch_size = int(epochs), float(lr), int(batch_size)
        self.milestones = milestones
        self.seed, self.device, self.progress = seed, device, progress
        self.linear_: nn.Linear | None = None

    @property
    def module(self) -> nn.Module | None:
        """The fitted linear layer (a :class:`CalibratedModel` registers it, so ``.to(device)`` moves it)."""
        return self.linear_

    def _fit(self, features, y) -> None:
        """Train the head on ``features`` (shape ``(N, d)``) with labels ``y`` (shape ``(N,)``)."""
        X = to_tensor(features, dtype=torch.float32, device=torch.device("cpu"))
        if X.ndim != 2:
            raise ValueError(f"features must have shape (N, d); got {tuple(X.shape)}")
        check_finite(X, "features")
        yt = labels_like(X[:, 0], y, "features").to(torch.float32)
        dev = get_device(self.device)
        g = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            lin = nn.Linear(X.shape[1], 1)
        lin = lin.to(dev)
        X, yt = X.to(dev), yt.to(dev)
        idx0 = torch.nonzero(yt == 0).squeeze(1).cpu()
        idx1 = torch.nonzero(yt == 1).squeeze(1).cpu()
        half = self.batch_size // 2
        n_batches = math.ceil(max(len(idx0), len(idx1)) / half)
        milestones = self.milestones if self.milestones is not None else (self.epochs // 2, (3 * self.epochs) // 4)
        opt = torch.optim.Adam(lin.parameters(), lr=self.lr, fused=True)   # a third of the step time of a tiny layer
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[m for m in milestones if 0 < m], gamma=0.1)
        threads = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)  # a (128, d) x (d, 1) step is far too small to share between threads
        try:
            self.losses_ = self._epochs(lin, opt, sched, X, yt, idx0, idx1, half, n_batches, g, dev)
        finally:
            torch.set_num_threads(threads)
        self.linear_ = lin.eval().requires_grad_(False)

    def _epochs(self, lin, opt, sched, X, yt, idx0, idx1, half, n_batches, g, dev) -> list[float]:
        losses = []
        for _ in progress_bar(range(self.epochs), desc="calibration head", disable=not self.progress, leave=False):
            p0 = idx0[torch.randperm(len(idx0), generator=g)]
            p1 = idx1[torch.randperm(len(idx1), generator=g)]
            total = torch.zeros((), dtype=torch.float64, device=dev)   # a float64 sum, no sync per step
            for b in range(n_batches):
                sel = torch.cat([p0[(torch.arange(b * half, (b + 1) * half)) % len(p0)],
                                 p1[(torch.arange(b * half, (b + 1) * half)) % len(p1)]]).to(dev)
                logit = lin(X[sel]).squeeze(1)
                loss = F.binary_cross_entropy_with_logits(logit, yt[sel])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach()
            sched.step()
            losses.append(float(total) / n_batches)
        return losses

    def _transform(self, features):
        if isinstance(features, torch.Tensor):
            lin = self.linear_.to(features.device)
            return lin(features.to(lin.weight.dtype)).squeeze(-1)
        raise TypeError("CalibrationHead.transform takes a tensor or an array of features")

    def transform(self, features):
        """Head logits of ``features`` ``(N, d)`` (differentiable for tensors, arrays for arrays)."""
        self.check_fitted()
        if isinstance(features, torch.Tensor):
            return self._transform(features)
        with torch.no_grad():
            return self.linear_.cpu()(torch.as_tensor(np.asarray(features), dtype=torch.float32)).squeeze(-1).numpy()
