"""Bad input gets one line that names the problem and the fix, before any long work, and nothing
already computed is lost or overwritten (the faults found by a fault-injection run)."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import calad_lib as calad
from calad_lib import config, device
from calad_lib.tooling import cli, runner
from calad_lib.data import DataCorrupted, read_idx, write_idx


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("raw", [".nan", ".inf", "-.inf"])
def test_nan_and_inf_are_rejected_by_validation(raw):
    key, value = config.parse_override(f"lr={raw}")
    with pytest.raises(config.ParameterError, match="not a finite number") as e:
        config.validate("05_detection", {**config.load_preset("05_detection", "smoke"), key: value})
    assert "'lr'" in _one_line(e)
    with pytest.raises(config.ParameterError, match="finite"):
        config.validate("01_theory", {**config.load_preset("01_theory", "smoke"), "temperatures": [1.0, float("nan")]})


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "/tmp/x"])
def test_a_preset_name_cannot_leave_its_folder(name, tmp_path, monkeypatch):
    with pytest.raises(config.ParameterError, match="names a folder"):
        config.load_preset("01_theory", name)
    with pytest.raises(config.ParameterError, match="names a folder"):
        config.validate("01_theory", {**config.load_preset("01_theory", "smoke"), "preset": name})
    monkeypatch.setenv("CALAD_FIGURES", str(tmp_path / "figures"))
    import matplotlib.pyplot as plt

    fig = plt.figure()
    with pytest.raises(ValueError, match="outside"):
        calad.plots.savefig(fig, "x", alt="an empty test figure", preset=name)
    plt.close(fig)
    assert not any(tmp_path.rglob("x.png"))


def test_a_preset_file_elsewhere_is_labelled_by_its_name(tmp_path):
    f = tmp_path / "mine.yaml"
    text = Path(calad.paths.params_dir() / "smoke" / "01_theory.yaml").read_text()
    f.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("preset:")))
    assert config.load_preset("01_theory", str(f))["preset"] == "mine"
    assert config.load_preset("01_theory", str(calad.paths.params_dir() / "smoke" / "01_theory.yaml"))["preset"] == "smoke"


@pytest.mark.parametrize("value", ["bogus", "mps", "cuda:7"])
def test_a_bad_device_is_one_line(value, monkeypatch):
    monkeypatch.setenv("CALAD_DEVICE", value)
    with pytest.raises(device.DeviceError) as e:
        device.get_device()
    assert "CALAD_DEVICE" in _one_line(e) or "CUDA" in _one_line(e) or "GPU" in _one_line(e)


def test_cli_reports_a_bad_device_and_bad_threads_in_seconds(monkeypatch, capsys):
    monkeypatch.setenv("CALAD_DEVICE", "bogus")
    assert cli.main(["run", "01", "--preset", "smoke"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.setenv("CALAD_DEVICE", "cpu")
    monkeypatch.setenv("CALAD_THREADS", "two")
    assert cli.main(["run", "01", "--preset", "smoke"]) == 2
    assert "CALAD_THREADS" in capsys.readouterr().err


def test_grid_workers_and_an_unreachable_scheduler_are_one_line(capsys):
    assert cli.main(["grid", "--preset", "smoke", "--engine", "dask", "--workers", "-1"]) == 2
    assert "at least one worker" in capsys.readouterr().err
    assert cli.main(["grid", "--preset", "smoke", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "no Dask scheduler" in err and err.count("\n") == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupted_fashion_mnist_file_is_named_with_the_fix(tmp_path, damage):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x1f\x8b" + b"not gzip at all")
    with pytest.raises(DataCorrupted) as e:
        read_idx(path)
    assert "train-images-idx3-ubyte.gz" in _one_line(e) and "replace it" in _one_line(e)


@pytest.fixture
def tiny_chapter(tmp_path, monkeypatch):
    """A one-cell chapter 98 whose set-up fails like a missing dataset, in a private params/notebooks tree."""
    import nbformat

    params, notebooks = tmp_path / "params", tmp_path / "notebooks"
    for sub in ("schema", "smoke"):
        (params / sub).mkdir(parents=True)
    (params / "schema" / "98_tiny.yaml").write_text("dataset: {type: str}\nn_bins: {type: int, min: 1}\n")
    (params / "smoke" / "98_tiny.yaml").write_text("dataset: fashion_mnist\nn_bins: 10\n")
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    param_cell = nbformat.v4.new_code_cell("dataset = 'fashion_mnist'\nn_bins = 10")
    param_cell.metadata["tags"] = ["parameters"]
    nb.cells = [param_cell, nbformat.v4.new_code_cell(textwrap.dedent("""
        import os, pathlib
        if dataset != "fashion_mnist":
            raise FileNotFoundError(f"{dataset} not found: expected it in data/; see README 'Data'")
        pathlib.Path(os.environ["CALAD_FIGURES"]).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(os.environ["CALAD_FIGURES"]) / "fig.txt").write_text(os.environ.get("CALAD_OVERRIDES", "-"))"""))]
    nbformat.write(nb, notebooks / "98_tiny.ipynb")
    monkeypatch.setattr(config, "params_dir", lambda: params)
    monkeypatch.setattr(runner, "notebooks_dir", lambda: notebooks)
    monkeypatch.setenv("CALAD_BUILD", str(tmp_path / "_build"))
    monkeypatch.setenv("CALAD_FIGURES", str(tmp_path / "figures"))
    return tmp_path


@pytest.mark.slow
def test_calad_run_reports_the_failing_cells_error_in_one_line(tiny_chapter, capsys):
    assert cli.main(["run", "98", "--preset", "smoke", "-q", "-p", "dataset=cifar10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "98_tiny failed in cell" in err and "FileNotFoundError: cifar10 not found" in err
    assert "partial notebook: " in err and "98_tiny.ipynb" in err


@pytest.mark.slow
def test_a_run_with_overrides_never_replaces_the_presets_figures_or_notebook(tiny_chapter):
    plain = runner.run_chapter("98", "smoke", progress=False)
    assert (tiny_chapter / "figures" / "fig.txt").read_text() == "-"
    changed = runner.run_chapter("98", "smoke", {"n_bins": 5}, progress=False)
    assert changed != plain and plain.exists()
    assert (tiny_chapter / "figures" / "fig.txt").read_text() == "-"          # the preset's figure is intact
    beside = changed.parent.parent / "figures" / "fig.txt"
    assert beside.read_text() == "n_bins=5"                                    # labelled with what changed
    same = runner.run_chapter("98", "smoke", {"n_bins": 10}, progress=False)  # the preset's own value
    assert same == plain
