"""environment.yml and pyproject.toml must ask for the same packages."""
from __future__ import annotations

import re
import tomllib

import yaml

from calad_lib.paths import repo_root


def _name(req: str) -> str:
    return re.split(r"[<>=!\[ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_matches_pyproject():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("book", "distributed", "dev"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra] if not r.startswith("calad")}
    env = yaml.safe_load((repo_root() / "environment.yml").read_text())
    have = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            have |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
        else:
            have.add(_name(dep.split("=")[0] if "=" in dep and ">" not in dep else dep))
    wanted = {"dask" if w == "dask" else w for w in wanted}
    assert wanted - have == set(), f"missing from environment.yml: {sorted(wanted - have)}"
    # torch pins must agree exactly
    pins = [r for r in project["dependencies"] if r.startswith(("torch==", "torchvision=="))]
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pins) == sorted(r for r in pip_list if r.startswith(("torch==", "torchvision==")))
