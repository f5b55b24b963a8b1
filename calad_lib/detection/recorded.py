"""Recorded runs of chapter 05: the rows of a run too long for a book build, kept with their provenance.

A recorded run is a folder ``results/recorded/05_detection/<name>/`` holding ``rows/``, the run's result
files exactly as the grid wrote them (read back through a validating :class:`~calad_lib.runs.ResultStore`),
and ``run.json``: the command, the machine, the commit, the wall time. :func:`save_recorded` makes one from a
finished grid; :func:`load_recorded` reads it; :func:`epoch_times` and :func:`grid_epochs` turn it into
the time a whole grid needs.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from ..paths import recorded_dir, relative
from ..runs import ResultStore, atomic_write_text
from .experiment import ONE_VS_ALL_KINDS, loss_order
from .grid import CHAPTER, COLUMNS, all_classes, tidy

__all__ = ["machine", "save_recorded", "load_recorded", "recorded_names", "epoch_times", "grid_epochs"]


def _folder(name: str) -> Path:
    return recorded_dir() / CHAPTER / name


def machine() -> dict:
    """The machine a run is recorded on: CPU model, cores, torch version and threads, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "gpu": gpu}


def save_recorded(store: ResultStore, name: str, info: Mapping) -> Path:
    """Copy every valid result file of ``store`` into ``results/recorded/05_detection/<name>/rows/``, with ``run.json``
    (``info``: the command, the wall time, ...; the machine is added). Returns the folder."""
    frame = store.frame()                                  # validates every file, sets aside the damaged ones
    if frame.empty:
        raise ValueError(f"{relative(store.root)} holds no finished experiment to record")
    out = _folder(name)
    (out / "rows").mkdir(parents=True, exist_ok=True)
    for key in frame["run_key"].unique():
        shutil.copy2(store.root / f"{key}.json", out / "rows" / f"{key}.json")
    atomic_write_text(out / "run.json", json.dumps({**dict(info), "machine": machine(),
                                                    "experiments": int(frame["run_key"].nunique())}, indent=1))
    return out


def recorded_names() -> list[str]:
    """The recorded runs of chapter 05."""
    root = recorded_dir() / CHAPTER
    return sorted(p.parent.name for p in root.glob("*/run.json")) if root.is_dir() else []


def load_recorded(name: str) -> tuple[pd.DataFrame, dict]:
    """The rows of recorded run ``name`` (as :func:`~calad_lib.detection.grid.results` gives them) and its ``run.json``."""
    folder = _folder(name)
    if not (folder / "run.json").is_file():
        raise FileNotFoundError(f"no recorded run {name!r} under {relative(folder.parent)}; "
                                f"recorded: {', '.join(recorded_names()) or 'none'}")
    frame = ResultStore(folder / "rows", columns=COLUMNS).frame()
    return tidy(frame), json.loads((folder / "run.json").read_text())


def epoch_times(df: pd.DataFrame) -> pd.DataFrame:
    """Per loss of a recorded run: the median epoch time of the base and the fully trained model, the images per
    epoch, and the experiment's wall time with what it spent outside training."""
    rows = {}
    for loss in loss_order(df["loss"].unique()):
        r = df[(df["loss"] == loss)].iloc[0]
        epochs = int(r["epochs"])
        trained = epochs * (r["base_epoch_seconds"] + r["fully_trained_epoch_seconds"])
        rows[loss] = {"epoch base (s)": r["base_epoch_seconds"], "epoch fully trained (s)": r["fully_trained_epoch_seconds"],
                      "training images": int(r["train_images"]), "epochs": epochs,
                      "experiment (min)": r["seconds"] / 60, "outside training (min)": (r["seconds"] - trained) / 60}
    return pd.DataFrame(rows).T


def grid_epochs(params: Mapping, datasets: Mapping[str, int] | None = None) -> pd.DataFrame:
    """What the grid of chapter 05's ``params`` trains: per dataset, experiments and network epochs (two networks per
    experiment: the 3/4 split to calibrate and the fully trained one). ``datasets`` gives the number of classes of
    datasets that are not on this machine (the thesis: CIFAR-10 10, MVTec AD 15, MPDD 6)."""
    known = dict(datasets or {})
    rows = {}
    for ds in [params["dataset"], *params.get("extra_datasets", [])]:
        if ds == params["dataset"] and params.get("classes") is not None:
            n_classes = len(params["classes"])
        elif ds in known:
            n_classes = known[ds]
        else:
            n_classes = len(all_classes(ds))
        per_class = ds not in ONE_VS_ALL_KINDS
        epochs = params["per_class_epochs"] if per_class else params["epochs"]
        n = n_classes * len(params["losses"]) * len(params["seeds"])
        rows[ds] = {"classes": n_classes, "experiments": n, "epochs per network": epochs, "network epochs": 2 * n * epochs}
    out = pd.DataFrame(rows).T.astype(float)
    out.loc["all"] = [out["classes"].sum(), out["experiments"].sum(), np.nan, out["network epochs"].sum()]
    return out
