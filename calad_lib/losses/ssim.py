"""The structural similarity map S(P, Q) of thesis §4.1.4, batched in torch.

For patches ``p``, ``q`` at the same location (Gaussian-weighted, 11×11, σ = 1.5)::

    SSIM(p, q) = (2 μp μq + c1)(2 σpq + c2) / ((μp² + μq² + c1)(σp² + σq² + c2)),
    c1 = (k1 L)², c2 = (k2 L)², k1 = 0.01, k2 = 0.03, L = data range.

Variances and covariance are the population ones (``use_sample_covariance=False`` in
scikit-image). The thesis pads both images by 5 pixels with a constant (the training
mean) so S has the image's height and width; ``padding="symmetric"`` instead mirrors the
border like ``scipy.ndimage``'s ``reflect`` mode, which is what
``skimage.metrics.structural_similarity(..., gaussian_weights=True, full=True)`` uses, so
its whole map can be compared.

Multi-channel images give the channel mean of the per-channel maps (as scikit-image).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gaussian_window", "ssim_map", "ssim"]

K1, K2 = 0.01, 0.03


def gaussian_window(size: int = 11, sigma: float = 1.5, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """The normalised 1-D Gaussian window of ``size`` taps (as ``scipy.ndimage.gaussian_filter``)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"SSIM window size must be a positive odd integer, got {size}")
    if sigma <= 0:
        raise ValueError(f"SSIM window sigma must be > 0, got {sigma}")
    r = (size - 1) // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return (w / w.sum()).to(dtype=dtype, device=device)


def _symmetric_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    """Half-sample symmetric padding (``d c b a | a b c d | d c b a``) of the last two axes."""
    h, w = x.shape[-2:]

    def index(n: int) -> torch.Tensor:
        i = torch.arange(-r, n + r, device=x.device)
        period = 2 * n
        i = torch.remainder(i, period)
        return torch.where(i >= n, period - 1 - i, i)

    return x.index_select(-2, index(h)).index_select(-1, index(w))


def _pad(x: torch.Tensor, r: int, padding, pad_value) -> torch.Tensor:
    if padding == "constant":
        if pad_value is None:
            raise ValueError("ssim_map with padding='constant' needs pad_value (the training mean)")
        value = torch.as_tensor(pad_value, dtype=x.dtype, device=x.device)
        if value.numel() == 1:
            return F.pad(x, (r, r, r, r), mode="constant", value=float(value))
        value = value.reshape(1, -1, 1, 1)
        return F.pad(x - value, (r, r, r, r), mode="constant", value=0.0) + value
    if padding == "symmetric":
        return _symmetric_pad(x, r)
    if padding == "valid":
        return x
    raise ValueError(f"unknown SSIM padding {padding!r}; use 'constant', 'symmetric' or 'valid'")


def ssim_map(p: torch.Tensor, q: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
             sigma: float = 1.5, padding: str = "constant", pad_value=None) -> torch.Tensor:
    """Per-pixel SSIM of image batches ``p``, ``q`` ``(N, C, H, W)`` → ``(N, H, W)`` in [-1, 1].

    ``padding``: ``"constant"`` (with ``pad_value``, a scalar or per-channel values; the
    thesis' choice), ``"symmetric"`` (scikit-image's border) or ``"valid"`` (no padding,
    output ``(N, H - window + 1, W - window + 1)``). Differentiable in both arguments.
    """
    if p.shape != q.shape or p.ndim != 4:
        raise ValueError(f"ssim_map needs two batches of equal shape (N, C, H, W), got {tuple(p.shape)} "
                         f"and {tuple(q.shape)}")
    if data_range <= 0:
        raise ValueError(f"SSIM data_range must be > 0, got {data_range}")
    dtype = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
    p, q = p.to(dtype), q.to(dtype)
    n, c, h, w = p.shape
    r = (window - 1) // 2
    g = gaussian_window(window, sigma, dtype=dtype, device=p.device)
    p, q = _pad(p, r, padding, pad_value), _pad(q, r, padding, pad_value)
    # five maps (p, q, p², q², pq) per channel, filtered separably in one grouped conv pass
    stack = torch.cat([p, q, p * p, q * q, p * q], dim=1)          # (N, 5C, H', W')
    k = stack.shape[1]
    stack = F.conv2d(stack, g.view(1, 1, -1, 1).expand(k, 1, window, 1), groups=k)
    stack = F.conv2d(stack, g.view(1, 1, 1, -1).expand(k, 1, 1, window), groups=k)
    mp, mq, pp, qq, pq = stack.split(c, dim=1)
    vp, vq, cov = pp - mp * mp, qq - mq * mq, pq - mp * mq
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * mp * mq + c1) * (2 * cov + c2)) / ((mp * mp + mq * mq + c1) * (vp + vq + c2))
    return s.mean(dim=1)


def ssim(p: torch.Tensor, q: torch.Tensor, **kwargs) -> torch.Tensor:
    """Mean SSIM per image ``(N,)`` (the mean of :func:`ssim_map`)."""
    return ssim_map(p, q, **kwargs).flatten(1).mean(1)
