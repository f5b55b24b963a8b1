"""The HTML book: staged and rendered offline from the committed notebooks, sound, and drawn by Chromium.

The build uses the notebooks' stored (smoke preset) outputs; nothing is executed. The browser
part opens every page in headless Chromium with name resolution disabled (so any asset that is
not in the book folder fails to load), reads the page's self-check (broken images, web fonts),
and saves a screenshot per page beside the book (``<build>/test-book/book/screenshots/``). With
``CALAD_BOOK=_build/default/book`` the same checks run on a book that ``calad book`` built.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from calad_lib.tooling import book
from calad_lib.paths import build_dir, notebooks_dir

import reader_checks
import site_check

CHROMIUM = shutil.which("chromium") or next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=1500",
]


# ---------------------------------------------------------------- fast unit tests
def test_prune_toc_drops_missing_files_and_empty_parts():
    toc = [
        {"file": "notebooks/00_introduction.md"},
        {"title": "Part A", "children": [{"file": "notebooks/01_a.ipynb"}, {"file": "notebooks/02_b.ipynb"}]},
        {"title": "Part B", "children": [{"file": "notebooks/03_c.ipynb"}]},
        {"file": "notebooks/04_d.ipynb", "children": [{"file": "notebooks/05_e.ipynb"}]},
    ]
    present = {"notebooks/02_b.ipynb", "notebooks/04_d.ipynb"}
    pruned = book.prune_toc(toc, present.__contains__)
    assert pruned == [
        {"title": "Part A", "children": [{"file": "notebooks/02_b.ipynb"}]},
        {"file": "notebooks/04_d.ipynb", "children": []},
    ]
    assert book.toc_files(pruned) == ["notebooks/02_b.ipynb", "notebooks/04_d.ipynb"]
    assert book.toc_files(toc)[0] == "notebooks/00_introduction.md" and len(book.toc_files(toc)) == 6


def test_render_rejects_bad_folders_with_one_line(tmp_path):
    with pytest.raises(book.BookError) as missing:
        book.render(tmp_path / "nowhere", tmp_path / "out", preset="smoke")
    assert "does not exist" in str(missing.value) and "\n" not in str(missing.value)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not a book")
    with pytest.raises(book.BookError) as taken:
        book.render(notebooks_dir(), foreign, preset="smoke")
    assert "not a calad book folder" in str(taken.value) and "\n" not in str(taken.value)
    assert (foreign / "keep.txt").read_text() == "not a book"


def test_check_site_reports_each_kind_of_problem(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "fig.png").write_bytes(b"\x89PNG")
    (tmp_path / "style.css").write_text("@font-face { src: url(fonts/missing.woff2); } b { background: url(build/fig.png); }")
    (tmp_path / "index.html").write_text(
        '<link rel="stylesheet" href="style.css"><h1 id="top">Book</h1>'
        '<a href="ch.html#sec">ok</a> <a href="#top">ok</a> <img src="build/fig.png">'
        '<span class="katex"><annotation>\\hat{\\eta} $x^2$</annotation></span>'
        '<pre>$not_math$ \\(code\\)</pre> <a href="https://example.org">external links are fine</a>'
        '<script>var p = "/work/x.js";</script>')
    (tmp_path / "ch.html").write_text(
        '<h2 id="sec">S</h2><a href="gone.html">x</a> <a href="index.html#nowhere">x</a>'
        '<img src="build/none.png"> <script src="https://cdn.example.org/k.js"></script>'
        '<p>The risk $\\hat{\\eta}$ is left as TeX.</p><pre class="output">saved in /work/main/figures/a.png.</pre>'
        '<span class="katex-error">\\foo</span> <a class="cite cite-missing" href="#sec">?</a>'
        '<figure class="container container-figure"><figcaption>Figure 1: no plot</figcaption></figure>'
        '<figure class="container container-figure"><img src="build/fig.png"></figure>')
    problems = site_check.check_site(tmp_path)
    expected = [
        "ch.html: broken link gone.html",
        "ch.html: broken anchor index.html#nowhere",
        "ch.html: missing image build/none.png",
        "ch.html: <script src> loads from the network: https://cdn.example.org/k.js",
        "ch.html: unrendered math near",
        "ch.html: 1 formula(s) KaTeX could not render",
        "ch.html: 1 figure(s) without an image",
        "ch.html: 1 unresolved cross-reference(s) or citation(s)",
        "ch.html: machine path '/work/main/figures/a.png'",
        "style.css: missing file fonts/missing.woff2",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected), problems
    assert not any(p.startswith("index.html") for p in problems)


# ---------------------------------------------------------------- the book built from the committed notebooks
def _chapters() -> list[Path]:
    return sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def _title(notebook: Path) -> str:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    if nb.get("metadata", {}).get("title"):
        return nb["metadata"]["title"]
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise AssertionError(f"{notebook.name} has no '# title' heading")


def _plain(text: str) -> str:
    """Text as a reader sees it: MyST typesets straight quotes as curly ones."""
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')


def _math_nodes(node: dict) -> int:
    own = 1 if node.get("type") in {"math", "inlineMath"} else 0
    return own + sum(_math_nodes(c) for c in node.get("children", []))


@pytest.fixture(scope="module")
def site():
    """The smoke book rendered from the committed notebooks — or, with ``CALAD_BOOK=_build/default/book``,
    a book that ``calad book`` already built (to check the rendered default book the same way)."""
    chapters = _chapters()
    assert chapters, "no chapter notebooks (notebooks/NN_name.ipynb) to build the book from"
    built = os.environ.get("CALAD_BOOK")
    if built:
        out = Path(built).resolve()
        if not (out / "html" / "index.html").is_file():
            pytest.fail(f"CALAD_BOOK={built} holds no built book (html/index.html); run calad book first")
    else:
        out = build_dir() / "test-book" / "book"
        book.render(notebooks_dir(), out, preset="smoke", quiet=True)
    return out / "html", out / "project" / "_build" / "site", chapters


@pytest.mark.slow
def test_book_builds_offline_and_is_sound(site):
    html_dir, site_json, chapters = site
    assert site_check.check_site(html_dir) == []
    index = (html_dir / "index.html").read_text(encoding="utf-8")
    sidebar = _plain(html.unescape(re.sub(r"<[^>]+>", "", index)))
    for chapter in chapters:   # every chapter is in the sidebar and has its page
        assert _title(chapter) in sidebar, _title(chapter)
    assert 'class="chapter-list"' in index
    pages = sorted(p.name for p in html_dir.glob("*.html"))
    assert len(pages) >= len(chapters) + 1
    numbered = 0
    for page in pages:   # no CDN: every stylesheet and script is a relative file
        text = (html_dir / page).read_text(encoding="utf-8")
        assert not re.search(r'<(link|script)[^>]+(href|src)="(https?:)?//', text), page
        # a figure that embeds a cell shows its plot once: in the numbered figure, not again in the cell
        srcs = re.findall(r'<img [^>]*src="(build/[^"]+)"', text)
        assert len(srcs) == len(set(srcs)), (page, [s for s in srcs if srcs.count(s) > 1][:3])
        numbered += len(re.findall(r'class="caption-number">Figure\s\d+\.\d+', text))
    sources = [p.with_suffix(".md") for p in chapters]
    labelled = sum(s.read_text(encoding="utf-8").count(":::{figure} #cell-") for s in sources if s.exists())
    assert labelled and numbered == labelled, (numbered, labelled)


def _chromium(args: list[str], timeout: float = 90) -> str:
    profile = tempfile.mkdtemp(prefix="calad-chromium-")
    proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return out


def _visit(page: Path, shot: Path) -> dict:
    dom = _chromium(["--dump-dom", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()])
    check = re.search(r'data-selfcheck="([^"]*)"', dom)
    title = re.search(r'<h1 class="page-title">(.*?)</h1>', dom, re.S)
    return {
        "page": page.name,
        "dom": dom,
        "selfcheck": json.loads(html.unescape(check.group(1))) if check else None,
        "title": html.unescape(re.sub(r"<[^>]+>", "", title.group(1))).strip() if title else None,
        "katex": len(re.findall(r'class="katex"', dom)),
        "shot": shot,
    }


@pytest.mark.slow
@pytest.mark.browser
def test_book_renders_in_chromium(site):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make setup installs the Debian package)")
    html_dir, site_json, chapters = site
    shots = html_dir.parent / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    pages = sorted(html_dir.glob("*.html"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        visits = list(pool.map(lambda p: _visit(p, shots / f"{p.stem}.png"), pages))
    by_page = {v["page"]: v for v in visits}

    for v in visits:
        assert v["dom"].strip(), f"chromium returned no DOM for {v['page']}"
        assert v["selfcheck"] is not None, f"{v['page']}: the page script did not run"
        assert v["selfcheck"]["brokenImages"] == [], (v["page"], v["selfcheck"])
        assert v["selfcheck"]["fontErrors"] == [], (v["page"], v["selfcheck"])
        assert v["shot"].is_file() and v["shot"].stat().st_size > 5000, f"no screenshot of {v['page']}"
        assert v["selfcheck"]["overflowingMath"] == [], (v["page"], "equations wider than the column",
                                                         v["selfcheck"]["overflowingMath"])

    titles = {_plain(v["title"] or "") for v in visits}
    for chapter in chapters:
        assert _title(chapter) in titles, f"no page titled {_title(chapter)!r}"

    # at least one figure: an <img> whose file is in the book and that the browser decoded
    figures = [v["page"] for v in visits if v["selfcheck"]["images"] > 0]
    assert figures, "no page shows a figure"
    for v in visits:
        for src in re.findall(r'<img [^>]*src="([^"]+)"', v["dom"]):
            assert (html_dir / html.unescape(src)).is_file(), (v["page"], src)

    # every formula of the sources is rendered by KaTeX, and the math fonts load
    config = json.loads((site_json / "config.json").read_text(encoding="utf-8"))
    index_slug = config["projects"][0]["index"]
    for content in (site_json / "content").glob("*.json"):
        doc = json.loads(content.read_text(encoding="utf-8"))
        expected = _math_nodes(doc["mdast"])
        page = "index.html" if doc["slug"] == index_slug else f"{doc['slug']}.html"
        assert by_page[page]["katex"] >= expected, (page, by_page[page]["katex"], expected)
        if expected:
            assert by_page[page]["selfcheck"]["katexFontsLoaded"] > 0, (page, by_page[page]["selfcheck"])
    assert sum(v["katex"] for v in visits) > 0, \
        "no page has math: write formulas as $...$ or {math} so that KaTeX renders them"


@pytest.mark.slow
def test_the_reader_meets_html_tables_captioned_figures_and_no_noise(site):
    """No text tables, progress bars, stderr, over-wide output lines or empty boxes; every plot in a
    captioned figure with a real alt text; no TeX left as text; every citation from the bibliography."""
    html_dir, _, _ = site
    table = reader_checks.counts(html_dir)
    bad = {page: {k: n for k, n in c.items() if n} for page, c in table.items() if any(c.values())}
    detail = [f"{page}: {kinds} e.g. {reader_checks.examples(html_dir / page, next(iter(kinds)))}"
              for page, kinds in bad.items()]
    assert not bad, "what a reader meets:\n" + reader_checks.format_counts(table) + "\n" + "\n".join(detail)


def test_reader_checks_count_each_kind_of_noise(tmp_path):
    page = tmp_path / "p.html"
    page.write_text(
        '<article><p>The estimate η_{k+1} (Benjamini and Hochberg, 1995) and <a class="cite">Vercruyssen et al., 2018</a>'
        '<span class="katex">e^{g(z)}</span></p>'
        '<div class="cell-outputs"><pre class="output output-text">  a   b   c\n  1   2   3\n  4   5   6\n</pre></div>'
        '<div class="cell-outputs"><pre class="output output-stream stderr">train:  40%|████      | 4/10 [00:01&lt;00:02, 3.1it/s]</pre></div>'
        f'<div class="cell-outputs"><pre class="output output-text">{"x" * 95}</pre></div>'
        '<div class="cell-outputs"></div>'
        '<figure class="container-figure"><img src="build/a.png" alt="&lt;Figure size 640x480 with 1 Axes&gt;">'
        '<figcaption>Figure 1: a plot</figcaption></figure>'
        '<div class="cell-outputs"><div class="output output-image"><img src="build/b.png" alt="SVDD scores"></div></div>'
        '<a class="cite cite-missing">x</a></article>', encoding="utf-8")
    c = reader_checks.page_counts(page)
    assert c == {"text_tables": 1, "progress": 1, "stderr": 1, "wide_lines": 1, "empty_outputs": 1,
                 "uncaptioned": 1, "bad_alt": 1, "raw_tex": 1, "plain_cites": 1, "unresolved": 1}, c


def test_papermill_values_replace_the_smoke_parameters_cell():
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "preset = 'smoke'"},
             {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "preset = 'default'"},
             {"cell_type": "code", "metadata": {}, "source": "x = 1"}]
    kept = book._without_replaced_parameters(cells)
    assert [c["source"] for c in kept] == ["preset = 'default'", "x = 1"]
    committed = [cells[0], cells[2]]            # a notebook papermill did not run keeps its own cell
    assert book._without_replaced_parameters(committed) == committed


def test_cells_that_only_record_numbers_are_folded():
    rec = {"cell_type": "code", "source": 'calad.record("a", x)\ncalad.record("b", {\n    "c": y})\n'}
    mixed = {"cell_type": "code", "source": 'calad.record("a", x)\nprint(x)\n'}
    assert book._records_only(rec) and not book._records_only(mixed)
    assert not book._records_only({"cell_type": "markdown", "source": "calad.record("})
