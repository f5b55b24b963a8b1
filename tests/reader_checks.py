"""What a reader of the rendered book must not meet, counted per page.

``counts(html_dir)`` returns, for every page, how many of each problem it shows:

=================  ==============================================================================
``text_tables``    text outputs laid out as a table (3+ lines of 3+ columns aligned with spaces)
``progress``       progress-bar text (``42%|████``, ``it/s]``)
``stderr``         stderr output blocks
``wide_lines``     output lines wider than the column (:data:`MAX_CHARS` characters)
``empty_outputs``  output boxes with nothing in them
``uncaptioned``    images outside a captioned figure
``bad_alt``        images whose alt text is empty or matplotlib's ``<Figure size …>``
``raw_tex``        TeX left as text outside KaTeX (``η_{k+1}``, ``e^{g(z)}``, ``\\hat``)
``plain_cites``    author-year citations typed as text instead of resolved from the bibliography
``unresolved``     citations or references that did not resolve
=================  ==============================================================================

Run ``python tests/reader_checks.py _build/default/book/html`` to print the table for a built book.
"""
from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

#: characters of monospace text that fit the book's column (47rem, 0.8rem DejaVu Sans Mono)
MAX_CHARS = 90
KINDS = ("text_tables", "progress", "stderr", "wide_lines", "empty_outputs", "uncaptioned", "bad_alt",
         "raw_tex", "plain_cites", "unresolved")

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_PROGRESS = re.compile(r"\d+%\|[^\n|]*\||\bit/s\]|s/it\]|[█▏▎▍▌▋▊▉]{3,}")
_RAW_TEX = re.compile(r"[_^]\{[^{}\s][^{}]{0,40}\}|\\(?:hat|eta|frac|mathbb|mathcal|sum|log|exp|alpha|epsilon)\b")
_PLAIN_CITE = re.compile(r"\b(?:et al\.|and [A-Z][\w\-]+),?\s\(?(?:19|20)\d{2}[a-z]?\)?")
_DEFAULT_ALT = re.compile(r"^\s*<(Figure|matplotlib)[^>]*>\s*$")


def _columns(line: str) -> int:
    return len([f for f in re.split(r"\s{2,}", line.strip()) if f])


def looks_like_table(text: str) -> bool:
    """Three or more consecutive lines that each split into three or more space-aligned columns."""
    run = 0
    for line in text.splitlines():
        run = run + 1 if _columns(line) >= 3 else 0
        if run >= 3:
            return True
    return False


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, set[str]]] = []
        self.outputs: list[dict] = []        # <pre class="output ..."> and output containers
        self.images: list[dict] = []
        self.prose: list[str] = []           # visible text outside code, outputs, math and citations
        self.unresolved = 0
        self.figures: list[dict] = []

    def _inside(self, cls: str) -> bool:
        return any(cls in c for _, c in self.stack)

    def _tag_inside(self, tag: str) -> bool:
        return any(t == tag for t, _ in self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if "cite-missing" in classes or "unresolved" in classes:
            self.unresolved += 1
        if tag == "figure":
            self.figures.append({"caption": False})
        if tag == "figcaption" and self.figures:
            self.figures[-1]["caption"] = True
        if tag == "img":
            self.images.append({"alt": a.get("alt") or "", "src": a.get("src"), "figure": self.figures[-1] if self.figures else None})
        if self._inside("cell-outputs") and tag in ("pre", "div", "img", "table") and "cell-outputs" not in classes:
            container = next((o for o in reversed(self.outputs) if "container" in o["classes"]), None)
            if container is not None:
                container["children"] += 1
        if tag == "pre" and "output" in classes:
            self.outputs.append({"classes": classes, "text": ""})
        if tag == "div" and "cell-outputs" in classes:
            self.outputs.append({"classes": classes | {"container"}, "text": "", "children": 0})
        if tag not in _VOID:
            self.stack.append((tag, classes))

    def handle_endtag(self, tag):
        if tag == "figure" and self.figures:
            self.figures.pop()
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self.outputs and self._tag_inside("pre") and self._inside("output"):
            for o in reversed(self.outputs):
                if "container" not in o["classes"]:
                    o["text"] += data
                    break
            return
        skip = any(t in ("pre", "code", "script", "style", "math", "svg", "table") or
                   any(k.startswith("katex") or k in ("cite", "cell-outputs", "bibliography") for k in c)
                   for t, c in self.stack)
        if not skip:
            self.prose.append(data)


def page_counts(file: Path) -> dict[str, int]:
    """The problems of one rendered page, by kind."""
    r = _Reader()
    r.feed(file.read_text(encoding="utf-8", errors="replace"))
    r.close()
    texts = [o for o in r.outputs if "container" not in o["classes"]]
    prose = " ".join(r.prose)
    images = [i for i in r.images if "build/" in (i["src"] or "")]   # plots, not the book's own icons
    return {
        "text_tables": sum(looks_like_table(o["text"]) for o in texts),
        "progress": sum(bool(_PROGRESS.search(o["text"])) for o in texts),
        "stderr": sum("stderr" in o["classes"] for o in texts),
        "wide_lines": sum(len(line) > MAX_CHARS for o in texts for line in o["text"].splitlines()),
        "empty_outputs": sum(1 for o in r.outputs if "container" in o["classes"] and not o["children"])
        + sum(1 for o in texts if not o["text"].strip()),
        "uncaptioned": sum(1 for i in images if not (i["figure"] and i["figure"]["caption"])),
        "bad_alt": sum(1 for i in images if not i["alt"].strip() or _DEFAULT_ALT.match(i["alt"])),
        "raw_tex": len(_RAW_TEX.findall(prose)),
        "plain_cites": len(_PLAIN_CITE.findall(prose)),
        "unresolved": r.unresolved,
    }


def counts(html_dir: Path) -> dict[str, dict[str, int]]:
    """:func:`page_counts` of every page of a rendered book."""
    return {f.name: page_counts(f) for f in sorted(Path(html_dir).glob("*.html"))}


def examples(file: Path, kind: str, limit: int = 3) -> list[str]:
    """A few offending snippets of ``kind`` on one page, to make a failure readable."""
    r = _Reader()
    r.feed(file.read_text(encoding="utf-8", errors="replace"))
    texts = [o["text"] for o in r.outputs if "container" not in o["classes"]]
    prose = " ".join(r.prose)
    found: list[str] = []
    if kind == "text_tables":
        found = [t[:120] for t in texts if looks_like_table(t)]
    elif kind == "progress":
        found = [m.group(0) for t in texts for m in [_PROGRESS.search(t)] if m]
    elif kind == "wide_lines":
        found = [ln[:120] for t in texts for ln in t.splitlines() if len(ln) > MAX_CHARS]
    elif kind == "raw_tex":
        found = [prose[max(0, m.start() - 30): m.end() + 10] for m in _RAW_TEX.finditer(prose)]
    elif kind == "plain_cites":
        found = [prose[max(0, m.start() - 30): m.end()] for m in _PLAIN_CITE.finditer(prose)]
    elif kind in ("bad_alt", "uncaptioned"):
        found = [f"{i['src']} alt={i['alt'][:60]!r}" for i in r.images]
    return found[:limit]


def format_counts(table: dict[str, dict[str, int]]) -> str:
    head = ["page"] + [k.replace("_", " ") for k in KINDS]
    rows = [[page] + [str(c[k]) for k in KINDS] for page, c in table.items()]
    rows.append(["total"] + [str(sum(c[k] for c in table.values())) for k in KINDS])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return "\n".join("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
                     for r in [head] + rows)


if __name__ == "__main__":
    print(format_counts(counts(Path(sys.argv[1]))))
