"""Progress bars for the terminal, never for the book.

In a script or ``calad grid`` the bar goes to stderr as usual. Inside a notebook kernel it
goes to the terminal of the process that started the kernel when ``$CALAD_PROGRESS`` is
``terminal`` (``calad run`` and ``calad book`` set it), and nowhere otherwise, so an executed
notebook, and the book made from it, holds no progress-bar text.
"""
from __future__ import annotations

import io
import os
import sys
import time
from typing import Iterable, TypeVar

import torch
from tqdm.std import tqdm

__all__ = ["bar", "terminal_stream", "Epochs"]

T = TypeVar("T")
_terminal: io.TextIOBase | None = None


def _in_kernel() -> bool:
    return type(sys.stderr).__module__.startswith("ipykernel")


def terminal_stream() -> io.TextIOBase | None:
    """Where a bar may write: stderr outside a kernel; the launching terminal or ``None`` inside one."""
    global _terminal
    if not _in_kernel():
        return sys.stderr
    if os.environ.get("CALAD_PROGRESS") != "terminal":
        return None
    if _terminal is None:
        try:   # ipykernel's stderr reports the file descriptor it replaced: the terminal's
            _terminal = open(os.dup(sys.stderr.fileno()), "w", buffering=1, closefd=True)
        except (OSError, io.UnsupportedOperation, ValueError):
            return None
    return _terminal


def bar(iterable: Iterable[T] | None = None, *, desc: str | None = None, total: int | None = None,
        disable: bool = False, leave: bool = False, **kwargs) -> tqdm:
    """A ``tqdm`` bar on the terminal (see the module note); disabled where it would reach a notebook."""
    stream = None if disable else terminal_stream()
    return tqdm(iterable, desc=desc, total=total, disable=stream is None, leave=leave, file=stream,
                dynamic_ncols=True, **kwargs)


class Epochs:
    """The epochs of a training loop: a bar over them that also times each one.

    ``for epoch in (loop := Epochs(n, desc=...)): ...; loop.show(loss=...)``; afterwards
    ``loop.seconds`` holds the wall time of every epoch (CUDA work included: the device is
    synchronised at the end of each).
    """

    def __init__(self, n: int, *, desc: str | None = None, progress: bool = True, device=None):
        self.bar = bar(range(int(n)), desc=desc, disable=not progress, leave=False)
        self.device = torch.device(device) if device is not None else None
        self.seconds: list[float] = []

    def __iter__(self):
        for epoch in self.bar:
            start = time.perf_counter()
            yield epoch
            if self.device is not None and self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds.append(time.perf_counter() - start)

    def show(self, **values) -> None:
        """Values to show beside the bar (e.g. the epoch's mean loss); free when the bar is off."""
        if not self.bar.disable:
            self.bar.set_postfix(**values)
