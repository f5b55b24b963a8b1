"""z-scores with training statistics (thesis §4.2.1–§4.2.2).

"In all cases data was normalized to z-scores of the standard normal distribution using
the mean and standard deviation of the training split or full training data" and test
data "using the training data mean and standard deviation". :class:`ZScore` learns the
per-channel mean and standard deviation on ``fit`` and reuses them in ``transform``.
Models hold one inside (preprocessing lives inside models, see ``detector.py``).
"""
from __future__ import annotations

import torch

from .augment import grayscale
from .errors import DataError

__all__ = ["ZScore", "grayscale"]


class ZScore:
    """Per-channel standardisation ``(x - mean) / std`` with statistics from ``fit``."""

    def __init__(self, eps: float = 1e-6):
        self.eps = float(eps)
        self.mean_: torch.Tensor | None = None
        self.std_: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> "ZScore":
        """Learn per-channel mean and std from images ``(N, C, H, W)``."""
        if x.ndim != 4 or x.shape[0] < 1:
            raise DataError(f"ZScore.fit expects a non-empty batch (N, C, H, W), got shape {tuple(x.shape)}")
        x = x.detach().to(torch.float64)
        self.mean_ = x.mean(dim=(0, 2, 3)).float()
        self.std_ = x.std(dim=(0, 2, 3), unbiased=False).clamp_min(self.eps).float()
        return self

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean_ is None:
            raise DataError("ZScore is not fitted; call fit(train_images) first")
        if x.shape[-3] != self.mean_.numel():
            raise DataError(f"ZScore was fitted on {self.mean_.numel()} channel(s), got {x.shape[-3]}")
        shape = (-1, 1, 1)
        return self.mean_.to(x.device, x.dtype).view(shape), self.std_.to(x.device, x.dtype).view(shape)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(z)
        return z * std + mean

    def fit_transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.fit(x).transform(x)

    def state_dict(self) -> dict:
        return {"mean": self.mean_, "std": self.std_, "eps": self.eps}

    def load_state_dict(self, state: dict) -> "ZScore":
        self.mean_, self.std_, self.eps = state["mean"], state["std"], float(state.get("eps", self.eps))
        return self

    def __repr__(self) -> str:
        if self.mean_ is None:
            return "ZScore(unfitted)"
        return f"ZScore(mean={[round(v, 4) for v in self.mean_.tolist()]}, std={[round(v, 4) for v in self.std_.tolist()]})"
