"""Random spectral images and uniform noise: the synthetic anomalies of thesis §3.4.

Spectral images follow the ``1/f^α`` power spectra of natural images (Baradad et al.,
2021, "Learning to see by looking at noise", §3): the Fourier magnitude is

    |F(f_x, f_y)| = 1 / (|f_x|^a + |f_y|^b),   a, b ~ U[0.5, 3.5] per image,

with frequencies in cycles per pixel (``torch.fft.fftfreq``), and the phase is that of
an image whose pixels are uniform in ``[0, 255]`` (independently per channel, "RGB").
The inverse FFT gives a real image because both factors are Hermitian. The zero
frequency (the mean, where the formula is infinite) gets magnitude 0, as in Baradad
et al.'s code, so each image starts with mean 0; it is then **rescaled per image to
the full range [0, 1]** by ``(x - min) / (max - min)`` over all its pixels and channels,
which fixes the mean and contrast the DC term and the overall gain would have set.

Uniform noise, the classical synthetic anomaly (§3.4, [46]), is i.i.d. ``U[0, 1]`` per pixel.

Both are batched, run on the device, and are seeded: random numbers are drawn on the
CPU from generators seeded by ``seed`` in a fixed order, so a seed gives the same images
on every device, and the first ``k`` of ``n`` images are those of ``n = k``.
"""
from __future__ import annotations

import torch

from ..device import get_device
from ..progress import bar as progress_bar
from ..profile import timed

__all__ = ["spectral", "uniform_noise", "spectral_magnitude", "SLOPE_RANGE"]

#: the range of the exponents a, b (thesis §3.4)
SLOPE_RANGE = (0.5, 3.5)
_CHUNK = 512  # images per FFT batch (fixed, so results never depend on the device)


def _stream(seed: int, k: int) -> int:
    """A second seed derived from ``seed`` (an independent random stream)."""
    return (int(seed) * 6364136223846793005 + 1442695040888963407 * (k + 1)) % (2**63)


def _shape(n: int, channels: int, size) -> tuple[int, int, int, int]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer (1 grayscale, 3 colour), got {channels!r}")
    h, w = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 2 for v in (h, w)):
        raise ValueError(f"size must be an integer >= 2 or a pair (H, W) of them, got {size!r}")
    return n, channels, h, w


def spectral_magnitude(a: torch.Tensor, b: torch.Tensor, size: tuple[int, int], *, onesided: bool = True) -> torch.Tensor:
    """``1/(|f_x|^a + |f_y|^b)`` on the FFT grid, shape ``(len(a), H, W//2+1)`` (or ``W`` if not one-sided); DC = 0."""
    h, w = size
    dev = a.device
    fy = torch.fft.fftfreq(h, device=dev).abs().view(1, h, 1)
    fx = (torch.fft.rfftfreq(w, device=dev) if onesided else torch.fft.fftfreq(w, device=dev).abs()).view(1, 1, -1)
    denom = fx ** a.view(-1, 1, 1) + fy ** b.view(-1, 1, 1)
    denom[:, 0, 0] = 1.0
    mag = 1.0 / denom
    mag[:, 0, 0] = 0.0
    return mag


@timed("data")
def spectral(n: int, channels: int = 1, size: int | tuple[int, int] = 28, seed: int = 0,
             device: str | torch.device | None = None, *, slopes: tuple[float, float] = SLOPE_RANGE,
             return_slopes: bool = False, progress: bool = False):
    """``n`` random spectral images ``float32 (n, channels, H, W)`` in [0, 1] (thesis §3.4).

    ``size`` is an int or ``(H, W)``; ``slopes`` the range of the exponents ``a, b``.
    With ``return_slopes=True`` also returns the ``(n, 2)`` tensor of ``(a, b)``.
    """
    n, c, h, w = _shape(n, channels, size)
    lo, hi = float(slopes[0]), float(slopes[1])
    if not 0 <= lo <= hi:
        raise ValueError(f"slopes must be a range 0 <= lo <= hi, got {slopes!r}")
    dev = get_device(device)
    g_ab, g = torch.Generator().manual_seed(int(seed)), torch.Generator().manual_seed(_stream(seed, 1))
    ab = lo + (hi - lo) * torch.rand(n, 2, generator=g_ab, dtype=torch.float64)
    out = torch.empty(n, c, h, w, dtype=torch.float32, device=dev)
    for start in progress_bar(range(0, n, _CHUNK), desc="spectral images", disable=not progress, leave=False):
        stop = min(start + _CHUNK, n)
        u = 255.0 * torch.rand(stop - start, c, h, w, generator=g)
        phase = torch.angle(torch.fft.rfft2(u.to(dev)))
        a, b = ab[start:stop, 0].float().to(dev), ab[start:stop, 1].float().to(dev)
        mag = spectral_magnitude(a, b, (h, w)).unsqueeze(1)
        x = torch.fft.irfft2(torch.polar(mag.expand_as(phase).contiguous(), phase), s=(h, w))
        flat = x.reshape(x.shape[0], -1)
        lo_, hi_ = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
        out[start:stop] = ((flat - lo_) / (hi_ - lo_).clamp_min(1e-12)).view_as(x)
    return (out, ab.float()) if return_slopes else out


def uniform_noise(n: int, channels: int = 1, size: int | tuple[int, int] = 28, seed: int = 0,
                  device: str | torch.device | None = None) -> torch.Tensor:
    """``n`` images of i.i.d. ``U[0, 1]`` pixels, ``float32 (n, channels, H, W)`` (thesis §3.4)."""
    n, c, h, w = _shape(n, channels, size)
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand(n, c, h, w, generator=g).to(get_device(device))
