"""The one cache of fitted models: base networks, density models, uncertainty models.

A cached file ``cache_dir()/models/<kind>_<key>.pt`` holds the model's *identity*
(configuration, data fingerprints, a code fingerprint; ``key`` is its hash) beside the weights
and the record of the run that fitted it. :func:`cached_fit` returns the cached model when the
stored identity equals the expected one and the weights fit the network; an unreadable,
mismatched or ill-fitting file is reported in one :class:`CacheWarning` line and the model is
fitted again, so a cached file is never used silently. The cache folder is checked for
writability before any fitting, and files are written atomically (:func:`atomic_write_bytes`).
"""
from __future__ import annotations

import hashlib
import io
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from ..paths import cache_dir
from ..profile import phase
from ..provenance import stamp
from .store import atomic_write_bytes, config_key, ensure_writable

__all__ = ["CacheWarning", "fingerprint", "model_path", "load_model", "cached_fit"]


class CacheWarning(UserWarning):
    """A cached model could not be used and is being fitted again."""


def fingerprint(x: torch.Tensor | None) -> str | None:
    """SHA-256 (first 16 hex digits) of a tensor's shape, dtype and values (``None`` for ``None``)."""
    if x is None:
        return None
    t = x.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}".encode())
    if t.numel():
        h.update(t.view(torch.uint8).flatten().numpy() if t.dtype != torch.uint8 else t.flatten().numpy())
    return h.hexdigest()[:16]


def model_path(kind: str, identity: dict) -> Path:
    """Where the model of ``identity`` is cached: ``cache_dir()/models/<kind>_<key>.pt``."""
    return cache_dir() / "models" / f"{kind}_{config_key(identity)}.pt"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text else type(exc).__name__


def load_model(path: Path, identity: dict, build: Callable[[dict], torch.nn.Module], device, *,
               what: str = "cached model") -> torch.nn.Module | None:
    """The model cached at ``path`` if its identity equals ``identity``, in eval mode on ``device``; else ``None``.

    ``build(payload)`` constructs the (untrained) network the stored weights belong to. The
    model's ``fit_info`` is the record stored with it (empty for files written without one).
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or "state_dict" not in payload:
            raise ValueError("not a calad model file")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported and fitted again
        warnings.warn(f"{what} {path.name} is unreadable ({_one_line(exc)}); fitting it again", CacheWarning,
                      stacklevel=3)
        return None
    differs = [k for k in identity if payload.get(k) != identity[k]]
    if differs:
        warnings.warn(f"{what} {path.name} does not match this run (differs in {', '.join(differs)}); "
                      f"fitting it again", CacheWarning, stacklevel=3)
        return None
    try:
        model = build(payload)
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"{what} {path.name} does not fit its network ({_one_line(exc)}); fitting it again",
                      CacheWarning, stacklevel=3)
        return None
    fit = payload.get("fit")
    model.fit_info = dict(fit) if isinstance(fit, dict) else {}
    return model.to(device).eval()


def _save(path: Path, model: torch.nn.Module, identity: dict, extra: dict) -> None:
    payload = {**identity, **extra, "fit": model.fit_info, "provenance": stamp(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def cached_fit(kind: str, identity: dict, build: Callable[[dict], torch.nn.Module],
               fit: Callable[[], torch.nn.Module], *, device, cache: bool = True, what: str = "cached model",
               extra: Callable[[torch.nn.Module], dict] | None = None) -> torch.nn.Module:
    """The model of ``identity``: from the cache, or ``fit()`` and then cached.

    ``build(payload)`` rebuilds the untrained network of a cached file; ``extra(model)`` gives
    fields stored beside the weights that ``build`` needs (e.g. the network's specification).
    The returned model (eval mode, on ``device``) has ``fit_info``: ``cached`` (loaded rather than
    fitted here), ``seconds`` and whatever the fit recorded (``epoch_seconds``, ``threads``, ...).
    """
    if cache:
        path = model_path(kind, identity)
        model = load_model(path, identity, build, device, what=what)
        if model is not None:
            model.fit_info = {**model.fit_info, "cached": True}
            return model
        ensure_writable(path.parent, "cache")    # before fitting, not after
    start = time.perf_counter()
    with phase("training"):
        model = fit()
    model.fit_info = {**getattr(model, "fit_info", {}), "seconds": time.perf_counter() - start,
                      "device": str(device), "threads": torch.get_num_threads()}
    if cache:
        _save(path, model, identity, extra(model) if extra else {})
    model.fit_info["cached"] = False
    return model.eval()
