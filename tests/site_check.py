"""What is broken in a rendered book folder: links, images, assets loaded from the network, math left as TeX,
KaTeX errors, unresolved references, figures without an image, machine paths in the text.

``python tests/site_check.py _build/default/book/html`` prints the problems of a built book.
"""
from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["check_site"]


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


if __name__ == "__main__":
    found = check_site(Path(sys.argv[1]))
    print("\n".join(found) or "no problems")
    sys.exit(1 if found else 0)
