"""Convolutional autoencoders with a 100-d bottleneck and the U-Nets built from them (thesis §4.2.1).

An encoder is a list of layers: ``Conv(out, k, stride, pad)`` (followed by batch norm and
leaky ReLU), ``Pool()`` (2×2 max-pooling) and a final ``Latent(dim, k)`` convolution to
the bottleneck. The decoder is built **by reflection**: the layers in reverse order,
each convolution replaced by a transposed convolution with the same kernel, stride and
padding (output padding chosen so every size is restored exactly), each pooling by a
nearest-neighbour upsampling to the size before it. The last decoder layer has no
batch norm or activation (its output is in the encoder's input space: z-scores).

* ``ae28`` (Fashion-MNIST): the LeNet convolutions of [35] (16, 32 channels, 5×5, two
  poolings → 32×7×7) and a 7×7 convolution to 100 latent features.
* ``ae32`` (CIFAR-10): the three LeNet convolutions (32, 64, 128) with the last pooling
  dropped (128×8×8), a 3×3 convolution to 64×8×8 and an 8×8 one to 100 features — the
  "two appended convolutional layers" of §4.2.1.
* ``ae_bergmann`` (MVTec AD / MPDD objects, 256×256): the SSIM autoencoder of Bergmann et
  al. [4, 5] (4×4 stride-2 and 3×3 convolutions down to 8×8, then 8×8 to 100), with one
  more stride-2 layer per doubling of the input beyond 128 (fewer below).

:class:`UNet` uses the same encoder and reflected decoder and concatenates each encoder
convolution's output to the input of its mirror (skip connections, Ronneberger et al.),
ending in one output channel: a per-pixel logit.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["Conv", "Pool", "Latent", "encoder_spec", "ConvAutoencoder", "UNet", "AE_SPECS"]


class Conv(NamedTuple):
    out: int
    k: int
    stride: int = 1
    pad: int = 0


class Pool(NamedTuple):
    k: int = 2


class Latent(NamedTuple):
    dim: int
    k: int


def _lenet28(size, latent):
    return [Conv(16, 5, 1, 2), Pool(), Conv(32, 5, 1, 2), Pool(), Latent(latent, size // 4)]


def _lenet32(size, latent):
    return [Conv(32, 5, 1, 2), Pool(), Conv(64, 5, 1, 2), Pool(), Conv(128, 5, 1, 2), Conv(64, 3, 1, 1),
            Latent(latent, size // 4)]


def _bergmann(size, latent):
    n = math.log2(size / 8)
    if size < 32 or n != int(n):
        raise ValueError(f"ae_bergmann needs a square input of 8·2^k ≥ 32 pixels, got {size}")
    down = lambda c: Conv(c, 4, 2, 1)  # noqa: E731
    same = lambda c: Conv(c, 3, 1, 1)  # noqa: E731
    # Bergmann's 128×128 layout has four stride-2 layers; add or drop leading ones (32 channels)
    core = [down(32)] * (int(n) - 2) + [same(32), down(64), same(64), down(128), same(64), same(32)]
    return core + [Latent(latent, 8)]


AE_SPECS = {"ae28": _lenet28, "ae32": _lenet32, "ae_bergmann": _bergmann}


def encoder_spec(name: str, size: int, latent: int = 100) -> list:
    """The encoder layer list of architecture ``name`` for ``size``×``size`` inputs."""
    if name not in AE_SPECS:
        raise ValueError(f"unknown autoencoder {name!r}; choose one of {sorted(AE_SPECS)}")
    return AE_SPECS[name](size, latent)


def _block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels, eps=1e-4), nn.LeakyReLU())


class _Reflected(nn.Module):
    """Encoder from a layer list and its decoder by reflection (optionally with U-Net skips)."""

    def __init__(self, in_shape, spec, out_channels: int, skips: bool):
        super().__init__()
        c, h, w = in_shape
        self.spec, self.skips = list(spec), skips
        if not isinstance(self.spec[-1], Latent):
            raise ValueError("an autoencoder spec must end with a Latent layer")
        enc, dec, sizes, chans = [], [], [], []
        for layer in self.spec:                     # encoder; remember each layer's input size
            sizes.append((h, w))
            chans.append(c)
            if isinstance(layer, Pool):
                enc.append(nn.MaxPool2d(layer.k, layer.k))
                h, w = h // layer.k, w // layer.k
            elif isinstance(layer, Conv):
                enc.append(_block(nn.Conv2d(c, layer.out, layer.k, layer.stride, layer.pad), layer.out))
                h = (h + 2 * layer.pad - layer.k) // layer.stride + 1
                w = (w + 2 * layer.pad - layer.k) // layer.stride + 1
                c = layer.out
            else:
                enc.append(nn.Conv2d(c, layer.dim, layer.k))
                h, w, c = h - layer.k + 1, w - layer.k + 1, layer.dim
            if h < 1 or w < 1:
                raise ValueError(f"input {tuple(in_shape)} is too small for this autoencoder")
        self.latent_shape = (c, h, w)
        self.sizes = sizes
        for i in reversed(range(len(self.spec))):    # decoder by reflection
            layer, (th, tw), tc = self.spec[i], sizes[i], chans[i]
            last = i == 0
            if isinstance(layer, Pool):
                dec.append(nn.Identity())
                continue
            k, s, p = (layer.k, layer.stride, layer.pad) if isinstance(layer, Conv) else (layer.k, 1, 0)
            cin = layer.out if isinstance(layer, Conv) else layer.dim
            if isinstance(layer, Conv) and skips:
                cin *= 2
            hin, win = self._out_size(i)
            op = (th - ((hin - 1) * s - 2 * p + k), tw - ((win - 1) * s - 2 * p + k))
            if not all(0 <= o < max(s, 1) for o in op):
                raise ValueError(f"cannot reflect layer {layer} of the spec for input {tuple(in_shape)}")
            cout = out_channels if last else tc
            conv = nn.ConvTranspose2d(cin, cout, k, s, p, output_padding=op)
            dec.append(conv if last else _block(conv, cout))
        self.encoder, self.decoder = nn.ModuleList(enc), nn.ModuleList(dec)

    def _out_size(self, i: int) -> tuple[int, int]:
        return self.sizes[i + 1] if i + 1 < len(self.sizes) else self.latent_shape[1:]

    def encode_all(self, x):
        feats = []
        for layer in self.encoder:
            x = layer(x)
            feats.append(x)
        return feats

    def decode(self, code, feats=None):
        x = code
        for j, layer in enumerate(self.decoder):
            i = len(self.spec) - 1 - j
            spec = self.spec[i]
            if isinstance(spec, Pool):
                x = F.interpolate(x, size=self.sizes[i], mode="nearest")
                continue
            if isinstance(spec, Conv) and self.skips:
                x = torch.cat([x, feats[i]], dim=1)
            x = layer(x)
        return x


class ConvAutoencoder(_Reflected):
    """Autoencoder ``x → code (N, latent) → reconstruction (N, C, H, W)`` (linear output)."""

    def __init__(self, in_shape, spec):
        super().__init__(in_shape, spec, out_channels=in_shape[0], skips=False)
        self.latent_dim = math.prod(self.latent_shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck, flattened ``(N, latent)`` (the calibration-head features, §3.2.3)."""
        return self.encode_all(x)[-1].flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode_all(x)[-1])


class UNet(_Reflected):
    """U-Net from the autoencoder's layers: a per-pixel logit map ``(N, H, W)``."""

    def __init__(self, in_shape, spec):
        super().__init__(in_shape, spec, out_channels=1, skips=True)
        self.latent_dim = math.prod(self.latent_shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_all(x)[-1].flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encode_all(x)
        return self.decode(feats[-1], feats).squeeze(1)
