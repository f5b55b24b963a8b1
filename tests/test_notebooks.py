"""Committed notebooks: text and .ipynb twins in sync, runnable by papermill, clean outputs."""
from __future__ import annotations

import json
import re

import jupytext
import pytest

from calad_lib.paths import notebooks_dir

SOURCES = sorted(p for p in notebooks_dir().glob("*.md") if "jupytext" in p.read_text()[:400])
NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_text_and_ipynb_twins_are_in_sync(md):
    twin = md.with_suffix(".ipynb")
    assert twin.exists(), f"{md.name} has no .ipynb twin; run `calad refresh {md.stem}`"
    text, paired = jupytext.read(md), jupytext.read(twin)
    assert _cells(text) == _cells(paired), (
        f"{md.name} and {twin.name} differ; edit the .md, then run `calad refresh {md.stem}`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_papermill_ready(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", "papermill needs kernel metadata"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    setup = next(c for c in nb["cells"][nb["cells"].index(tagged[0]) + 1:] if c["cell_type"] == "code")
    assert "calad.setup(" in "".join(setup["source"]), "the cell after 'parameters' must validate them"
    text = json.dumps([[{k: v for k, v in o.get("data", {}).items() if not k.startswith("image/")} | {
        k: v for k, v in o.items() if k != "data"} for o in c.get("outputs", [])] + [c["source"]] for c in nb["cells"]])
    assert not re.search(r"/(work|root|home|tmp)/[A-Za-z0-9_.-]+/", text), "outputs contain a machine path"
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"stored error output in {path.name}"
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), "the twin must hold outputs"
    assert any("NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in nb["cells"]), "no cell is checked by nbval"
