"""The shape of the library: no import circles, imports at the top, short notebook cells, a README that agrees."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "calad_lib"
#: what a function may import lazily: optional dependencies (extras), and heavy paths taken only on request
OPTIONAL = {"IPython", "papermill", "nbclient", "nbformat", "jupytext", "dask", "torchvision"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _target(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                tgt = _target(name, path, node)
                for alias in node.names:
                    sub = f"{tgt}.{alias.name}"
                    dep = sub if sub in mods else tgt
                    if dep in mods and dep != name:
                        graph[name].add(dep)
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in mods and a.name != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_circle():
    graph = _graph()
    assert len(graph) > 60
    assert _cycles(graph) == []
    # the detector of a test: a planted circle is found
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_sit_at_the_top_except_optional_ones():
    lazy = []
    for name, path in _modules().items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    tops = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    tops = ["calad_lib"] if node.level else [(node.module or "").split(".")[0]]
                else:
                    continue
                lazy += [f"{name}.{fn.name}: {t}" for t in tops if t not in OPTIONAL]
    assert lazy == []


def test_foundations_do_not_import_the_chapters_or_the_tooling():
    chapters = ("calad_lib.detection", "calad_lib.localization", "calad_lib.uncertainty", "calad_lib.eap",
                "calad_lib.open_questions", "calad_lib.tooling")
    foundations = ("calad_lib.data", "calad_lib.synthesis", "calad_lib.nets", "calad_lib.losses", "calad_lib.train",
                   "calad_lib.calibration", "calad_lib.perturbation", "calad_lib.metrics", "calad_lib.runs",
                   "calad_lib.theory", "calad_lib.scoring")
    graph = _graph()
    wrong = [f"{m} -> {d}" for m, deps in graph.items() if m.startswith(foundations)
             for d in deps if d.startswith(chapters)]
    assert wrong == []
    # chapter packages do not import one another (open questions reads two chapters' results by design)
    crossing = [f"{m} -> {d}" for m, deps in graph.items() for d in deps
                if m.startswith(chapters[:4]) and d.startswith(chapters[:4]) and m.split(".")[1] != d.split(".")[1]]
    assert crossing == []


def _cells(md: Path):
    text = md.read_text()
    for m in re.finditer(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S):
        body = m.group(1)
        yield text[:m.start()].count("\n") + 1, body


@pytest.mark.parametrize("md", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md")), ids=lambda p: p.stem)
def test_chapter_cells_are_short_and_hold_no_run_loops(md):
    long, loops = [], []
    for line, body in _cells(md):
        code = [l for l in body.splitlines() if l.strip() and not l.startswith(":")]
        plotting = "#| label: cell-" in body or "plt.subplots" in body or "savefig(" in body
        if len(code) > 15 and ":tags: [parameters]" not in body and not plotting:
            long.append(f"line {line}: {len(code)} lines")
        if re.search(r"^\s*for .+ in .*\b(configs|plan\(|runs|store)\b", body, re.M) or \
                re.search(r"\b(run_experiment|run_one|store\.write)\(", body):
            loops.append(f"line {line}")
    assert long == [], f"{md.name}: code cells over 15 lines (move the work into calad_lib)"
    assert loops == [], f"{md.name}: run loops belong in the library (calad_lib.runs.run_all)"


def test_the_readme_layout_names_every_package():
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1]
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    missing = [p for p in packages if f"{p}/" not in layout]
    assert missing == [], f"README's layout section does not describe {missing}"
    named = set(re.findall(r"^\s{2,}([a-z_]+)/\s", layout, re.M))
    assert named <= set(packages) | {"calad_lib", "notebooks", "params", "figures", "tests", "benchmarks", "book"}
