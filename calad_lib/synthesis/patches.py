"""Local synthetic anomalies: normal images with elliptic patches of anomalous images pasted in, and exact
masks (the training data that lets a location-adaptive calibrator see local anomalies, §3.4 made local)."""
from __future__ import annotations

import math

import torch

__all__ = ["paste_patches"]


def paste_patches(normal: torch.Tensor, source: torch.Tensor, n: int | None = None, *,
                  patches: tuple[int, int] = (1, 3), radius: tuple[float, float] = (0.04, 0.15),
                  region: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0), seed: int = 0,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal images with elliptic patches of ``source`` images pasted in, and their masks.

    Image ``i`` is ``normal[i % len(normal)]``; it receives ``k ~ U{patches}`` rotated ellipses with
    semi-axes ``U[radius]`` × the image side, centred uniformly in ``region = (top, bottom, left,
    right)`` (fractions of the height and width), all filled with the pixels (same positions) of one
    random ``source`` image. Returns ``(images (n, C, H, W), masks (n, H, W) float {0, 1})``; the mask is
    exactly the set of pasted pixels. Seeded (``seed`` or a CPU ``generator``); shapes are checked.
    """
    for what, t in (("normal", normal), ("source", source)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or len(t) == 0:
            raise ValueError(f"{what} must be a non-empty image tensor (N, C, H, W)")
    if tuple(source.shape[1:]) != tuple(normal.shape[1:]):
        raise ValueError(f"source images {tuple(source.shape[1:])} must have the shape of the normal images "
                         f"{tuple(normal.shape[1:])}; resize them or build them with the same size and channels")
    n = len(normal) if n is None else int(n)
    if n < 1:
        raise ValueError(f"n = {n} must be at least 1")
    k_lo, k_hi = (int(v) for v in patches)
    r_lo, r_hi = (float(v) for v in radius)
    top, bottom, left, right = (float(v) for v in region)
    if not 1 <= k_lo <= k_hi:
        raise ValueError(f"patches = {patches} must be a range 1 <= lo <= hi of patch counts")
    if not 0 < r_lo <= r_hi <= 1:
        raise ValueError(f"radius = {radius} must be a range 0 < lo <= hi <= 1 (fractions of the image side)")
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise ValueError(f"region = {region} must be (top, bottom, left, right) fractions with top < bottom and "
                         "left < right")
    g = generator if generator is not None else torch.Generator().manual_seed(int(seed))
    _, c, h, w = normal.shape
    k = torch.randint(k_lo, k_hi + 1, (n,), generator=g)
    cy = top + (bottom - top) * torch.rand(n, k_hi, generator=g)
    cx = left + (right - left) * torch.rand(n, k_hi, generator=g)
    ry = r_lo + (r_hi - r_lo) * torch.rand(n, k_hi, generator=g)
    rx = r_lo + (r_hi - r_lo) * torch.rand(n, k_hi, generator=g)
    th = math.pi * torch.rand(n, k_hi, generator=g)
    src = torch.randint(len(source), (n,), generator=g)
    yy = ((torch.arange(h) + 0.5) / h).view(1, 1, h, 1)
    xx = ((torch.arange(w) + 0.5) / w).view(1, 1, 1, w)
    dy, dx = yy - cy[..., None, None], xx - cx[..., None, None]
    cos, sin = torch.cos(th)[..., None, None], torch.sin(th)[..., None, None]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    inside = (u / rx[..., None, None]) ** 2 + (v / ry[..., None, None]) ** 2 <= 1.0
    inside &= (torch.arange(k_hi).view(1, -1) < k.view(-1, 1))[..., None, None]
    masks = inside.any(dim=1)
    # a patch too small to cover a pixel centre still marks its centre pixel
    empty = ~masks.flatten(1).any(1)
    if empty.any():
        iy = (cy[empty, 0] * h).long().clamp(0, h - 1)
        ix = (cx[empty, 0] * w).long().clamp(0, w - 1)
        masks[empty.nonzero().flatten(), iy, ix] = True
    base = normal[torch.arange(n) % len(normal)]
    pasted = source[src.to(source.device)].to(base.device, base.dtype)
    m = masks.to(base.device)
    out = torch.where(m[:, None], pasted, base)
    return out, masks.to(torch.float32).to(base.device)
