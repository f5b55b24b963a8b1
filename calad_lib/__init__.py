"""calad_lib: the shared library of the calad book.

Chapters import it d2l-style and reach every module as an attribute::

    import calad_lib as calad
    P = calad.setup("01_theory", globals())      # validate the chapter's parameters
    calad.metrics.ece(y, p)                       # ... and call the science
    calad.record("svdd/auroc", auc)               # a headline number, regression-tested with a tolerance

Submodules are imported on first use, so ``import calad_lib`` is cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"


#: names the package root hands out from its modules, loaded on first use
_FROM = {"setup": ("chapter", "setup"), "record": ("records", "record")}


def __getattr__(name: str):
    """``calad.<module>`` imports the module on first use; ``calad.setup`` and ``calad.record`` come from
    :mod:`calad_lib.chapter` and :mod:`calad_lib.records`."""
    if name.startswith("_"):
        raise AttributeError(name)
    if name in _FROM:
        module, attr = _FROM[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            raise AttributeError(f"calad_lib has no module {name!r}") from None
        raise
    globals()[name] = module
    return module
