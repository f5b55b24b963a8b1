"""Chapter parameters: presets agree with the notebooks, bad values stop with one clear line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

import calad_lib as calad
from calad_lib import config
from calad_lib.paths import notebooks_dir, params_dir


def test_every_schema_has_three_valid_presets():
    chapters = config.chapters()
    assert "01_theory" in chapters
    for ch in chapters:
        for preset in config.PRESETS:
            values = config.load_preset(ch, preset)
            assert values["preset"] == preset, f"{ch}/{preset} must say preset: {preset}"
            config.validate(ch, values)


def _parameters_cell(chapter: str) -> dict:
    nb = json.loads((notebooks_dir() / f"{chapter}.ipynb").read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{chapter}: exactly one cell must be tagged 'parameters'"
    namespace: dict = {}
    exec("".join(cells[0]["source"]), {}, namespace)
    return namespace


@pytest.mark.parametrize("chapter", [c for c in config.chapters() if (notebooks_dir() / f"{c}.ipynb").exists()])
def test_parameters_cell_equals_smoke_preset(chapter):
    cell = _parameters_cell(chapter)
    smoke = config.load_preset(chapter, "smoke")
    assert cell == smoke, f"{chapter}: the parameters cell must hold exactly params/smoke/{chapter}.yaml"


@pytest.mark.parametrize("values, fragment", [
    ({"n_eta": -3}, "'n_eta' = -3 is below the minimum"),
    ({"n_eta": "many"}, "'n_eta' = 'many' is not an integer"),
    ({"n_eta": 2.5}, "is not an integer"),
    ({"temperatures": "hot"}, "'temperatures' = 'hot' is not a list"),
    ({"temperatures": [1.0, -2.0]}, "'temperatures'[1] = -2.0 is below the minimum"),
    ({"bogus": 1}, "unknown parameter 'bogus' for chapter 01_theory"),
    ({"seed": True}, "'seed' = True is not an integer"),
])
def test_bad_values_are_rejected_with_one_line(values, fragment):
    good = config.load_preset("01_theory", "smoke")
    with pytest.raises(config.ParameterError) as err:
        config.validate("01_theory", {**good, **values})
    message = str(err.value)
    assert fragment in message and "\n" not in message
    assert "allowed" in message or "known:" in message


def test_missing_parameter_is_named():
    good = config.load_preset("01_theory", "smoke")
    del good["n_bins"]
    with pytest.raises(config.ParameterError, match="parameter 'n_bins' is missing"):
        config.validate("01_theory", good)


def test_unknown_preset_and_chapter():
    with pytest.raises(config.ParameterError, match="unknown preset 'huge'.*smoke"):
        config.load_preset("01_theory", "huge")
    with pytest.raises(config.ParameterError, match="unknown chapter 'astrology'"):
        config.resolve_chapter("astrology")
    assert config.resolve_chapter("1") == "01_theory"
    assert config.resolve_chapter("01") == "01_theory"
    assert config.resolve_chapter("theory") == "01_theory"


def test_corrupt_preset_file_is_reported(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("n_eta: [1, 2\n")
    with pytest.raises(config.ParameterError, match="not valid YAML"):
        config.load_preset("01_theory", str(bad))


def test_overrides_parse_as_yaml():
    assert config.parse_override("n_eta=101") == ("n_eta", 101)
    assert config.parse_override("temperatures=[1, 3.5]") == ("temperatures", [1, 3.5])
    assert config.parse_override("preset=mine") == ("preset", "mine")
    with pytest.raises(config.ParameterError):
        config.parse_override("n_eta")


def test_setup_rejects_injected_unknown_parameter():
    ns = {**config.load_preset("01_theory", "smoke"), "n_etaa": 3, "np": __import__("numpy")}
    with pytest.raises(config.ParameterError, match="unknown parameter 'n_etaa'"):
        calad.setup("01_theory", ns, quiet=True)


def test_cli_rejects_bad_parameter_before_running(tmp_path):
    env_out = tmp_path / "build"
    proc = subprocess.run([sys.executable, "-m", "calad_lib.tooling.cli", "run", "01", "--preset", "smoke", "-p", "n_eta=-1"],
                          capture_output=True, text=True, env={**__import__("os").environ, "CALAD_BUILD": str(env_out)})
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "n_eta" in lines[0] and "minimum" in lines[0]
    assert not env_out.exists(), "nothing may run (or be written) when a parameter is bad"


def test_schema_files_document_every_parameter():
    for path in (params_dir() / "schema").glob("*.yaml"):
        spec = config.schema(path.stem)              # rules written as {from: <config>.<field>} resolved
        raw = yaml.safe_load(path.read_text())
        for key, rule in spec.items():
            assert "type" in rule, f"{path.name}: {key} needs a type"
            assert raw.get(key, rule).get("doc"), f"{path.name}: {key} needs a doc line of its own"
    for path in (params_dir() / "schema" / "configs").glob("*.yaml"):
        for key, rule in config.config_schema(path.stem).items():
            assert "type" in rule and rule.get("doc"), f"configs/{path.name}: {key} needs a type and a doc line"


def test_a_range_is_written_once_for_the_chapter_and_its_run_configuration():
    """Chapter 05's epochs and the trainer's are one rule: a value the chapter accepts, the trainer accepts."""
    ch = config.schema("05_detection")
    assert ch["epochs"] == {**config.config_schema("train")["epochs"], "doc": ch["epochs"]["doc"]}
    assert ch["lr"]["gt"] == 0 and "min" not in ch["lr"]
    with pytest.raises(config.ParameterError, match="'lr' = 0.0 is not above the bound"):
        config.resolve_params("05_detection", "smoke", {"lr": 0.0})
    with pytest.raises(config.ParameterError, match="TrainConfig 'lr' = 0.0 is not above the bound"):
        calad.train.TrainConfig(loss="svdd", dataset="fashion_mnist", lr=0.0)
