"""The repository stands on its own: the documentation matches the template, and no file points
at anything a clone does not hold."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from template_yaml import http_routes

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONTRACT = DOCS / "contract.md"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# Spelt in pieces so that this file does not hold what it looks for.
_OUTSIDE_REFERENCES = {
    "the word " + "SP" + "EC": re.compile(r"\b" + "SP" + r"EC\b"),
    "a path into " + ".." + "/shared": re.compile(re.escape(".." + "/shared")),
}
_ROUTE_CELL = re.compile(r"`([A-Z]+ /[^`]*)`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCED = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SECTION_REFERENCE = re.compile(r"\bdocs/([\w-]+\.md)(, )?")


def repository_files() -> list[Path]:
    """Every file git tracks, or would track (untracked but not ignored), that exists now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    paths = {ROOT / name for name in listed.split("\0") if name}
    return sorted(path for path in paths if path.is_file())


def text_files() -> dict[Path, str]:
    texts = {}
    for path in repository_files():
        data = path.read_bytes()
        if b"\0" not in data:
            texts[path] = data.decode("utf-8", errors="replace")
    return texts


def headings(markdown: str) -> list[str]:
    return [m[1] for m in _HEADING.finditer(_FENCED.sub("", markdown))]


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in headings(markdown):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return found


def test_the_contract_lists_exactly_the_routes_of_the_template() -> None:
    text = CONTRACT.read_text()
    assert re.search(r"^\| route \| success \| other answers \|$", text, re.MULTILINE)
    documented = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        first_cell = line.strip("|").split("|")[0].strip()
        route = _ROUTE_CELL.match(first_cell)
        if route is not None:
            documented.append(route[1])
    assert len(documented) == len(set(documented)), f"a route is listed twice: {documented}"
    assert set(documented) == set(http_routes())


def test_no_file_refers_to_anything_outside_the_repository() -> None:
    found = []
    for path, text in text_files().items():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for what, pattern in _OUTSIDE_REFERENCES.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_relative_markdown_links_point_at_what_exists() -> None:
    broken = []
    for document in MARKDOWN:
        prose = _INLINE_CODE.sub("", _FENCED.sub("", document.read_text()))
        for target in _LINK.findall(prose):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve()
            where = f"{document.relative_to(ROOT)}: ({target})"
            if not linked.is_relative_to(ROOT) or not linked.exists():
                broken.append(f"{where}: no such file in the repository")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
                broken.append(f"{where}: no such heading")
    assert not broken, "\n".join(broken)


def test_references_to_a_section_of_the_docs_name_a_heading_it_has() -> None:
    """``docs/design.md, Settings`` in a comment: the file exists and has that heading."""
    broken = []
    for path, text in text_files().items():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for reference in _SECTION_REFERENCE.finditer(line):
                document = DOCS / reference[1]
                where = f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                if not document.is_file():
                    broken.append(f"{where}: no docs/{reference[1]}")
                elif reference[2]:
                    rest = line[reference.end() :]
                    if not any(rest.startswith(h) for h in headings(document.read_text())):
                        broken.append(f"{where}: no such heading in docs/{reference[1]}")
    assert not broken, "\n".join(broken)
