"""JupyterLab is how a contributor edits a chapter: `make lab` opens a chapter's .md as a notebook
paired with its .ipynb. This starts the same server headless on localhost, asks it for a chapter
through the contents API, and stops it."""
from __future__ import annotations

import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from calad_lib.paths import repo_root

JUPYTER = Path(sys.executable).parent / "jupyter"
pytestmark = pytest.mark.skipif(not (JUPYTER.exists() or shutil.which("jupyter")), reason="jupyter not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("lab-home")
    log = open(home / "lab.log", "w")
    proc = subprocess.Popen(
        [str(JUPYTER) if JUPYTER.exists() else "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={repo_root()}",
         "--ServerApp.port_retries=0", "--allow-root"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**__import__("os").environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
             "JUPYTER_CONFIG_DIR": str(home / "config")})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + (home / "lab.log").read_text()[-2000:])
                time.sleep(0.5)
        yield base, token
    finally:
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            import os

            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.slow
def test_a_chapter_md_opens_as_a_notebook_paired_with_its_ipynb(lab):
    base, token = lab
    model = _get(f"{base}/api/contents/notebooks/06_localization.md?type=notebook&content=1", token)
    assert model["type"] == "notebook" and model["format"] == "json"
    nb = model["content"]
    sources = [c["source"] for c in nb["cells"]]
    assert any("calad.setup(" in s for s in sources), "the chapter's set-up cell is missing"
    assert sum(c["cell_type"] == "code" for c in nb["cells"]) >= 5
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "the parameters cell keeps its tag through the server"
    formats = nb["metadata"]["jupytext"]["formats"]
    assert "ipynb" in formats and "md:myst" in formats, f"not paired: {formats}"
    # the paired .ipynb contributes its outputs when the .md is opened
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), "outputs of the .ipynb twin missing"
