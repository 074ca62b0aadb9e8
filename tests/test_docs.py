"""The repository stands on its own: the documentation matches the template, the settings
model, the file tree and the built code, and no file points at anything a clone does not hold."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from cold_start import build_code, zipped_bytes
from flowsignals.lambdas.settings import Settings
from template_yaml import functions, http_routes, load_template

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONTRACT = DOCS / "contract.md"
OPERATIONS = DOCS / "operations.md"
DESIGN = DOCS / "design.md"
README = ROOT / "README.md"
PACKAGE = ROOT / "functions" / "flowsignals"
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
_NAME = re.compile(r"`([^`]+)`")
_VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]+)")
_FUNCTION_SIZE = re.compile(r"≈(\d+) KB zipped each")


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


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of its level or above, without
    fenced blocks (whose ``#`` lines are no headings)."""
    prose = _FENCED.sub("", markdown)
    found = re.search(rf"^(#+) {re.escape(heading)}$", prose, re.MULTILINE)
    assert found is not None, f"no heading {heading!r}"
    rest = prose[found.end() :]
    end = re.search(rf"^#{{1,{len(found[1])}}} ", rest, re.MULTILINE)
    return rest if end is None else rest[: end.start()]


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the table whose header row starts with ``header``."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith(f"| {header} |")]
    assert len(headers) == 1, f"not one table headed {header!r}"
    start = headers[0]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def keyed_rows(text: str, header: str) -> dict[str, list[str]]:
    """The table's rows by the one `name` of their first cell (each name once)."""
    rows = table_rows(text, header)
    keyed = {}
    for row in rows:
        name = _NAME.fullmatch(row[0])
        assert name is not None, f"not one `name`: {row[0]}"
        assert name[1] not in keyed, f"{name[1]} is listed twice"
        keyed[name[1]] = row
    return keyed


def first_column_names(text: str, header: str) -> list[str]:
    """The `names` in the first cells of that table (a cell may name several)."""
    return [name for row in table_rows(text, header) for name in _NAME.findall(row[0])]


def test_operations_lists_exactly_the_template_parameters_with_their_defaults() -> None:
    documented = keyed_rows(section(OPERATIONS.read_text(), "Parameters"), "parameter")
    parameters = load_template()["Parameters"]
    assert set(documented) == set(parameters)
    for name, (_, default, _) in documented.items():
        expected = str(parameters[name].get("Default", ""))
        assert default == (f"`{expected}`" if expected else "empty"), name


def test_operations_lists_exactly_the_template_outputs() -> None:
    documented = first_column_names(section(OPERATIONS.read_text(), "Deploy"), "output")
    assert len(documented) == len(set(documented)), f"an output is listed twice: {documented}"
    assert set(documented) == set(load_template()["Outputs"])


def test_the_alarm_tables_list_exactly_the_template_alarms() -> None:
    alarms = {
        name
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    for document, heading in ((OPERATIONS, "Alarms"), (README, "Operating it")):
        documented = first_column_names(section(document.read_text(), heading), "alarm")
        assert sorted(documented) == sorted(alarms), document.name


def template_environment() -> set[str]:
    """Every variable template.yaml sets on a function (its globals included)."""
    names = set(load_template()["Globals"]["Function"]["Environment"]["Variables"])
    for function in functions().values():
        names |= set(function["Properties"].get("Environment", {}).get("Variables", {}))
    return names


def test_the_settings_table_is_the_settings_model_and_names_what_the_template_sets() -> None:
    text = section(DESIGN.read_text(), "Settings")
    documented = keyed_rows(text, "variable")
    fields = {field.alias: field for field in Settings.model_fields.values()}
    assert set(documented) == set(fields)
    for name, (_, _, default) in documented.items():
        field = fields[name]
        if field.is_required():
            assert default == "required", name
        elif field.default is None:
            assert default == "none", name
        else:
            assert default.strip("`") == str(field.default), name
    unexplained = template_environment() - set(_VARIABLE.findall(text))
    assert not unexplained, f"design.md, Settings does not say what these are: {unexplained}"


def tracked_folders() -> set[Path]:
    """Every folder that holds a file of the repository, as a path relative to the root."""
    folders = set()
    for path in repository_files():
        folders |= set(path.relative_to(ROOT).parents)
    return folders - {Path()}


def layout_entries() -> list[Path]:
    """The paths README's layout names: one per line, nested by two spaces of indentation
    (lines indented to the description column continue the previous one)."""
    text = re.search(r"^## Layout\n+```\n(.*?)^```", README.read_text(), re.M | re.S)
    assert text is not None
    entries: list[Path] = []
    parents: list[Path] = []
    for line in text[1].splitlines():
        indent = len(line) - len(line.lstrip())
        if indent >= 20:
            continue
        depth = indent // 2
        name = line.split()[0]
        path = (parents[depth - 1] if depth else Path()) / name
        parents[depth:] = [path]
        entries.append(path)
    return entries


def test_the_readme_layout_lists_every_folder_and_module_and_only_what_exists() -> None:
    entries = layout_entries()
    missing = [str(entry) for entry in entries if not (ROOT / entry).exists()]
    assert not missing, f"README's layout lists what does not exist: {missing}"
    named = set(entries) | {parent for entry in entries for parent in entry.parents}
    unlisted = tracked_folders() - named
    assert not unlisted, f"README's layout lacks these folders: {sorted(map(str, unlisted))}"
    modules = {p.relative_to(ROOT) for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert modules <= named, f"README's layout lacks these modules: {modules - named}"


def test_the_design_layers_list_exactly_the_package_modules() -> None:
    """Each row of design.md's table: a folder of the package, then its modules, those of a
    subfolder after the subfolder's name (`http/` (`events.py`, ...))."""
    rows = table_rows(section(DESIGN.read_text(), "Layers"), "layer")
    documented = set()
    for layer, modules, _ in rows:
        folder = layer.strip("`")
        subfolder = folder
        for name in _NAME.findall(modules):
            if name.endswith("/"):
                subfolder = folder + name
            else:
                documented.add(subfolder + name)
    assert {row[0].strip("`") for row in rows} == {
        f"{init.parent.name}/" for init in PACKAGE.glob("*/__init__.py")
    }
    modules = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.glob("*/**/*.py")
        if path.name != "__init__.py"
    }
    assert sorted(documented) == sorted(modules)


def test_the_documented_function_size_is_what_sam_build_ships(tmp_path: Path) -> None:
    """Each function ships the whole package as functions/Makefile builds it (sam build runs
    that recipe, then zips the folder): the docs' figure is that zip, to within a fifth."""
    build_code(tmp_path)
    kilobytes = zipped_bytes(tmp_path, (p for p in tmp_path.rglob("*") if p.is_file())) / 1024
    for document in (README, OPERATIONS):
        (documented,) = _FUNCTION_SIZE.findall(document.read_text())
        assert abs(int(documented) - kilobytes) <= kilobytes / 5, (
            f"{document.name} says ≈{documented} KB; the built function zips to {kilobytes:.0f} KB"
        )
