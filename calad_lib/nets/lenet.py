"""LeNet-style networks of Liznerski et al. [35] (thesis §4.2.1) and the scalar-output classifier.

Fashion-MNIST (``CNN28`` in [35]): two 5×5 convolutions (16, 32 channels, padding 2), each
followed by batch norm, leaky ReLU and 2×2 max-pooling; a fully connected layer to 64
units with batch norm and leaky ReLU; a linear layer to ``rep_dim = 32``.
CIFAR-10 (``CNN32``): three such convolutions (32, 64, 128 channels), a fully connected
layer to 512 units, ``rep_dim = 256``.

``bias=False`` removes every bias and makes batch norm non-affine: the network SVDD
needs against hypersphere collapse (§4.1.1). Weights are Xavier-normal initialised with
the leaky-ReLU gain, as in [35].
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["LeNet", "Classifier", "LENET_PRESETS"]

#: per-dataset widths: conv channels, hidden units, representation dimension ([35])
LENET_PRESETS = {
    "lenet28": {"channels": (16, 32), "hidden": 64, "rep_dim": 32},
    "lenet32": {"channels": (32, 64, 128), "hidden": 512, "rep_dim": 256},
}


class LeNet(nn.Module):
    """Conv blocks (5×5 conv → BN → leaky ReLU → 2×2 max-pool, pooled first) → fc → BN → leaky ReLU → fc to ``rep_dim``."""

    def __init__(self, in_shape: tuple[int, int, int], channels=(16, 32), hidden: int = 64,
                 rep_dim: int = 32, bias: bool = True):
        super().__init__()
        c, h, w = in_shape
        gain = nn.init.calculate_gain("leaky_relu")
        layers: list[nn.Module] = []
        for out in channels:
            conv = nn.Conv2d(c, out, 5, padding=2, bias=bias)
            nn.init.xavier_normal_(conv.weight, gain=gain)
            # pooling before the leaky ReLU: the same function (an increasing map commutes with max), on a quarter
            # of the values
            layers += [conv, nn.BatchNorm2d(out, eps=1e-4, affine=bias), nn.MaxPool2d(2, 2), nn.LeakyReLU()]
            c, h, w = out, h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"LeNet with {len(channels)} poolings needs larger inputs than {in_shape}")
        self.conv = nn.Sequential(*layers)
        self.fc1 = nn.Linear(c * h * w, hidden, bias=bias)
        nn.init.xavier_normal_(self.fc1.weight, gain=gain)
        self.bn1 = nn.BatchNorm1d(hidden, eps=1e-4, affine=bias)
        self.fc2 = nn.Linear(hidden, rep_dim, bias=bias)
        nn.init.xavier_normal_(self.fc2.weight)
        self.rep_dim = rep_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).flatten(1)
        return self.fc2(F.leaky_relu(self.bn1(self.fc1(x))))


class Classifier(nn.Module):
    """A vector network followed by one linear unit: the scalar output of the logistic loss.

    :meth:`features` is the layer before the final fully connected one (§3.2.3).
    """

    def __init__(self, backbone: nn.Module, rep_dim: int):
        super().__init__()
        self.backbone = backbone
        self.linear = nn.Linear(rep_dim, 1)
        self.rep_dim = rep_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.backbone(x)).squeeze(-1)
