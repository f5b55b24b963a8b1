"""Render the HTML book offline from executed notebooks, and check the result.

:func:`render` stages a MyST project (``myst.yml``, ``references.bib``, the plain MyST pages of
``notebooks/`` and the executed ``.ipynb`` files), drops the table-of-contents entries whose
files do not exist yet, and runs ``myst build --html``. MyST's default theme downloads itself;
``myst.yml`` instead names the local site template ``book/theme`` whose ``render.mjs`` turns
MyST's site JSON into static pages (KaTeX math, notebook outputs, figures as files), so the
build needs no network. :func:`check_site` lists what is broken in a rendered folder: links,
images, assets loaded from the network, math left as TeX, machine paths in the text.

Layout of ``out_dir``::

    out_dir/project/            the staged MyST project (and MyST's _build/site JSON)
    out_dir/html/               the book: index.html, one page per chapter, build/ (figures), _static/
    out_dir/myst.log            MyST's full log of the last build
    out_dir/render-status.json  the renderer's report: pages, assets, warnings or the error
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

import yaml

from .paths import figures_dir, relative, repo_root

__all__ = ["BookError", "render", "check_site", "prune_toc", "toc_files"]

_MARKER = ".calad-book"
_CLOSED_PORT = "http://127.0.0.1:9"   # discard port: any attempted download fails at once
_TIMEOUT_S = 600      # the whole build; a book of ten chapters takes seconds
_EXIT_GRACE_S = 15    # how long MyST may linger once the renderer has written its status


class BookError(RuntimeError):
    """The book cannot be built; the message says why and what to do."""


# ---------------------------------------------------------------- table of contents
def toc_files(toc: list[dict]) -> list[str]:
    """Every ``file`` named in a MyST table of contents, in order."""
    files: list[str] = []
    for entry in toc or []:
        if "file" in entry:
            files.append(entry["file"])
        files.extend(toc_files(entry.get("children", [])))
    return files


def prune_toc(toc: list[dict], exists: Callable[[str], bool]) -> list[dict]:
    """``toc`` without the entries whose file fails ``exists(file)``; parts left empty are dropped."""
    kept = []
    for entry in toc or []:
        entry = dict(entry)
        children = prune_toc(entry.get("children", []), exists) if "children" in entry else None
        if "file" in entry and not exists(entry["file"]):
            continue
        if children is not None:
            entry["children"] = children
            if not children and "file" not in entry:
                continue
        kept.append(entry)
    return kept


# ---------------------------------------------------------------- tools
def _myst_command() -> list[str]:
    local = Path(sys.executable).parent / "myst"
    found = str(local) if local.exists() else shutil.which("myst")
    if not found:
        raise BookError("myst (the mystmd package) is not installed; run `make setup`")
    return [found]


def _check_node(theme: Path) -> None:
    node = shutil.which("node")
    if not node:
        raise BookError("Node.js is not installed (the book needs node >= 20); run `make setup`")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if not match or int(match.group(1)) < 20:
        raise BookError(f"the book needs Node.js >= 20, found {version or 'an unknown version'}; install a newer node")
    for package in ("myst-to-html", "katex", "highlight.js", "hast-util-to-html", "markdown-it"):
        if not (theme / "node_modules" / package).is_dir():
            raise BookError(f"the book theme's Node packages are missing ({relative(theme)}/node_modules); run `make setup`")


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / _MARKER).exists():
        raise BookError(f"{relative(out_dir)} exists and is not a calad book folder; choose a new or empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text("calad book build folder: project/ and html/ are rebuilt on every render\n")
    for sub in ("project", "html"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)


# ---------------------------------------------------------------- staging
def _chapter_number(name: str) -> int | None:
    match = re.match(r"(\d+)[_-]", name)
    return int(match.group(1)) if match else None


def _without_replaced_parameters(cells: list[dict]) -> list[dict]:
    """Drop the notebook's own ``parameters`` cell when papermill injected the values that ran after it:
    the reader sees the values of this run once, in the injected cell, not the smoke defaults beside them."""
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in cells]
    if not any("injected-parameters" in t for t in tags):
        return cells
    return [c for c, t in zip(cells, tags) if "parameters" not in t or "injected-parameters" in t]


def _records_only(cell: dict) -> bool:
    """A code cell that only records numbers for the regression test (``calad.record(...)`` calls)."""
    if cell.get("cell_type") != "code":
        return False
    source = "".join(cell.get("source", []))
    statements = [ln for ln in source.splitlines() if ln.strip() and not ln.startswith((" ", "\t", ")", "]", "}"))]
    return bool(statements) and all(ln.startswith("calad.record(") for ln in statements)


def _stage_notebook(source: Path, target: Path) -> None:
    """Copy an executed notebook; number its figures, tables and equations by chapter (3.1, 3.2, ...)."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    nb["cells"] = _without_replaced_parameters(nb.get("cells", []))
    for cell in nb["cells"]:   # plumbing is there to unfold, not to read first
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if ({"parameters", "injected-parameters"} & set(tags) or _records_only(cell)) and "hide-input" not in tags:
            tags.append("hide-input")
    number = _chapter_number(source.name)
    meta = nb.setdefault("metadata", {})
    if number and "numbering" not in meta:
        meta["numbering"] = {"enumerator": f"{number}.%s"}
    target.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")


def _stage(executed_dir: Path, project: Path, theme: Path) -> list[str]:
    root = repo_root()
    config_file = root / "myst.yml"
    if not config_file.exists():
        raise BookError(f"{relative(config_file)} is missing; the book's table of contents lives there")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    proj = config.get("project", {})

    def source_of(file: str) -> Path | None:
        name = Path(file).name
        if name.endswith(".ipynb"):
            candidate = executed_dir / name
            return candidate if candidate.is_file() else None
        for candidate in (executed_dir / name, root / file):
            if candidate.is_file():
                return candidate
        return None

    toc = prune_toc(proj.get("toc", []), lambda f: source_of(f) is not None)
    files = toc_files(toc)
    if not any(f.endswith(".ipynb") for f in files):
        raise BookError(f"no chapter to render: none of myst.yml's notebooks is in {relative(executed_dir)}; "
                        "run `calad run all` first")
    project.mkdir(parents=True)
    if "file" not in toc[0]:   # MyST needs a page first: a title page when the introduction is absent
        title = proj.get("title", "calad")
        text = proj.get("description", "")
        (project / "index.md").write_text(f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\n"
                                          f"short_title: About the book\n---\n\n{text}\n", encoding="utf-8")
        toc.insert(0, {"file": "index.md"})
    for file in files:
        target = project / file
        target.parent.mkdir(parents=True, exist_ok=True)
        source = source_of(file)
        if file.endswith(".ipynb"):
            _stage_notebook(source, target)
        else:
            shutil.copy2(source, target)
    for bib in proj.get("bibliography", []) or []:
        if (root / bib).is_file():
            (project / bib).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / bib, project / bib)
    if figures_dir().is_dir():   # pages may show saved figures through ../figures/...
        (project / "figures").symlink_to(figures_dir(), target_is_directory=True)

    staged = copy.deepcopy(config)
    staged["project"]["toc"] = toc
    staged.setdefault("site", {})["template"] = str(theme)
    (project / "myst.yml").write_text(yaml.safe_dump(staged, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return files


# ---------------------------------------------------------------- build
def _run_myst(project: Path, html_dir: Path, out_dir: Path, env_extra: dict[str, str], quiet: bool) -> dict:
    """Run ``myst build --html`` in ``project``; return the renderer's status (pages, assets, warnings)."""
    log_file, status_file = out_dir / "myst.log", out_dir / "render-status.json"
    status_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in {"BASE_URL", "READTHEDOCS_CANONICAL_URL"}}
    env.update({
        "API_URL": _CLOSED_PORT,                      # MyST's template and DOI service
        "npm_config_registry": _CLOSED_PORT + "/",    # MyST's version check
        "CALAD_BOOK_HTML": str(html_dir),
        "CALAD_BOOK_STATUS": str(status_file),
        **env_extra,
    })
    start = time.monotonic()
    rendered_at = None
    with open(log_file, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(_myst_command() + ["build", "--html"], cwd=project, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if rendered_at is None and status_file.exists():
                    rendered_at = now
                if rendered_at is not None and now - rendered_at > _EXIT_GRACE_S:
                    break   # rendered, but MyST lingers (it does when a render command fails)
                if now - start > _TIMEOUT_S:
                    raise BookError(f"myst build did not finish in {_TIMEOUT_S} s; see {relative(log_file)}")
                time.sleep(0.05)
        finally:
            try:   # MyST's content server lives in its process group: leave nothing running
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    output = log_file.read_text(encoding="utf-8", errors="replace")
    lines = [ln.strip() for ln in output.splitlines()]
    myst_problems = [ln for ln in lines if ln.startswith(("⛔", "⚠")) and "extra key ignored" not in ln]
    status = json.loads(status_file.read_text(encoding="utf-8")) if status_file.exists() else None
    if status is None:
        before_versions = output.split("Myst CLI Versions")[0].splitlines()
        last = myst_problems[-1] if myst_problems else next(
            (ln.strip() for ln in reversed(before_versions) if ln.strip()), "no output")
        raise BookError(f"myst build failed ({last}); full log in {relative(log_file)}")
    if not status.get("ok"):
        raise BookError(f"the book renderer failed ({status.get('error')}); full log in {relative(log_file)}")
    if not quiet:
        for line in myst_problems + [f"warning: {w}" for w in status.get("warnings", [])]:
            print(f"[book] {line}", file=sys.stderr)
    return status


def render(executed_dir: Path, out_dir: Path, *, preset: str, quiet: bool = False) -> Path:
    """Build the HTML book from the executed notebooks in ``executed_dir``; return ``out_dir/html/index.html``.

    Table-of-contents entries of ``myst.yml`` whose files are absent are left out. Nothing is
    executed and nothing is downloaded; the build takes seconds.
    """
    from .provenance import git_commit, run_date

    executed_dir, out_dir = Path(executed_dir).resolve(), Path(out_dir).resolve()
    theme = repo_root() / "book" / "theme"
    if not executed_dir.is_dir():
        raise BookError(f"{relative(executed_dir)} does not exist; run `calad run all --preset {preset}` first")
    if not (theme / "template.yml").is_file():
        raise BookError(f"the book theme is missing ({relative(theme)}/template.yml)")
    _myst_command()
    _check_node(theme)
    _prepare_out_dir(out_dir)
    project, html_dir = out_dir / "project", out_dir / "html"
    _stage(executed_dir, project, theme)
    _run_myst(project, html_dir, out_dir,
              {"CALAD_BOOK_PRESET": preset, "CALAD_BOOK_COMMIT": git_commit(), "CALAD_BOOK_DATE": run_date()},
              quiet)
    index = html_dir / "index.html"
    if not index.is_file():
        raise BookError(f"myst build wrote no {relative(index)}; full log in {relative(out_dir / 'myst.log')}")
    return index


# ---------------------------------------------------------------- checks
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_SKIP_TEXT = {"pre", "code", "script", "style", "textarea", "math", "svg"}
_UNRENDERED = [
    re.compile(r"(?<![\w$])\$\$?[^$\n]{0,300}?(\\[A-Za-z]+|[\^_{}])[^$\n]{0,300}?\$"),   # $\alpha$, $x^2$
    re.compile(r"\\\(|\\\[|\\begin\{|\\frac\{|\\mathbb\{"),
]
_MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|tmp|home/[^/\s]+|root|Users/[^/\s]+)/[\w.\-/]+")


class _Page(HTMLParser):
    """Collect ids, references and visible text (outside code and rendered math) of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []
        self.text: list[str] = []       # visible prose: outside code, outputs and rendered math
        self.all_text: list[str] = []   # everything a reader sees, code and outputs included
        self.katex = 0
        self.katex_errors = 0
        self.unresolved = 0
        self.figures = 0
        self.empty_figures = 0
        self._open_figures: list[bool] = []   # one entry per open <figure>: has it shown an image yet?
        self._stack: list[tuple[str, bool, bool]] = []

    def _skipping(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]

    def _hidden(self) -> bool:
        return bool(self._stack) and self._stack[-1][2]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if "katex" in classes:
            self.katex += 1
        if "katex-error" in classes:
            self.katex_errors += 1
        if "unresolved" in classes or "cite-missing" in classes:
            self.unresolved += 1
        if tag == "figure" and "container-figure" in classes:
            self.figures += 1
            self._open_figures.append(False)
        if tag in {"img", "svg"} and self._open_figures:
            self._open_figures[-1] = True
        for attr in ("href", "src"):
            if a.get(attr) is not None and tag in {"a", "img", "link", "script", "source", "iframe", "embed"}:
                self.refs.append((tag, attr, a[attr]))
        if tag not in _VOID:
            skip = self._skipping() or tag in _SKIP_TEXT or any(c.startswith("katex") for c in classes)
            hidden = self._hidden() or tag in {"script", "style"}
            self._stack.append((tag, skip, hidden))

    def handle_endtag(self, tag):
        if tag == "figure" and self._open_figures:
            self.empty_figures += not self._open_figures.pop()
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data):
        if not self._skipping():
            self.text.append(data)
        if not self._hidden():
            self.all_text.append(data)


def _parse(file: Path) -> _Page:
    page = _Page()
    page.feed(file.read_text(encoding="utf-8", errors="replace"))
    page.close()
    return page


def check_site(html_dir: Path) -> list[str]:
    """Problems in a rendered book folder, one line each (empty when the book is sound).

    Looks for: links to missing pages, files or anchors; images, stylesheets, scripts and fonts
    that are missing or would be loaded from the network; TeX left unrendered ($…$, \\( … \\));
    KaTeX errors; unresolved references and citations; figures without an image; machine paths (/work/…, /tmp/…) in the
    visible text, code and outputs.
    """
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        return [f"{html_dir.name}: no index.html"]
    problems: list[str] = []
    pages = {f.resolve(): _parse(f) for f in sorted(html_dir.rglob("*.html"))}
    css_files: set[Path] = set()
    for file, page in pages.items():
        name = file.relative_to(html_dir).as_posix()
        for tag, attr, value in page.refs:
            url = urlsplit(value)
            if url.scheme in {"http", "https"} or value.startswith("//"):
                if tag != "a":
                    problems.append(f"{name}: <{tag} {attr}> loads from the network: {value}")
                continue
            if url.scheme in {"mailto", "data", "javascript"}:
                continue
            if url.scheme == "file" or value.startswith("/"):
                problems.append(f"{name}: absolute link {value} (the book must be relocatable)")
                continue
            target = (file.parent / unquote(url.path)).resolve() if url.path else file
            if url.path and not target.exists():
                kind = "missing image" if tag == "img" else "broken link"
                problems.append(f"{name}: {kind} {value}")
                continue
            if target.suffix == ".css":
                css_files.add(target)
            if url.fragment and target.suffix == ".html":
                other = pages.get(target)
                if other is not None and unquote(url.fragment) not in other.ids:
                    problems.append(f"{name}: broken anchor {value}")
        text = " ".join(page.text)
        for pattern in _UNRENDERED:
            hit = pattern.search(text)
            if hit:
                snippet = text[max(0, hit.start() - 20): hit.end() + 20].replace("\n", " ")
                problems.append(f"{name}: unrendered math near {snippet.strip()!r}")
                break
        if page.katex_errors:
            problems.append(f"{name}: {page.katex_errors} formula(s) KaTeX could not render")
        if page.empty_figures:
            problems.append(f"{name}: {page.empty_figures} figure(s) without an image (a figure directive "
                            "embeds a cell that showed no plot)")
        if page.unresolved:
            problems.append(f"{name}: {page.unresolved} unresolved cross-reference(s) or citation(s)")
        machine = _MACHINE_PATH.search(" ".join(page.all_text))
        if machine:
            problems.append(f"{name}: machine path {machine.group(0).rstrip('.')!r} in the text")
    for css in sorted(css_files):
        for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", css.read_text(encoding="utf-8", errors="replace")):
            if ref.startswith(("data:", "#")):
                continue
            if re.match(r"(https?:)?//", ref):
                problems.append(f"{css.relative_to(html_dir).as_posix()}: loads from the network: {ref}")
            elif not (css.parent / unquote(urlsplit(ref).path)).exists():
                problems.append(f"{css.relative_to(html_dir).as_posix()}: missing file {ref}")
    return problems
