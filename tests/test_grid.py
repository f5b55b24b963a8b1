"""The grid of detection experiments: thesis tables, planning, tables, claims, Dask and resume after SIGKILL."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

import calad_lib as calad
from calad_lib import detection as G
from calad_lib.detection.claims import claims
from calad_lib.detection.experiment import METHOD_LABELS, THESIS_METHODS
from calad_lib.paths import repo_root
from calad_lib.runs import ResultStore

METRIC_COLS = ["auroc", "auroc_perturbed", "kappa", "ece", "mce", "ece_oe", "mce_spectral", "conformal_fpr",
               "bh_fdr", "bh_power"]


# --- the transcribed thesis tables ------------------------------------------------------------------
def test_thesis_tables_are_complete_and_consistent():
    t = G.thesis_table()
    b = t[t.source_table.str.startswith("B")]
    assert sorted(b.source_table.unique(), key=lambda s: int(s[2:])) == [f"B.{i}" for i in range(1, 17)]
    n_classes = b[b.class_label != "average"].groupby("dataset").class_label.nunique().to_dict()
    assert n_classes == {"fashion_mnist": 10, "cifar10": 10, "mvtec": 15, "mpdd": 6}
    summary = t[t.source_table.isin(["4.1", "4.2"])]
    assert len(summary) == 4 * 4 * 4 * 7 and set(summary.metric) == {"auroc", "auroc_perturbed", "mce", "ece"}
    key = ["dataset", "loss", "metric", "method"]
    avg = b[b.class_label == "average"].set_index(key).value
    auroc = summary[summary.metric.str.startswith("auroc")].set_index(key).value
    assert (avg - auroc.reindex(avg.index)).abs().max() == 0          # Table 4.x AUROC rows = B averages
    mean = b[b.class_label != "average"].groupby(key).value.mean()
    assert (mean - avg.reindex(mean.index)).abs().max() < 0.01        # averages = class means (rounding)
    # spot checks against the text: Table 4.1 Fashion-MNIST SSIM MCE, CIFAR-10 HSC ECE; B.1 ankle boot
    v = t.set_index(["source_table", "dataset", "loss", "class_label", "metric", "method"]).value
    assert v["4.1", "fashion_mnist", "ssim", "average", "mce", "fully_trained"] == 73.10
    assert v["4.1", "cifar10", "hsc", "average", "ece", "beta_spectral"] == 0.12
    assert v["B.1", "fashion_mnist", "svdd", "ankle boot", "auroc_perturbed", "calhead_oe"] == 74.63
    assert v["4.2", "mpdd", "hsc", "average", "ece", "calhead_oe"] == 11.87
    assert v["B.9", "mvtec", "svdd", "metal nut", "auroc_perturbed", "platt_oe"] == 94.69


def test_thesis_layouts():
    s = G.thesis_summary("fashion_mnist")
    assert s.shape == (16, 7) and list(s.columns) == [METHOD_LABELS[m] for m in THESIS_METHODS]
    assert s.loc[("logistic", "AUROC"), "β OE"] == 75.38
    c = G.thesis_class_table("fashion_mnist", "svdd", classes=["top", "trouser"])
    assert c.shape == (6, 7)
    assert c.loc[("average", "unperturbed"), "Fully Trained"] == pytest.approx((66.11 + 70.91) / 2)
    with pytest.raises(ValueError, match="no transcribed thesis numbers"):
        G.thesis_table(dataset="imagenet")


# --- planning and validation --------------------------------------------------------------------------
def _params(**overrides) -> dict:
    return dict(calad.config.resolve_params(G.CHAPTER, "smoke", overrides))


def test_plan_expands_and_validates_before_any_work():
    configs = G.plan(_params(classes=[0, "Trouser"], seeds=[0, 1]))
    assert len(configs) == 2 * 4 * 2
    assert {c.normal_class for c in configs} == {0, 1}          # names become ids
    assert {c.loss for c in configs} == {"svdd", "ssim", "logistic", "hsc"}
    with pytest.raises(calad.data.DataError, match="class 12 is not a class of fashion_mnist") as err:
        G.plan(_params(classes=[12]))
    assert "\n" not in str(err.value)


def test_missing_dataset_stops_with_the_loader_message(tmp_path, monkeypatch):
    monkeypatch.setenv("CALAD_DATA", str(tmp_path))
    calad.data.cache_clear()
    with pytest.raises(calad.data.DataNotFound, match="cifar10 not found") as err:
        G.plan(_params(dataset="cifar10"))
    assert "\n" not in str(err.value)
    with pytest.raises(calad.data.DataNotFound, match="mvtec"):
        G.plan(_params(dataset="mvtec", classes=None))
    calad.data.cache_clear()


def test_cli_reports_a_missing_dataset_in_one_line(tmp_path):
    env = {**os.environ, "CALAD_DATA": str(tmp_path), "CALAD_RESULTS": str(tmp_path / "r")}
    out = subprocess.run([sys.executable, "-m", "calad_lib.tooling.cli", "grid", "--preset", "smoke", "-p", "dataset=cifar10"],
                         capture_output=True, text=True, env=env, cwd=repo_root(), timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("calad: error: cifar10 not found") and out.stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


# --- tables and claims on a synthetic results frame ---------------------------------------------------------
def _fake_results(seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for loss in ("svdd", "ssim", "logistic", "hsc"):
        for cls in range(3):
            base = 0.7 + 0.05 * cls
            for m in ("fully_trained", "base", *THESIS_METHODS[1:], "beta_naive_oe", "beta_naive_spectral"):
                a0 = base + (0.02 if m == "fully_trained" else 0.0)
                gain = 0.0 if m == "fully_trained" and loss in ("svdd", "ssim") else 0.01 + 0.01 * rng.random()
                rows.append(dict(dataset="fashion_mnist", loss=loss, normal_class=cls, seed=0, method=m,
                                 auroc=a0, auroc_perturbed=a0 + gain, ece=rng.random() / 10, mce=rng.random(),
                                 cal_a=1.0, base_saturated=0.0))
    df = pd.DataFrame(rows)
    df["kappa"] = calad.metrics.kappa(df.auroc_perturbed, df.auroc)
    df["class_label"] = G.class_labels("fashion_mnist", df.normal_class)
    df["delta"] = df.auroc_perturbed - df.auroc
    return df


def test_summary_and_class_tables_have_the_thesis_layout():
    df = _fake_results()
    s = G.summary_table(df, "fashion_mnist")
    assert s.shape == (16, 7) and list(s.index.get_level_values(0).unique()) == ["svdd", "ssim", "logistic", "hsc"]
    sel = df[(df.loss == "hsc") & (df.method == "platt_oe")]
    assert s.loc[("hsc", "MCE"), "Platt OE"] == pytest.approx(100 * sel.mce.mean())
    c = G.class_table(df, "fashion_mnist", "ssim")
    assert c.shape == (8, 7) and c.index[0] == ("pullover", "unperturbed") and c.index[-1] == ("average", "perturbed")
    both = G.side_by_side(s, G.thesis_summary("fashion_mnist"))
    assert both.shape == (48, 7)
    row = both.loc[("svdd", "AUROC")]
    assert row.loc["ours − thesis", "CalHead OE"] == pytest.approx(row.loc["ours", "CalHead OE"] - 74.73)


def test_reader_tables_keep_the_thesis_numbers_and_fit_the_column():
    df = _fake_results()
    ours, thesis = G.table_4_1(df, "fashion_mnist")
    assert ours.shape == thesis.shape == (16, 7)
    assert thesis.loc[("svdd", "AUROC"), "CalHead OE"] == pytest.approx(74.73)
    sty = G.compare_by_method(ours.loc["svdd"], thesis.loc["svdd"], to_columns="metric", caption="svdd")
    cells = sty.data
    assert list(cells.index) == list(ours.columns) and list(cells.columns) == [m for m, _ in G.METRICS]
    # the best method of each thesis row is bold on each side: the thesis' best SVDD AUROC is CalHead OE
    assert "<b>74.7</b>" in cells.loc["CalHead OE", "AUROC"]
    assert sum("/ <b>" in c for c in cells["AUROC"]) == 1
    # the lower calibration error is the better: our smallest ECE is bold
    best_ece = ours.loc[("svdd", "ECE")].idxmin()
    assert cells.loc[best_ece, "ECE"].startswith("<b>")
    html = sty.to_html()
    assert "calad-table" in html and "background-color" in html and sty.to_html() == html
    same_o, same_t = G.same_classes(df, "fashion_mnist")
    assert list(same_o.index.names) == ["loss", "inputs"] and same_o.shape == same_t.shape == (8, 7)
    wide = G.compare_by_method(same_o, same_t, to_columns="inputs", caption="same").data
    assert wide.shape == (28, 2) and wide.index[0] == ("svdd", "Fully Trained")
    b_o, b_t, src = G.appendix_b(df, "fashion_mnist", "ssim", average=False)
    assert src == "B.2" and "average" not in b_o.index.get_level_values(0) and b_o.shape == b_t.shape == (6, 7)


def test_plan_and_preset_descriptions():
    P = _params(classes=[0, 1], losses=["svdd", "hsc"], seeds=[0, 1])
    lines = G.describe_plan(G.plan(P))
    assert lines[0] == "fashion_mnist: 8 experiments = 2 classes x 2 losses x 2 seed(s)"
    assert lines[-1].startswith("8 experiments in all, 10 models each") and max(map(len, lines)) <= 90
    table = G.preset_table({**P, "classes": None, "n_train": None}, P, names=("a", "b"))
    assert table.loc["classes", "a"] == "all (10)" and table.loc["n_train", "a"] == "all (4\u2009500)"
    assert table.loc["classes", "b"] == "0, 1" and not table.isna().any().any()


def test_headline_numbers_are_fractions_per_loss_and_method():
    df = _fake_results()
    h = G.headline(df, "fashion_mnist")
    assert len(h) == 4 * 7 * 5 and h.index.names == ["loss", "method", "metric"]
    sel = df[(df.loss == "ssim") & (df.method == "beta_oe")]
    assert h[("ssim", "beta_oe", "auroc")] == pytest.approx(sel.auroc.mean())
    assert ((h.xs("auroc", level="metric") > 0) & (h.xs("auroc", level="metric") < 1)).all()


def test_claims_verdicts_follow_the_numbers():
    df = _fake_results()
    c = claims(df, "fashion_mnist")
    assert c.loc["C1", "verdict"] == "supported"            # every calibrated model gains 1-2 points
    assert c.loc["C2", "verdict"] == "supported"            # fully trained: gains only for supervised losses
    assert c.loc["C8", "verdict"] == "supported"            # β/Platt equal to the base AUROC by construction
    assert c.loc["C9", "verdict"].startswith("not observable")   # no saturated logits
    worse = df.copy()
    worse.loc[worse.method == "platt_oe", "auroc_perturbed"] -= 0.05
    worse["delta"] = worse.auroc_perturbed - worse.auroc
    assert claims(worse, "fashion_mnist").loc["C1", "verdict"] == "not supported by these runs"
    few = df[df.normal_class == 0]
    assert "not enough evidence" in claims(few, "fashion_mnist").loc["C1", "verdict"]


def test_claims_on_the_thesis_numbers():
    c = claims(G.thesis_frame("fashion_mnist"), "fashion_mnist")
    assert c.loc["C1", "verdict"] == "supported"
    assert c.loc["C2", "verdict"] == "supported"
    assert "C8" not in c.index                          # needs the base model, which the thesis does not report


# --- running: Dask equals local, and SIGKILL + rerun resumes -----------------------------------------------
TINY = dict(classes=[0, 1], losses=["svdd"], seeds=[0], epochs=1, milestones=[], n_train=128, n_calib=128,
            n_test_normal=64, n_test_anomalous=64, n_heldout=64, n_oe=128, head_epochs=1, batch_size=32, threads=1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted local run of the tiny grid, in its own cache and store."""
    root = tmp_path_factory.mktemp("reference")
    mp = pytest.MonkeyPatch()
    mp.setenv("CALAD_CACHE", str(root / "cache"))
    configs = G.plan(_params(**TINY))
    run = G.run_grid(configs, preset="test", store=ResultStore(root / "results"), threads=1, progress=False)
    mp.undo()
    assert run.ran == 2 and run.skipped == 0
    return configs, run.frame()


@pytest.mark.slow
def test_rows_say_whether_the_models_came_from_the_cache(reference, tmp_path, monkeypatch):
    configs, ref = reference
    assert not ref["base_cached"].any() and not ref["fully_trained_cached"].any()     # trained by that run
    cache = tmp_path / "cache"
    monkeypatch.setenv("CALAD_CACHE", str(cache))
    G.run_grid(configs[:1], preset="test", store=ResultStore(tmp_path / "a"), threads=1, progress=False)
    models = sorted((cache / "models").glob("svdd_*.pt"))
    models[0].write_bytes(b"not a model any more")               # one of the two cached models is damaged
    with pytest.warns(calad.runs.CacheWarning, match="unreadable"):
        again = G.run_grid(configs[:1], preset="test", store=ResultStore(tmp_path / "b"), threads=1,
                           progress=False).frame()
    flags = again[["base_cached", "fully_trained_cached"]].drop_duplicates()
    assert len(flags) == 1 and sorted(flags.iloc[0].tolist()) == [False, True]    # what happened, not what existed
    assert (again["base_epoch_seconds"] > 0).all()


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.sort_values(["run_key", "method"]).reset_index(drop=True)
    b = b.sort_values(["run_key", "method"]).reset_index(drop=True)
    assert list(a.run_key) == list(b.run_key) and list(a.method) == list(b.method)
    np.testing.assert_allclose(a[METRIC_COLS].to_numpy(float), b[METRIC_COLS].to_numpy(float), atol=1e-6)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_results(reference, tmp_path, monkeypatch):
    configs, ref = reference
    monkeypatch.setenv("CALAD_CACHE", str(tmp_path / "cache"))   # fresh cache: the workers train themselves
    run = G.run_grid(configs, preset="test", store=ResultStore(tmp_path / "results"), engine="dask", workers=2,
                     threads=1, progress=False)
    assert run.ran == 2 and run.engine == "dask"
    _same(run.frame(), ref)
    again = G.run_grid(configs, preset="test", store=run.store, engine="dask", workers=2, progress=False)
    assert again.ran == 0 and again.skipped == 2


@pytest.mark.slow
def test_sigkill_then_rerun_skips_finished_experiments(reference, tmp_path):
    _, ref = reference
    preset = {**yaml.safe_load((repo_root() / "params/smoke/05_detection.yaml").read_text()), **TINY,
              "preset": "resume", "threads": None, "engine": "local"}
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(preset))
    env = {**os.environ, "CALAD_CACHE": str(tmp_path / "cache"), "CALAD_RESULTS": str(tmp_path / "results"),
           "CALAD_THREADS": "1"}           # honoured by `calad grid`: the rows record it
    cmd = [sys.executable, "-m", "calad_lib.tooling.cli", "grid", "--preset", str(path), "-q"]
    store = tmp_path / "results" / G.CHAPTER / "resume"
    proc = subprocess.Popen(cmd, env=env, cwd=repo_root(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and not list(store.glob("*.json")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in store.glob("*.json")}
    models = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "models").glob("*.pt")}
    assert 1 <= len(finished) <= 2
    out = subprocess.run(cmd, env=env, cwd=repo_root(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    ran, done = map(int, re.search(r"grid: (\d+) run, (\d+) already done", out.stdout).groups())
    assert (ran, done) == (2 - len(finished), len(finished))
    for p, mtime in {**finished, **models}.items():                # neither rewritten nor retrained
        assert p.stat().st_mtime_ns == mtime, p.name
    rows = ResultStore(store).frame()
    _same(rows, ref)
    assert set(rows["threads"]) == {1} and "1 thread(s) per experiment" in out.stdout


# --- the recorded run of the thesis protocol ---------------------------------------------------------------
def test_the_recorded_thesis_run_reads_back_validated_with_its_provenance():
    rec, info = G.recorded.load_recorded("thesis-cpu-class0")
    assert rec["run_key"].nunique() == info["experiments"] == 4 and len(rec) == 4 * len(G.METHODS)
    assert set(rec["epochs"]) == {200} and set(rec["n_calib"]) == {10_000} and set(rec["head_epochs"]) == {200}
    assert set(rec["class_label"]) == {"top"} and set(rec["oe_source"]) == {"photos"}
    assert info["commit"] == rec["commit"].iloc[0] and info["machine"]["cores"] >= 1
    times = G.recorded.epoch_times(rec)
    assert list(times.index) == ["svdd", "ssim", "logistic", "hsc"] and (times["epoch base (s)"] > 0).all()
    # the wall time is the sum of the four experiments' (one process, one after another)
    assert rec.groupby("run_key")["seconds"].first().sum() == pytest.approx(info["seconds"], rel=0.02)
    with pytest.raises(FileNotFoundError, match="no recorded run 'nope'.*thesis-cpu-class0"):
        G.recorded.load_recorded("nope")


def test_grid_epochs_counts_the_thesis_grid():
    p = {"dataset": "fashion_mnist", "extra_datasets": ["cifar10", "mvtec"], "classes": None,
         "losses": ["svdd", "ssim", "logistic", "hsc"], "seeds": [0, 1, 2, 3, 4], "epochs": 200, "per_class_epochs": 300}
    t = G.recorded.grid_epochs(p, datasets={"cifar10": 10, "mvtec": 15})
    assert t.loc["fashion_mnist", "experiments"] == 10 * 4 * 5 and t.loc["fashion_mnist", "network epochs"] == 2 * 200 * 200
    assert t.loc["mvtec", "network epochs"] == 2 * 15 * 4 * 5 * 300
    assert t.loc["all", "network epochs"] == sum(t.loc[d, "network epochs"] for d in ("fashion_mnist", "cifar10", "mvtec"))
