"""The fully convolutional FCDD network and its Gaussian receptive-field upsampling (thesis §4.1.3).

``fcdd_vgg11`` is the network of Liznerski et al. [34]: VGG11 with batch norm cut after its
eighth layer group (``features[:21]`` in torchvision: 64, M, 128, M, 256, 256, M, 512, 512;
224×224 → 512×28×28) and a 1×1 convolution to one channel. [34] starts from ImageNet
weights; here it is trained from scratch, or from a *local* torchvision ``vgg11_bn``
state-dict file given as ``weights`` (nothing is ever downloaded). ``fcdd_small``
(32, M, 64, M, 128) keeps the same design usable on 28×28–64×64 images on a CPU.

At test time the low-resolution map ``A`` is upsampled to the input's size by a
transposed convolution with a fixed Gaussian kernel whose size and stride are the
receptive field ``r`` and jump ``j`` of an output pixel, shifted by the receptive
centre ``s`` (the construction of [34]). The kernel has peak 1 (as in [34]); its standard
deviation is 14 for ``fcdd_vgg11`` (the thesis' value) and [34]'s size heuristic
otherwise, unless ``gauss_std`` is given.
"""
from __future__ import annotations

import math
import os

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["FCDDNet", "FCDD_CFGS", "receptive_field", "gaussian_kernel"]

FCDD_CFGS = {
    "fcdd_vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512],
    "fcdd_small": [32, "M", 64, "M", 128],
}


def receptive_field(layers) -> tuple[int, int, float]:
    """``(r, j, s)``: receptive field size, jump and centre of the first output pixel of ``layers``.

    Pixel centres of the input are at integer coordinates 0, 1, ...; output pixel ``i``
    sees the window of size ``r`` centred at ``s + i·j``.
    """
    r, j, s = 1, 1, 0.0
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, st, p = (m.kernel_size, m.stride, m.padding)
            k, st, p = (v[0] if isinstance(v, tuple) else v for v in (k, st, p))
            r += (k - 1) * j
            s += ((k - 1) / 2 - p) * j
            j *= st
    return r, j, s


def gaussian_kernel(size: int, std: float) -> torch.Tensor:
    """A ``size``×``size`` Gaussian with peak value 1 (even sizes: centre between two taps)."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (t / std) ** 2)
    return torch.outer(g, g).float()


def _default_std(r: int) -> float:
    """[34]'s heuristic for the Gaussian's standard deviation from the kernel size."""
    return math.log10(0.45 * r + 1) + 0.25 if r < 20 else 10.0


class FCDDNet(nn.Module):
    """VGG-style fully convolutional network ``x (N, C, H, W) → φ(x) (N, h, w)`` plus :meth:`upsample`."""

    def __init__(self, in_shape: tuple[int, int, int], cfg: str = "fcdd_vgg11", gauss_std: float | None = None,
                 weights: str | os.PathLike | None = None):
        super().__init__()
        if cfg not in FCDD_CFGS:
            raise ValueError(f"unknown FCDD network {cfg!r}; choose one of {sorted(FCDD_CFGS)}")
        c = in_shape[0]
        layers: list[nn.Module] = []
        for v in FCDD_CFGS[cfg]:           # the module layout of torchvision's VGG `features`
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.conv_final = nn.Conv2d(c, 1, 1)
        self.in_size = tuple(in_shape[1:])
        self.r, self.j, self.s = receptive_field(layers)
        if gauss_std is None:
            gauss_std = 14.0 if cfg == "fcdd_vgg11" else _default_std(self.r)
        if gauss_std <= 0:
            raise ValueError(f"gauss_std must be > 0, got {gauss_std}")
        self.gauss_std = float(gauss_std)
        self.register_buffer("kernel", gaussian_kernel(self.r, self.gauss_std)[None, None], persistent=False)
        if weights is not None:
            self._load_local(weights)

    def _load_local(self, path) -> None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"FCDD weights file {path!r} does not exist; give a local torchvision "
                                    f"vgg11_bn state dict (nothing is downloaded) or weights=None")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        ours = self.features.state_dict()
        picked = {}
        for key in ours:
            for cand in (f"features.{key}", key):
                if cand in state:
                    picked[key] = state[cand]
                    break
        if set(picked) != set(ours) or any(picked[k].shape != ours[k].shape for k in ours):
            raise ValueError(f"FCDD weights file {os.path.basename(path)} does not hold a matching VGG11-BN "
                             f"'features' state dict; use torchvision's vgg11_bn weights")
        self.features.load_state_dict(picked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_final(self.features(x)).squeeze(1)

    def upsample(self, a: torch.Tensor) -> torch.Tensor:
        """Upsample a map ``(N, h, w)`` to the input's size ``(N, H, W)`` with the fixed Gaussian."""
        out = F.conv_transpose2d(a.unsqueeze(1), self.kernel.to(a.dtype), stride=self.j)
        off = int(math.floor((self.r - 1) / 2 - self.s))     # image pixel p ↔ output index p + off
        (h, w), (oh, ow) = self.in_size, out.shape[-2:]
        out = F.pad(out, (-off, w + off - ow, -off, h + off - oh))
        return out.squeeze(1)
