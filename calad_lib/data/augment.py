"""Batched image augmentation on the device (thesis §4.2.1).

The thesis augments normal and outlier-exposure images with colour jitter, a little
Gaussian noise and a flip about the vertical axis (a horizontal flip; off for the
MVTec AD classes listed in :data:`calad_lib.data.protocols.NO_HFLIP`). :class:`Augment`
does all of it on a whole batch with tensor operations, where the peer repositories
run PIL transforms image by image in ``DataLoader`` workers.

Colour jitter follows ``torchvision.transforms.ColorJitter(brightness=j, contrast=j,
saturation=j)`` (each factor uniform in ``[1 - j, 1 + j]``, the same blend formulas,
clamped after each step) but applies the three in a fixed order rather than a random one.
"""
from __future__ import annotations

import torch

from .errors import DataError

__all__ = ["Augment", "grayscale", "random_crop"]

_LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601-2, as torchvision's rgb_to_grayscale


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma ``(N, 1, H, W)`` of RGB images ``(N, 3, H, W)`` (single-channel images pass through)."""
    if x.shape[-3] == 1:
        return x
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


def random_crop(x: torch.Tensor, size: int, offsets: torch.Tensor) -> torch.Tensor:
    """Crop ``size``×``size`` windows from each image at ``offsets`` (``(N, 2)`` top, left) in one gather."""
    n = x.shape[0]
    ar = torch.arange(size, device=x.device)
    rows = (offsets[:, 0:1].to(x.device) + ar)[:, :, None]  # (N, size, 1)
    cols = (offsets[:, 1:2].to(x.device) + ar)[:, None, :]  # (N, 1, size)
    out = x.permute(0, 2, 3, 1)[torch.arange(n, device=x.device)[:, None, None], rows, cols]
    return out.permute(0, 3, 1, 2).contiguous()


class Augment:
    """Colour jitter, Gaussian noise and horizontal flips for a batch ``(N, C, H, W)`` in [0, 1].

    Parameters
    ----------
    jitter : float in [0, 1)
        Brightness, contrast and saturation factors are drawn from ``U[1 - jitter, 1 + jitter]``.
    noise_std : float >= 0
        Standard deviation of the added Gaussian noise.
    hflip : bool
        Flip each image left-right with probability 1/2.
    crop : int or None
        Random ``crop``×``crop`` window per image (MVTec's 292 → 256 crop, §4.2.1).

    Calling ``aug(x, generator=g)`` returns a new batch on ``x``'s device, clamped to
    [0, 1], identical for identically seeded generators (random numbers are drawn on the
    generator's device, then moved).
    """

    def __init__(self, jitter: float = 0.1, noise_std: float = 0.01, hflip: bool = True, crop: int | None = None):
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0.0 <= jitter < 1.0:
            raise DataError(f"jitter must lie in [0, 1), got {jitter!r}")
        if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or noise_std < 0:
            raise DataError(f"noise_std must be a number >= 0, got {noise_std!r}")
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 1):
            raise DataError(f"crop must be a positive integer or None, got {crop!r}")
        self.jitter, self.noise_std, self.hflip, self.crop = float(jitter), float(noise_std), bool(hflip), crop

    def __repr__(self) -> str:
        return f"Augment(jitter={self.jitter}, noise_std={self.noise_std}, hflip={self.hflip}, crop={self.crop})"

    def sample(self, shape: torch.Size | tuple, generator: torch.Generator | None = None) -> dict:
        """Draw the random parameters for a batch of ``shape`` ``(N, C, H, W)``."""
        n, c, h, w = shape
        dev = generator.device if generator is not None else torch.device("cpu")
        factors = 1.0 + self.jitter * (2.0 * torch.rand(n, 3, generator=generator, device=dev) - 1.0)
        flip = torch.rand(n, generator=generator, device=dev) < 0.5 if self.hflip else None
        offsets = None
        if self.crop is not None:
            if self.crop > min(h, w):
                raise DataError(f"crop {self.crop} is larger than the images ({h}×{w}); resize them first")
            hi = torch.tensor([h - self.crop + 1, w - self.crop + 1], device=dev)
            offsets = (torch.rand(n, 2, generator=generator, device=dev) * hi).long().clamp_max_(hi - 1)
        oh, ow = (self.crop, self.crop) if self.crop is not None else (h, w)
        noise = (torch.randn(n, c, oh, ow, generator=generator, device=dev) * self.noise_std
                 if self.noise_std > 0 else None)
        return {"factors": factors, "flip": flip, "offsets": offsets, "noise": noise}

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """Augment ``x`` with parameters from :meth:`sample` (deterministic; in place on a fresh copy)."""
        dev = x.device
        if params["offsets"] is not None:
            x = random_crop(x.to(torch.float32), self.crop, params["offsets"])
        if self.jitter > 0:
            f = params["factors"].to(dev)
            b, c, s = (f[:, i].view(-1, 1, 1, 1) for i in range(3))
            x = x.to(torch.float32).mul(b).clamp_(0, 1)                 # brightness (a new tensor: x is untouched)
            mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
            x.mul_(c).add_((1 - c) * mean).clamp_(0, 1)                  # contrast
            if x.shape[1] == 3:
                gray = (1 - s) * grayscale(x)                            # of the image before the blend
                x.mul_(s).add_(gray).clamp_(0, 1)                        # saturation
        elif params["offsets"] is None:
            x = x.to(torch.float32).clone()
        if params["flip"] is not None:                                   # one gather: columns reversed where flipped
            w = x.shape[-1]
            cols = torch.arange(w, device=dev)
            cols = torch.where(params["flip"].to(dev).view(-1, 1), w - 1 - cols, cols)
            x = x.gather(-1, cols.view(-1, 1, 1, w).expand_as(x))
        if params["noise"] is not None:
            x.add_(params["noise"].to(dev))
        return x.clamp_(0, 1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4:
            raise DataError(f"Augment expects a batch (N, C, H, W), got shape {tuple(x.shape)}")
        return self.apply(x, self.sample(x.shape, generator))
