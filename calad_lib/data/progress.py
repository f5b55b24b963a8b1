"""The progress bar of calad's data and synthesis modules (``tqdm.auto``, quietly).

``tqdm.auto`` warns, with a machine path, when a notebook kernel lacks ``ipywidgets``
and then falls back to the text bar; importing it here with that warning silenced keeps
notebook outputs free of it (later ``from tqdm.auto import tqdm`` imports reuse this module).
"""
from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
