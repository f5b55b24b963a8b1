"""The grid of detection experiments (thesis §4.2–§4.3.1): plan, validate, run, resume.

>>> P = calad.config.resolve_params("05_detection", "smoke")
>>> configs = calad.detection.plan(P)                        # validated before anything runs
>>> run = calad.detection.run_grid(configs, preset="smoke")  # skips finished experiments
>>> df = run.frame()                                         # one row per experiment × method
>>> calad.detection.summary_table(df, "fashion_mnist")       # Table 4.1's layout

Each experiment writes its rows atomically to ``results/05_detection/<preset>/<key>.json``
(:class:`calad_lib.runs.ResultStore`, ``key`` a hash of the whole :class:`ExperimentConfig`), so a grid
killed at any moment — even by ``SIGKILL`` — is finished by running the same command again: complete
experiments are skipped, and the trained models of an interrupted one come from the model cache. The
grid runs in this process or on Dask (:func:`calad_lib.runs.run_all`).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .. import data
from ..data.mvtec import check_class_folder, list_classes
from ..paths import data_dir, relative, results_dir
from ..runs import ResultStore, RunSummary, run_all
from ..synthesis import TEXTURE_CLASSES
from .experiment import ONE_VS_ALL_KINDS, PER_CLASS_KINDS, ExperimentConfig, run_experiment

__all__ = ["CHAPTER", "plan", "all_classes", "validate_data", "store_for", "run_grid", "results", "class_labels",
           "COLUMNS"]

CHAPTER = "05_detection"
#: the thesis' short class labels (Appendix B) by class id
_THESIS_LABELS = {
    "fashion_mnist": ("top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
_PER_CLASS_FOLDERS = {"mvtec": "mvtec_ad", "mpdd": "mpdd", "textures": "textures"}
#: what every row of a finished experiment holds (a file without them is set aside and rerun)
COLUMNS = ("method", "auroc", "auroc_perturbed", "kappa", "ece", "mce", "loss", "dataset", "normal_class", "seed")


# --- planning and validation ------------------------------------------------------------------------
def all_classes(dataset: str) -> list:
    """Every normal class of ``dataset``: ids for one-vs-all datasets, folder names for per-class ones."""
    if dataset in ONE_VS_ALL_KINDS:
        return list(range(len(data.load(dataset, train=False, progress=False).classes)))
    if dataset == "textures":
        return list(TEXTURE_CLASSES)
    found = list_classes(data_dir() / _PER_CLASS_FOLDERS[dataset])
    if not found:
        raise data.DataNotFound(f"{dataset} not found: no class folders with train/good under "
                                f"{relative(data_dir() / _PER_CLASS_FOLDERS[dataset])}; copy the dataset there "
                                "or set $CALAD_DATA")
    return found


def validate_data(dataset: str, classes: Iterable, oe_source: str = "photos") -> list:
    """Check that ``dataset``, its ``classes`` and the OE source are on disk; return the class ids/names.

    Raises the loader's one-line :class:`calad_lib.data.DataNotFound` (or ``DataError``) before any work.
    """
    out = []
    if dataset in ONE_VS_ALL_KINDS:
        names = data.load(dataset, train=True, progress=False).classes
        data.load(dataset, train=False, progress=False)
        for c in classes:
            if isinstance(c, str) and c in names:
                c = names.index(c)
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < len(names):
                raise data.DataError(f"class {c!r} is not a class of {dataset}; choose ids 0..{len(names) - 1} "
                                     f"or names: {', '.join(names)}")
            out.append(int(c))
    else:
        for c in classes:
            if dataset == "textures":
                if c not in TEXTURE_CLASSES:
                    raise data.DataError(f"unknown texture class {c!r}; choose one of: {', '.join(TEXTURE_CLASSES)}")
            else:
                check_class_folder(data.class_folder(dataset, str(c), None), f"{dataset}:{c}")
            out.append(str(c))
    if oe_source == "cifar100":
        data.load("cifar100", train=False, progress=False)
    elif oe_source != "photos" and not Path(oe_source).expanduser().is_dir():
        raise data.DataError(f"OE source {oe_source!r} is neither 'photos', 'cifar100' nor a folder of images")
    return out


def plan(params: Mapping) -> list[ExperimentConfig]:
    """All experiments of the chapter's parameters ``params``, validated (data on disk, classes, losses).

    ``dataset`` with ``classes`` (``None``: all), plus every class of each of ``extra_datasets``;
    per-class datasets (MVTec AD, MPDD, textures) train for ``per_class_epochs`` with OE from
    ``per_class_oe_source``.
    """
    p = dict(params)
    configs = []
    for dataset in [p["dataset"], *p.get("extra_datasets", [])]:
        per_class = dataset in PER_CLASS_KINDS
        wanted = p["classes"] if dataset == p["dataset"] and p.get("classes") is not None else all_classes(dataset)
        oe_source = p["per_class_oe_source"] if per_class else p["oe_source"]
        classes = validate_data(dataset, wanted, oe_source)
        epochs = p["per_class_epochs"] if per_class else p["epochs"]
        milestones = p["per_class_milestones"] if per_class else p["milestones"]
        for cls in classes:
            for loss in p["losses"]:
                for seed in p["seeds"]:
                    configs.append(ExperimentConfig.from_params(
                        p, dataset=dataset, normal_class=cls, loss=loss, seed=int(seed), epochs=int(epochs),
                        milestones=tuple(milestones), oe_source=oe_source,
                        n_train=None if per_class else p["n_train"],
                        image_size=p.get("image_size") if per_class else None))
    if not configs:
        raise ValueError("the grid is empty; give at least one class, loss and seed")
    return configs


# --- running ----------------------------------------------------------------------------------------
def store_for(preset: str) -> ResultStore:
    """The results store of chapter 05 for ``preset``: ``results/05_detection/<preset>/``."""
    return ResultStore(results_dir() / CHAPTER / Path(str(preset)).stem, columns=COLUMNS)


def _work(config: dict, preset: str) -> list[dict]:
    return run_experiment(ExperimentConfig.from_dict(config), preset=preset)


def run_grid(configs: list[ExperimentConfig], *, preset: str, store: ResultStore | None = None,
             engine: str = "local", workers: int | None = None, scheduler: str | None = None,
             threads: int | None = None, progress: bool = True) -> RunSummary:
    """Run every experiment of ``configs`` that is not in ``store`` yet (default :func:`store_for`).

    ``engine``, ``workers``, ``scheduler``, ``threads`` as in :func:`calad_lib.runs.run_all`. The
    summary's :meth:`~calad_lib.runs.RunSummary.frame` gives the rows (:func:`results` adds labels).
    """
    return run_all([c.as_dict() for c in configs], functools.partial(_work, preset=str(preset)),
                   store=store or store_for(preset), preset=str(preset), engine=engine, workers=workers,
                   scheduler=scheduler, threads=threads, progress=progress, desc="detection experiments",
                   label=lambda c: ExperimentConfig.from_dict(c).label, tidy=tidy)


# --- results and tables ------------------------------------------------------------------------------
def class_labels(dataset: str, classes) -> list[str]:
    """The thesis' label of each class (``top`` for T-shirt/top, ``metal nut`` for ``metal_nut``)."""
    names = _THESIS_LABELS.get(dataset)
    return [names[int(c)] if names is not None else str(c).replace("_", " ") for c in classes]


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Result rows with the thesis' class label and the perturbation gain ``delta``."""
    df = df.copy()
    df["class_label"] = [class_labels(ds, [c])[0] for ds, c in zip(df["dataset"], df["normal_class"])]
    df["delta"] = df["auroc_perturbed"] - df["auroc"]
    return df


def results(configs: Iterable[ExperimentConfig], store: ResultStore) -> pd.DataFrame:
    """The rows of every finished experiment of ``configs`` (one per experiment × method), :func:`tidy`."""
    rows = []
    for c in configs:
        d = c.as_dict()
        if store.done(d):
            rows.extend({**r, "run_key": store.path(d).stem} for r in store.read(d))
    df = pd.DataFrame.from_records(rows)
    return tidy(df) if not df.empty else df


