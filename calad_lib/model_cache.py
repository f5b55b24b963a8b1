"""The trained-model cache shared by the trainer, the density models and the uncertainty models.

A cached file holds an *identity* (configuration, data fingerprints, a code version)
beside the weights. :func:`load_model` returns a model only when the stored identity
equals the expected one and the weights fit the network; an unreadable, mismatched or
ill-fitting file is reported in one :class:`CacheWarning` line and ``None`` is returned,
so the caller retrains — a cached file is never used silently. :func:`save_model`
writes atomically (temporary file, fsync, rename), so an interrupted run leaves either
the old file or the new one.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import Callable

import torch

from .provenance import stamp
from .store import atomic_write_bytes, ensure_writable

__all__ = ["CacheWarning", "fingerprint", "load_model", "save_model", "ensure_writable"]


class CacheWarning(UserWarning):
    """A cached model could not be used and is being retrained."""


def fingerprint(x: torch.Tensor | None) -> str | None:
    """SHA-256 (first 16 hex digits) of a tensor's shape, dtype and values (``None`` for ``None``)."""
    if x is None:
        return None
    t = x.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}".encode())
    if t.numel():
        h.update(t.view(torch.uint8).flatten().numpy() if t.dtype != torch.uint8 else t.flatten().numpy())
    return h.hexdigest()[:16]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text else type(exc).__name__


def load_model(path: Path, ident: dict, build: Callable[[dict], torch.nn.Module], device, *,
               what: str = "cached model") -> torch.nn.Module | None:
    """The model cached at ``path`` if its identity equals ``ident``, in eval mode on ``device``; else ``None``.

    ``build(payload)`` constructs the (untrained) network the stored weights belong to.
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or "state_dict" not in payload:
            raise ValueError("not a calad model file")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported and retrained
        warnings.warn(f"{what} {path.name} is unreadable ({_one_line(exc)}); retraining it", CacheWarning,
                      stacklevel=3)
        return None
    differs = [k for k in ident if payload.get(k) != ident[k]]
    if differs:
        warnings.warn(f"{what} {path.name} does not match this run (differs in {', '.join(differs)}); "
                      f"retraining it", CacheWarning, stacklevel=3)
        return None
    try:
        model = build(payload)
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"{what} {path.name} does not fit its network ({_one_line(exc)}); retraining it",
                      CacheWarning, stacklevel=3)
        return None
    fit = payload.get("fit")
    model.fit_info = dict(fit) if isinstance(fit, dict) else {}   # the record of the run that trained it
    return model.to(device).eval()


def save_model(path: Path, model: torch.nn.Module, ident: dict, **extra) -> None:
    """Store ``model``'s weights with its identity (and ``extra`` fields) at ``path``, atomically."""
    payload = {**ident, **extra, "provenance": stamp(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue(), mode=0o666)
