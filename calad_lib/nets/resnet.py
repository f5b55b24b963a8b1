"""ResNet-18 network for MVTec AD / MPDD detection (thesis §4.2.1), never pretrained here.

torchvision's ``resnet18(weights=None)`` with its classifier replaced by a linear layer to
``rep_dim`` (256, as the ResNet-18-based network of [35]). ``bias=False`` (SVDD) uses
non-affine batch norm and a bias-free output layer (the convolutions have no bias).
Inputs with other than three channels get a matching first convolution.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResNet18"]


class ResNet18(nn.Module):
    """ResNet-18 trunk → global average pool → linear to ``rep_dim``."""

    def __init__(self, in_shape: tuple[int, int, int], rep_dim: int = 256, bias: bool = True):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if not bias:
            _strip_affine(net)
        if in_shape[0] != 3:
            net.conv1 = nn.Conv2d(in_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = nn.Linear(net.fc.in_features, rep_dim, bias=bias)
        self.net = net
        self.rep_dim = rep_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _strip_affine(module: nn.Module) -> None:
    """Replace every batch norm of ``module`` by a non-affine one (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.BatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum,
                                                 affine=False))
        else:
            _strip_affine(child)
