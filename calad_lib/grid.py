"""The grid of detection experiments (thesis §4.2–§4.3.1): plan, validate, run, resume, tabulate.

>>> P = calad.runner.resolve_params("05_detection", "smoke")
>>> configs = calad.grid.plan(P)                          # validated before anything runs
>>> run = calad.grid.run_grid(configs, preset="smoke")    # skips finished experiments
>>> df = run.frame()                                      # one row per experiment × method
>>> calad.grid.summary_table(df, "fashion_mnist")         # Table 4.1's layout

**Resume.** Each experiment writes its rows atomically to ``results/05_detection/<preset>/<key>.json``
(:class:`calad_lib.store.ResultStore`, ``key`` a hash of the whole
:class:`~calad_lib.experiment.ExperimentConfig`), so a grid killed at any moment — even by
``SIGKILL`` — is finished by running the same command again: complete experiments are skipped, and
the trained models of an interrupted one come from the trainer's cache.

**Distributed engine: Dask** (``dask.distributed``). It is pure Python and already a dependency of the
PyData stack; ``LocalCluster`` spreads the grid over the processes of one machine, and the same client
code talks to any Dask scheduler — started by ``dask-jobqueue`` on SLURM/PBS/SGE, by ``dask-ssh`` on a
list of hosts, or by hand (``--scheduler tcp://host:8786``). Each experiment is one task of the futures
API (``client.submit``); workers that advertise a ``GPU`` resource (``dask worker ... --resources GPU=1``,
one worker per GPU, e.g. with ``CUDA_VISIBLE_DEVICES`` or ``dask-cuda``) get at most one experiment each
at a time. Workers write their own result files to the shared results folder, so a client that dies
loses nothing that finished. Ray would do the same with a heavier runtime (its own object store and
raylet daemons) and no gain for a few hundred coarse, independent tasks.
"""
from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .experiment import (METHOD_LABELS, ONE_VS_ALL_KINDS, PER_CLASS_KINDS, THESIS_METHODS, ExperimentConfig,
                         loss_order, run_experiment)
from .paths import results_dir
from .store import ResultStore, config_key

__all__ = ["CHAPTER", "plan", "all_classes", "validate_data", "store_for", "run_grid", "GridRun", "results",
           "class_labels", "summary_table", "class_table", "thesis_table", "thesis_summary", "thesis_class_table",
           "thesis_frame", "side_by_side", "loss_order", "METRICS", "THESIS_DATASETS", "HIGHER_IS_BETTER",
           "DATASET_NAMES", "describe_plan", "preset_table", "thesis_table_name", "table_4_1", "same_classes",
           "appendix_b", "auroc_gap", "headline", "compare_by_method"]

CHAPTER = "05_detection"
TABLES = Path(__file__).resolve().parent / "thesis_tables"
#: the rows of Table 4.1 per loss: (label, column of the results)
METRICS = (("AUROC", "auroc"), ("AUROC (perturbed)", "auroc_perturbed"), ("MCE", "mce"), ("ECE", "ece"))
#: the thesis' short class labels (Appendix B) by class id
_THESIS_LABELS = {
    "fashion_mnist": ("top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
#: datasets with transcribed thesis numbers (Tables 4.1, 4.2, B.1–B.16)
THESIS_DATASETS = ("fashion_mnist", "cifar10", "mvtec", "mpdd")
#: whether a higher value is better, per row label of Table 4.1 (the calibration errors: lower)
HIGHER_IS_BETTER = {"AUROC": True, "AUROC (perturbed)": True, "MCE": False, "ECE": False,
                    "unperturbed": True, "perturbed": True}
#: how the tables' captions name the datasets
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "mvtec": "MVTec AD", "mpdd": "MPDD", "textures": "defect textures"}
_PER_CLASS_FOLDERS = {"mvtec": "mvtec_ad", "mpdd": "mpdd", "textures": "textures"}


# --- planning and validation ------------------------------------------------------------------------
def all_classes(dataset: str) -> list:
    """Every normal class of ``dataset``: ids for one-vs-all datasets, folder names for per-class ones."""
    from . import data

    if dataset in ONE_VS_ALL_KINDS:
        return list(range(len(data.load(dataset, train=False, progress=False).classes)))
    if dataset == "textures":
        from .synthesis import TEXTURE_CLASSES

        return list(TEXTURE_CLASSES)
    from .data.mvtec import list_classes
    from .paths import data_dir, relative

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
    from . import data

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
        from .data.mvtec import check_class_folder

        for c in classes:
            if dataset == "textures":
                from .synthesis import TEXTURE_CLASSES

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
                    configs.append(ExperimentConfig(
                        dataset=dataset, normal_class=cls, loss=loss, seed=int(seed), epochs=int(epochs),
                        milestones=tuple(milestones), lr=p["lr"], batch_size=p["batch_size"],
                        n_train=None if per_class else p["n_train"], n_calib=p["n_calib"],
                        n_test_normal=p["n_test_normal"], n_test_anomalous=p["n_test_anomalous"],
                        n_heldout=p["n_heldout"], n_oe=p["n_oe"], oe_source=oe_source, eps=p["eps"],
                        head_epochs=p["head_epochs"], head_lr=p["head_lr"], alpha=p["alpha"], n_bins=p["n_bins"],
                        image_size=p.get("image_size") if per_class else None))
    if not configs:
        raise ValueError("the grid is empty; give at least one class, loss and seed")
    return configs


# --- running ----------------------------------------------------------------------------------------
def store_for(preset: str) -> ResultStore:
    """The results store of chapter 05 for ``preset``: ``results/05_detection/<preset>/``."""
    return ResultStore(results_dir() / CHAPTER / Path(str(preset)).stem)


def _run_one(config: dict, root: str, preset: str, threads: int | None = None) -> tuple[str, bool]:
    """Run one experiment unless its result exists; write it atomically. Runs on the worker."""
    store = ResultStore(root)
    if store.done(config):
        return config_key(config), False
    rows = run_experiment(ExperimentConfig.from_dict(config), preset=preset, threads=threads)
    store.write(config, rows, preset=preset)
    return config_key(config), True


@dataclass
class GridRun:
    """What :func:`run_grid` did: the store, the experiments, how many ran and how many were already done."""

    store: ResultStore
    configs: list[ExperimentConfig]
    ran: int = 0
    skipped: int = 0
    seconds: float = 0.0
    engine: str = "local"
    keys_ran: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        return results(self.configs, self.store)

    def __repr__(self) -> str:
        from .paths import relative

        return (f"GridRun({len(self.configs)} experiments: {self.ran} run, {self.skipped} already done; "
                f"results in {relative(self.store.root)})")


def _dask_client(workers: int | None, scheduler: str | None):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def run_grid(configs: list[ExperimentConfig], *, preset: str, store: ResultStore | None = None,
             engine: str = "local", workers: int | None = None, scheduler: str | None = None,
             threads: int | None = None, progress: bool = True) -> GridRun:
    """Run every experiment of ``configs`` that is not in ``store`` yet (default :func:`store_for`).

    ``engine="local"`` runs them one after another in this process; ``"dask"`` submits one task per
    experiment to a ``LocalCluster`` of ``workers`` single-threaded processes, or to the scheduler at
    ``scheduler``. ``threads``: torch CPU threads per experiment (default: all cores locally, 1 on
    Dask workers, which run one task per core). A tqdm bar counts finished experiments and estimates
    the time left.
    """
    from .progress import bar as progress_bar

    if engine not in ("local", "dask"):
        raise ValueError(f"unknown engine {engine!r}; choose 'local' or 'dask'")
    store = store or store_for(preset)
    store.root.mkdir(parents=True, exist_ok=True)
    todo = [c for c in configs if not store.done(c.as_dict())]
    run = GridRun(store, list(configs), skipped=len(configs) - len(todo), engine=engine)
    start = time.perf_counter()
    bar = progress_bar(total=len(todo), desc="detection experiments", unit="exp", disable=not progress or not todo)
    if engine == "local" or not todo:
        for c in todo:
            bar.set_postfix_str(c.label)
            key, ran = _run_one(c.as_dict(), str(store.root), preset, threads)
            run.ran += ran
            run.keys_ran += [key] if ran else []
            bar.update()
    else:
        from dask.distributed import as_completed

        client, cluster = _dask_client(workers, scheduler)
        try:
            info = client.scheduler_info().get("workers", {})
            gpus = any("GPU" in (w.get("resources") or {}) for w in info.values())
            futures = [client.submit(_run_one, c.as_dict(), str(store.root), preset, threads or 1, pure=False,
                                     key=f"calad-05-{config_key(c.as_dict())}", resources={"GPU": 1} if gpus else None)
                       for c in todo]
            for fut in as_completed(futures):
                key, ran = fut.result()
                run.ran += ran
                run.keys_ran += [key] if ran else []
                bar.update()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    run.seconds = time.perf_counter() - start
    return run


# --- results and tables ------------------------------------------------------------------------------
def class_labels(dataset: str, classes) -> list[str]:
    """The thesis' label of each class (``top`` for T-shirt/top, ``metal nut`` for ``metal_nut``)."""
    names = _THESIS_LABELS.get(dataset)
    return [names[int(c)] if names is not None else str(c).replace("_", " ") for c in classes]


def results(configs: Iterable[ExperimentConfig], store: ResultStore) -> pd.DataFrame:
    """The rows of every finished experiment of ``configs`` (one per experiment × method)."""
    rows = []
    for c in configs:
        d = c.as_dict()
        if store.done(d):
            rows.extend({**r, "run_key": store.path(d).stem} for r in store.read(d))
    df = pd.DataFrame.from_records(rows)
    if not df.empty:
        df["class_label"] = [class_labels(ds, [c])[0] for ds, c in zip(df["dataset"], df["normal_class"])]
        df["delta"] = df["auroc_perturbed"] - df["auroc"]
    return df


def summary_table(df: pd.DataFrame, dataset: str, methods=THESIS_METHODS) -> pd.DataFrame:
    """Table 4.1's layout: per loss the four metrics × the methods, in %, mean over classes and seeds."""
    d = df[(df["dataset"] == dataset) & df["method"].isin(methods)]
    parts = []
    for loss in loss_order(d["loss"]):
        m = d[d["loss"] == loss].groupby("method")[[c for _, c in METRICS]].mean() * 100
        m = m.reindex(list(methods)).T.set_axis([lab for lab, _ in METRICS])
        m.index = pd.MultiIndex.from_product([[loss], m.index], names=["loss", "metric"])
        parts.append(m)
    out = pd.concat(parts)
    out.columns = [METHOD_LABELS[c] for c in out.columns]
    return out


def class_table(df: pd.DataFrame, dataset: str, loss: str, methods=THESIS_METHODS) -> pd.DataFrame:
    """Appendix B's layout: per class, AUROC unperturbed and perturbed (%, mean over seeds), and the average."""
    d = df[(df["dataset"] == dataset) & (df["loss"] == loss) & df["method"].isin(methods)]
    g = d.groupby(["class_label", "method"])[["auroc", "auroc_perturbed"]].mean() * 100
    long = g.rename(columns={"auroc": "unperturbed", "auroc_perturbed": "perturbed"}).stack()
    wide = long.unstack("method").reindex(columns=list(methods))
    wide.index.names = ["class", "inputs"]
    avg = wide.groupby(level="inputs").mean()
    avg.index = pd.MultiIndex.from_product([["average"], avg.index], names=["class", "inputs"])
    out = pd.concat([wide.sort_index(level=0), avg]).reindex(["unperturbed", "perturbed"], level="inputs")
    out.columns = [METHOD_LABELS[c] for c in out.columns]
    return out


def thesis_table(source: str | None = None, *, dataset: str | None = None, loss: str | None = None) -> pd.DataFrame:
    """The transcribed thesis tables (long format, values in %): 4.1, 4.2 and B.1–B.16.

    Columns: ``source_table``, ``dataset``, ``loss``, ``class_label``, ``class_id``, ``metric``
    (``auroc``, ``auroc_perturbed``, ``mce``, ``ece``), ``method``, ``value``. See
    ``calad_lib/thesis_tables/TRANSCRIPTION.md`` for how the PDF extraction was read.
    """
    files = ["table_4_1.csv", "table_4_2.csv", "appendix_b.csv"]
    df = pd.concat([pd.read_csv(TABLES / f, dtype={"class_id": "Int64", "source_table": str}) for f in files], ignore_index=True)
    for col, want in (("source_table", source), ("dataset", dataset), ("loss", loss)):
        if want is not None:
            df = df[df[col] == want]
    if df.empty:
        raise ValueError(f"no transcribed thesis numbers for source={source!r}, dataset={dataset!r}, loss={loss!r}")
    return df.reset_index(drop=True)


def thesis_summary(dataset: str, losses: Iterable[str] | None = None) -> pd.DataFrame:
    """Table 4.1 / 4.2 of the thesis for ``dataset`` in the layout of :func:`summary_table`."""
    t = thesis_table(dataset=dataset)
    t = t[t["source_table"].isin(["4.1", "4.2"])]
    out = t.pivot_table(index=["loss", "metric"], columns="method", values="value")
    labels = dict((c, lab) for lab, c in METRICS)
    out = out.reindex(pd.MultiIndex.from_product([loss_order(t["loss"] if losses is None else losses), [c for _, c in METRICS]]))
    out.index = out.index.set_levels([labels[m] for m in out.index.levels[1]], level=1)
    out.index.names = ["loss", "metric"]
    out = out.reindex(columns=list(THESIS_METHODS))
    out.columns = [METHOD_LABELS[c] for c in out.columns]
    return out


def thesis_class_table(dataset: str, loss: str, classes: Iterable[str] | None = None) -> pd.DataFrame:
    """Appendix B of the thesis for ``dataset`` and ``loss`` in the layout of :func:`class_table`.

    With ``classes`` (thesis labels), only those classes, and ``average`` becomes their mean.
    """
    t = thesis_table(dataset=dataset, loss=loss)
    t = t[t["source_table"].str.startswith("B")]
    t = t.assign(inputs=t["metric"].map({"auroc": "unperturbed", "auroc_perturbed": "perturbed"}))
    wide = t.pivot_table(index=["class_label", "inputs"], columns="method", values="value")
    wide = wide.reindex(columns=list(THESIS_METHODS))
    if classes is not None:
        keep = list(classes)
        wide = wide[wide.index.get_level_values(0).isin(keep)]
        avg = wide.groupby(level="inputs").mean()
        avg.index = pd.MultiIndex.from_product([["average"], avg.index])
        wide = pd.concat([wide, avg])
    wide.index.names = ["class", "inputs"]
    wide = wide.reindex(["unperturbed", "perturbed"], level="inputs")
    wide.columns = [METHOD_LABELS[c] for c in wide.columns]
    return wide


def side_by_side(ours: pd.DataFrame, thesis: pd.DataFrame) -> pd.DataFrame:
    """Ours, the thesis' and their difference (ours − thesis) for every row of ``ours``, interleaved."""
    th = thesis.reindex(index=ours.index, columns=ours.columns)
    parts = {"ours": ours, "thesis": th, "ours − thesis": ours - th}
    out = pd.concat(parts, names=["source"])
    out = out.reorder_levels([*range(1, out.index.nlevels), 0])
    order = [(*(i if isinstance(i, tuple) else (i,)), s) for i in ours.index for s in parts]
    return out.loc[order]


def thesis_frame(dataset: str) -> pd.DataFrame:
    """Appendix B's per-class AUROCs (means over 5 seeds) as a results-like frame (fractions), for :func:`claims`."""
    t = thesis_table(dataset=dataset)
    t = t[t["source_table"].str.startswith("B") & (t["class_label"] != "average")]
    w = t.pivot_table(index=["dataset", "loss", "class_label", "method"], columns="metric", values="value") / 100
    w = w.reset_index().assign(seed=-1, delta=lambda x: x["auroc_perturbed"] - x["auroc"])
    return w


# --- what the chapter shows: the plan, the preset, and our tables beside the thesis' ---------------------
def describe_plan(configs: Iterable[ExperimentConfig]) -> list[str]:
    """Short lines saying what the grid holds: per dataset its classes, losses and seeds, and the total."""
    configs = list(configs)
    lines = []
    for ds in dict.fromkeys(c.dataset for c in configs):
        cs = [c for c in configs if c.dataset == ds]
        classes = list(dict.fromkeys(c.normal_class for c in cs))
        losses = loss_order({c.loss for c in cs})
        seeds = sorted({c.seed for c in cs})
        lines += [f"{ds}: {len(cs)} experiments = {len(classes)} classes x {len(losses)} losses x "
                  f"{len(seeds)} seed(s)",
                  *textwrap.wrap(f"classes {', '.join(map(str, classes))}", 88, initial_indent="  ",
                                 subsequent_indent="    "),
                  f"  losses {', '.join(losses)}; seeds {', '.join(map(str, seeds))}"]
    from .experiment import METHODS

    lines.append(f"{len(configs)} experiments in all, {len(METHODS)} models each "
                 f"({len(THESIS_METHODS)} thesis columns, base, naive β OE and Spectral)")
    return lines


#: the parameters :func:`preset_table` compares
PRESET_KEYS = ("classes", "seeds", "epochs", "milestones", "lr", "n_train", "n_calib", "n_test_normal",
               "n_test_anomalous", "n_heldout", "n_oe", "oe_source", "head_epochs", "head_lr")


def _full_sizes(dataset: str) -> dict:
    """The sizes that ``None`` stands for in a preset: all classes, the whole splits of class 0."""
    from . import data

    if dataset not in ONE_VS_ALL_KINDS:
        return {"classes": len(all_classes(dataset))}
    s = data.one_vs_all(dataset, normal_class=0, seed=0)
    return {"classes": len(s.classes), "n_train": len(s.train), "n_test_normal": int((s.test_y == 0).sum()),
            "n_test_anomalous": int((s.test_y == 1).sum())}


def preset_table(params: Mapping, other: Mapping, names: tuple[str, str] = ("this run", "thesis"),
                 keys: Iterable[str] = PRESET_KEYS) -> pd.DataFrame:
    """Two presets' values of ``keys`` side by side, as text; ``None`` (the whole split) reads
    ``all (n)`` with the size it stands for in ``params['dataset']`` (class 0's split for the caps)."""
    full = {}

    def text(key: str, v) -> str:
        if v is None:
            if not full:
                full.update(_full_sizes(params["dataset"]))
            n = full.get(key)
            return "all" if n is None else f"all ({n:,d})".replace(",", "\u2009")
        if isinstance(v, (list, tuple)):
            return ", ".join(map(str, v)) if v else "none"
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f"{v:,d}".replace(",", "\u2009")
        return str(v)

    keys = list(keys)
    return pd.DataFrame({names[0]: [text(k, params[k]) for k in keys], names[1]: [text(k, other[k]) for k in keys]},
                        index=pd.Index(keys, name="parameter"))


def thesis_table_name(dataset: str) -> str:
    """The thesis table that summarises ``dataset``: 4.1 (Fashion-MNIST, CIFAR-10) or 4.2 (MVTec AD, MPDD)."""
    return "4.1" if dataset in ("fashion_mnist", "cifar10") else "4.2"


def table_4_1(df: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Our Table 4.1 (or 4.2) for ``dataset`` (%, :func:`summary_table`) and the thesis' on the same rows
    (``None`` for a dataset the thesis does not report)."""
    ours = summary_table(df, dataset)
    if dataset not in THESIS_DATASETS:
        return ours, None
    thesis = thesis_summary(dataset, ours.index.get_level_values("loss").unique())
    return ours, thesis.reindex(index=ours.index, columns=ours.columns)


def same_classes(df: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The AUROC averages over the classes of this run, ours and the thesis' (Appendix B, same classes).

    Rows (loss, inputs) with inputs ``unperturbed`` / ``perturbed``, columns the seven thesis methods, in %.
    """
    d = df[df["dataset"] == dataset]
    labels = sorted(d["class_label"].unique())
    ours, theirs = {}, {}
    for loss in loss_order(d["loss"].unique()):
        ours[loss] = class_table(df, dataset, loss).loc["average"]
        theirs[loss] = thesis_class_table(dataset, loss, classes=labels).loc["average"]
    ours, theirs = pd.concat(ours, names=["loss", "inputs"]), pd.concat(theirs, names=["loss", "inputs"])
    return ours, theirs.reindex(index=ours.index, columns=ours.columns)


def appendix_b(df: pd.DataFrame, dataset: str, loss: str, average: bool = True
               ) -> tuple[pd.DataFrame, pd.DataFrame | None, str | None]:
    """Appendix B's layout for one loss: ours (:func:`class_table`), the thesis' for the same classes and
    the number of the thesis table (``B.1`` …); the last two ``None`` where the thesis has no numbers.
    ``average=False`` leaves out the rows of the class average (:func:`same_classes` holds them)."""
    ours = class_table(df, dataset, loss)
    if not average:
        ours = ours.drop("average", level="class")
    if dataset not in THESIS_DATASETS:
        return ours, None, None
    labels = sorted(df[(df["dataset"] == dataset)]["class_label"].unique())
    theirs = thesis_class_table(dataset, loss, classes=labels).reindex(index=ours.index, columns=ours.columns)
    src = thesis_table(dataset=dataset, loss=loss)["source_table"]
    return ours, theirs, src[src.str.startswith("B")].iloc[0]


def auroc_gap(ours: pd.DataFrame, thesis: pd.DataFrame) -> pd.Series:
    """Per loss, the mean over methods of |ours − thesis| of the unperturbed AUROC (points, as the tables)."""
    diff = (ours - thesis).xs("AUROC", level="metric")
    return diff.abs().mean(axis=1).rename("mean |ours − thesis|")


def headline(df: pd.DataFrame, dataset: str, methods=THESIS_METHODS) -> pd.Series:
    """The numbers a regression test watches: per (loss, method, metric) the mean over classes and seeds
    of ``auroc``, ``auroc_perturbed``, ``ece``, ``mce`` and ``kappa`` (fractions, not %)."""
    cols = ["auroc", "auroc_perturbed", "ece", "mce", "kappa"]
    d = df[(df["dataset"] == dataset) & df["method"].isin(methods)]
    m = d.groupby(["loss", "method"])[cols].mean()
    m = m.reindex(pd.MultiIndex.from_product([loss_order(d["loss"]), [x for x in methods if x in set(d["method"])]]))
    return m.stack().rename_axis(["loss", "method", "metric"])


def compare_by_method(ours: pd.DataFrame, thesis: pd.DataFrame, *, to_columns: str, caption: str,
                      digits: int = 1, scale: float = 10.0):
    """:func:`calad_lib.report.compare` of two tables with one column per method, laid out with the methods
    as rows and the index level ``to_columns`` as columns, so that seven methods fit the book's column.

    The comparison (cells ``ours / thesis`` with Δ, tint, and the best *method* of each row of the
    thesis' layout in bold, as the thesis marks it) is computed in the thesis' layout and then
    reshaped: Table 4.1's (loss, metric) × method becomes (loss, method) × metric, Appendix B's
    (class, inputs) × method becomes (class, method) × inputs. MCE and ECE rows count lower as better
    (:data:`HIGHER_IS_BETTER`).
    """
    from .report import compare

    places = {"MCE": max(digits, 2), "ECE": max(digits, 2)}   # the thesis reports ECEs of a few hundredths of a %
    sty = compare(ours, thesis, digits={**{k: digits for k in HIGHER_IS_BETTER}, **places},
                  higher_is_better=HIGHER_IS_BETTER, scale=scale, caption=caption)
    sty._compute()
    cells = sty.data
    css = pd.DataFrame("", index=cells.index, columns=cells.columns)
    for (i, j), props in sty.ctx.items():
        css.iat[i, j] = "; ".join(f"{k}: {v}" for k, v in props)
    if cells.index.nlevels == 1:
        cells.index.name = css.index.name = to_columns
    keep = [n for n in cells.index.names if n != to_columns]
    order_cols = list(dict.fromkeys(cells.index.get_level_values(to_columns)))

    def reshape(frame: pd.DataFrame) -> pd.DataFrame:
        wide = frame.rename_axis(columns="method").stack().unstack(to_columns)
        if not keep:   # one level: the methods become the rows
            return wide.reindex(index=pd.Index(frame.columns, name="method"), columns=order_cols)
        groups = dict.fromkeys(frame.index.droplevel(to_columns))
        rows = [(*(k if isinstance(k, tuple) else (k,)), m) for k in groups for m in frame.columns]
        return wide.reindex(index=pd.MultiIndex.from_tuples(rows, names=[*keep, "method"]), columns=order_cols)

    cells2, css2 = reshape(cells), reshape(css).fillna("")
    cells2.columns.name = None
    out = cells2.style.apply(lambda _: css2.set_axis(cells2.columns, axis=1), axis=None)
    import hashlib

    uid = hashlib.sha1("|".join(map(str, [caption, cells2.to_numpy().tolist()])).encode()).hexdigest()[:8]
    return out.set_uuid(f"c{uid}").set_table_attributes('class="dataframe calad-table"').set_caption(caption)
