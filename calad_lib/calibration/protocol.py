"""The one fitting protocol of post-hoc calibration (thesis §4.2.1), used by every chapter.

:func:`calibrate` draws the calibration data once — ``n`` normal calibration images, augmented,
labelled 0, and ``n`` anomalies labelled 1: whole synthetic anomalies (spectral images or OE,
§3.4), or, for pixel-wise bases, normal images with patches of them pasted in, labelled by their
masks (:func:`calad_lib.synthesis.paste_patches`) — runs the frozen base over it in one pass, and
fits every requested calibrator on what it reads. Calibrators asked for together therefore see
exactly the same draws.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch

from ..data import Augment
from ..detector import AnomalyModel
from ..profile import timed
from ..progress import bar as progress_bar
from ..synthesis import paste_patches
from .adaptive import LocalCalibrator, LocationPlatt
from .base import Calibrator, network_features
from .head import CalibrationHead
from .model import CalibratedModel
from .scalar import BetaCalibration, PlattScaling

__all__ = ["calibrate", "make_calibrator", "resolve_augment", "METHODS"]

#: calibrators by the names tables and chapters use
METHODS = ("platt", "beta", "beta_naive", "head", "location_platt", "local", "local_network")


def make_calibrator(method: str, *, seed: int = 0, epochs: int = 200, lr: float = 1e-4, head_batch_size: int = 128,
                    device=None, progress: bool = False, quiet: bool = False) -> Calibrator:
    """An unfitted calibrator by name (:data:`METHODS`); ``epochs``, ``lr``, ``head_batch_size``: the head's Adam.

    ``local`` is :class:`LocalCalibrator` on logit, context and position; ``local_network`` on logit
    and the network's last feature map (a pixel-wise calibration head). ``quiet`` silences the
    warning of a Platt fit that reverses the ranking.
    """
    if method == "platt":
        return PlattScaling(quiet=quiet)
    if method in ("beta", "beta_naive"):
        return BetaCalibration("naive" if method == "beta_naive" else "stable")
    if method == "head":
        return CalibrationHead(epochs=epochs, lr=lr, batch_size=head_batch_size, seed=seed, device=device,
                               progress=progress)
    if method == "location_platt":
        return LocationPlatt()
    if method == "local":
        return LocalCalibrator(("logit", "context", "position"), seed=seed)
    if method == "local_network":
        return LocalCalibrator(("logit", "network"), seed=seed)
    raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")


def resolve_augment(augment):
    """The augmentation of the normal draws: ``True`` → :class:`calad_lib.data.Augment`, ``False``/``None`` → none,
    or the callable ``f(x, generator=g)`` itself."""
    if augment is True:
        return Augment()
    if augment is False or augment is None:
        return None
    if not callable(augment):
        raise TypeError("augment must be True, False or a callable f(x, generator=g)")
    return augment


def _take(x: torch.Tensor, n: int, cycle: bool, g: torch.Generator) -> torch.Tensor:
    """Indices of the ``n`` images to use: cycling permutations when augmenting, else at most ``len(x)``."""
    if not cycle:
        return torch.randperm(len(x), generator=g)[:min(n, len(x))]
    reps = math.ceil(n / len(x))
    return torch.cat([torch.randperm(len(x), generator=g) for _ in range(reps)])[:n]


def _check(base, cals: Mapping[str, Calibrator], normal, anomalous, n: int, anomalies: str) -> None:
    if not isinstance(base, AnomalyModel):
        raise TypeError(f"base must be a calad AnomalyModel, got {type(base).__name__}")
    for what, data in (("normal", normal), ("anomalous", anomalous)):
        if not isinstance(data, torch.Tensor) or data.ndim != 4 or len(data) == 0:
            raise ValueError(f"{what} must be a non-empty image tensor of shape (N, C, H, W)")
    if int(n) < 1:
        raise ValueError(f"n = {n} must be at least 1")
    if anomalies not in ("whole", "pasted"):
        raise ValueError(f"anomalies = {anomalies!r}; choose 'whole' (labelled 1) or 'pasted' (labelled by masks)")
    if anomalies == "pasted" and not base.pixelwise:
        raise ValueError("pasted anomalies are labelled per pixel; they need a pixel-wise base model")
    for name, cal in cals.items():
        if not isinstance(cal, Calibrator):
            raise TypeError(f"calibrator {name!r} must be a calad Calibrator, got {type(cal).__name__}")
        if cal.reads == "head_features" and base.pixelwise:
            raise ValueError("the calibration head is defined for detection models only (§4.2.1); "
                             "use 'platt', 'beta' or a location-adaptive calibrator for pixel-wise models")
        if cal.pixelwise_only and not base.pixelwise:
            raise ValueError(f"{type(cal).__name__} calibrates maps; it needs a pixel-wise base model")


def _read(base, xb: torch.Tensor, reads: set) -> dict:
    out = {}
    if "feature_maps" in reads:
        out["feature_maps"] = network_features(base, xb)
        out["logit"] = out["feature_maps"][0]
    elif "logit" in reads:
        out["logit"] = base.logit(xb)
    if "head_features" in reads:
        out["head_features"] = base.head_features(xb)
    return {k: tuple(t.cpu() for t in v) if isinstance(v, tuple) else v.cpu() for k, v in out.items()}


@timed("calibration")
def calibrate(base: AnomalyModel, methods: str | Sequence[str] | Mapping[str, Calibrator], *, normal: torch.Tensor,
              anomalous: torch.Tensor, n: int = 10_000, anomalies: str = "whole", augment: bool | Callable = True,
              augment_anomalous: bool = False, patch_kw: Mapping | None = None, seed: int = 0,
              batch_size: int = 256, forward_batch: int | None = None, progress: bool = True,
              **options) -> CalibratedModel | dict[str, CalibratedModel]:
    """Post-hoc calibrate a frozen ``base`` with each of ``methods`` on one draw of calibration data.

    Parameters
    ----------
    methods : one name or a list of names (:data:`METHODS`, built by :func:`make_calibrator` with ``seed``
        and ``options``: ``epochs``, ``lr``, ``head_batch_size`` of the head, ``quiet``), or
        ``{name: unfitted Calibrator}``. One name gives one model, as ``df[col]`` gives one column.
    normal : normal calibration images ``(N, C, H, W)`` in ``[0, 1]`` (the calibration split), label 0.
    anomalous : synthetic anomalies (spectral or OE images), label 1.
    n : ``n`` normal images (drawn with augmentation, cycling through the split, when ``augment``;
        otherwise at most ``len(normal)``) and at most ``n`` anomalies (§4.2.1: 10,000 each).
    anomalies : ``"whole"`` (each anomaly labelled 1) or ``"pasted"`` (pixel-wise bases: ``n`` more
        augmented normal images with patches of ``anomalous`` pasted in, ``patch_kw`` as in
        :func:`~calad_lib.synthesis.paste_patches`, labelled by their masks).
    augment : ``True`` for :class:`calad_lib.data.Augment`, a callable ``f(x, generator=g)``, or
        ``False``. ``augment_anomalous`` applies it to whole anomalies too (OE data).
    batch_size : images drawn (and augmented) at a time; ``forward_batch`` (default ``batch_size``):
        images per forward pass, smaller for large feature maps.

    Returns ``{name: CalibratedModel}`` in the order of ``methods`` (a single model for a single name),
    each named e.g. ``"platt[svdd]"``.
    """
    if isinstance(methods, str):
        return calibrate(base, [methods], normal=normal, anomalous=anomalous, n=n, anomalies=anomalies,
                         augment=augment, augment_anomalous=augment_anomalous, patch_kw=patch_kw, seed=seed,
                         batch_size=batch_size, forward_batch=forward_batch, progress=progress, **options)[methods]
    cals = dict(methods) if isinstance(methods, Mapping) else {
        m: make_calibrator(m, seed=seed, device=base.device if isinstance(base, AnomalyModel) else None,
                           progress=progress, **options)
        for m in methods}
    if not cals:
        raise ValueError("give at least one calibration method")
    _check(base, cals, normal, anomalous, n, anomalies)
    aug = resolve_augment(augment)
    n = int(n)
    g = torch.Generator().manual_seed(int(seed))
    idx0 = _take(normal, n, aug is not None, g)
    if anomalies == "whole":
        idx1 = _take(anomalous, n, aug is not None and augment_anomalous, g)
    else:
        idx1 = _take(normal, n, True, g)
    reads = {c.reads for c in cals.values()}
    for cal in cals.values():
        cal._begin(len(idx0) + len(idx1))
    fwd = int(forward_batch or batch_size)
    dev = base.device
    base.eval()
    steps = [(part, s) for part, idx in ((0, idx0), (1, idx1)) for s in range(0, len(idx), batch_size)]
    sources = anomalous.to(dev) if anomalies == "pasted" else None
    with torch.no_grad():
        for part, s in progress_bar(steps, desc="calibration draws", disable=not progress, leave=False):
            xb = (normal if part == 0 or anomalies == "pasted" else anomalous)[(idx1 if part else idx0)[s:s + batch_size]]
            if aug is not None and (part == 0 or anomalies == "pasted" or augment_anomalous):
                xb = aug(xb, generator=g)
            xb = xb.to(dev, dtype=torch.float32)
            masks = None
            if part == 1 and anomalies == "pasted":
                xb, masks = paste_patches(xb, sources, generator=g, **(patch_kw or {}))
            for a in range(0, len(xb), fwd):
                got = _read(base, xb[a:a + fwd], reads)
                m = min(fwd, len(xb) - a)
                if masks is not None:
                    y = masks[a:a + fwd].cpu()
                elif anomalies == "pasted":
                    y = torch.zeros((m, *xb.shape[-2:]))
                else:
                    y = torch.full((m,), float(part))
                for cal in cals.values():
                    cal._add(got[cal.reads], y)
    return {name: CalibratedModel(base, cal._end()) for name, cal in cals.items()}
