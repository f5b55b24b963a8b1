"""What a chapter does first: validate its parameters and prepare the run (``calad.setup``)."""
from __future__ import annotations

import os
import types
from typing import Any, Mapping

from . import device as _device
from . import plots as _plots
from . import profile as _profile
from . import records as _records
from .config import Params, validate
from .provenance import announce

__all__ = ["setup"]

_IGNORED_GLOBALS = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def _parameters_in(namespace: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _IGNORED_GLOBALS
            and not isinstance(v, (types.ModuleType, type)) and not callable(v)}


def setup(chapter: str, namespace: Mapping[str, Any], *, quiet: bool = False) -> Params:
    """Validate a notebook's parameters (its globals after the ``parameters`` cell) and prepare the run.

    Sets the preset for provenance, the chapter that :func:`calad_lib.records.record` files numbers
    under, the CPU threads, a global seed (if the chapter has ``seed``) and the plotting style, and
    announces the run's provenance once (the book shows it in the page footer). Returns the
    validated :class:`Params`.
    """
    params = validate(chapter, _parameters_in(namespace))
    os.environ["CALAD_PRESET"] = str(params.get("preset", "unknown"))
    os.environ["CALAD_CHAPTER"] = chapter
    _records.set_chapter(chapter)
    _profile.dump_at_exit(chapter)
    _device.configure_threads()
    if "seed" in params:
        _device.seed_everything(int(params["seed"]))
    _plots.use_style()
    if not quiet:
        announce(chapter, _device.get_device().type)
    return params
