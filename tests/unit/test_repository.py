"""Checks on the repository itself: notebooks, table of contents, pins."""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DOWNLOADS = ("from_pretrained(", "fetch_20newsgroups", "nltk.download", "urlretrieve", "requests.get", "get_file(", "urlopen(")


def cells(path, kind=None):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if kind is None or c["cell_type"] == kind]


def source(cell):
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    for cell in cells(path, "code"):
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            f"{path.name}: a code cell has stored output; clear outputs before committing"
        )
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in nb["metadata"], f"{path.name}: saved widget state belongs to the build, not git"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_chapter_pattern(path):
    code = [source(c) for c in cells(path, "code")]
    markdown = "\n".join(source(c) for c in cells(path, "markdown"))
    assert source(cells(path)[0]).startswith("# "), "the first cell is the title"
    assert "device.setup(" in code[0], "the first code cell prints the hardware (device.setup)"
    assert sum("assert " in c for c in code) >= 3, "claims are proven with asserts"
    assert not [d for d in DOWNLOADS if any(d in c for c in code)], "notebooks never download"
    assert "widgets.Panel(" in "\n".join(code), "every chapter has a widget panel"
    solutions = [c for c in cells(path, "code") if "hide-cell" in c.get("metadata", {}).get("tags", [])]
    assert len(solutions) >= 3 and all("assert" in source(c) for c in solutions), "≥ 3 exercises with checked, hidden solutions"
    # the book's toggle reads "Show solution" (myst-nb's default is "Show code cell content")
    assert all(c["metadata"].get("mystnb", {}).get("code_prompt_show") == "Show solution" for c in solutions), (
        'every hidden solution sets metadata.mystnb.code_prompt_show to "Show solution"'
    )
    assert "## Exercises" in markdown and "## Summary" in markdown
    assert "TODO" not in markdown + "\n".join(code)


def test_every_notebook_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*(notebooks/\S+)", toc))
    assert listed == {f"notebooks/{p.stem}" for p in NOTEBOOKS}


def test_every_requirement_is_pinned_exactly():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    for file in ("requirements.txt", "requirements-data.txt"):
        for line in (ROOT / file).read_text().splitlines():
            line = line.split("#")[0].strip()
            if not line or line.startswith("-e"):
                continue
            name = re.split(r"[<>=!~\[ ]", line)[0].lower().replace("_", "-")
            assert name in pins, f"{name} from {file} has no exact pin in constraints.txt"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


#: "chapter 7", "Chapters 11–15", "ch. 4", "chapters 7 and 8": the numbers a
#: reader is sent to.
CHAPTER_REFERENCE = re.compile(
    r"\b[Cc]hapters? (\d+)(?:\s*(?:[–-]|and|to)\s*(\d+))?|\b[Cc]h\. ?(\d+)(?:[–-](\d+))?"
)


def _prose_files():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        yield path, "\n".join("".join(c["source"]) for c in cells)
    for path in sorted((ROOT / "book").glob("*.md")) + [ROOT / "README.md"]:
        yield path, path.read_text(encoding="utf-8")


def test_every_chapter_reference_points_to_a_written_chapter():
    """A chapter that is not written yet is "a later chapter", never a number.

    The errata's table of corrections still to come names planned chapters
    in a column of bare numbers, which this pattern does not match.
    """
    written = {int(p.name[:2]) for p in NOTEBOOKS}
    dangling = []
    for path, text in _prose_files():
        for match in CHAPTER_REFERENCE.finditer(text):
            numbers = [int(n) for n in match.groups() if n]
            if any(n not in written for n in numbers):
                line = text[: match.start()].count("\n") + 1
                dangling.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}")
    assert not dangling, "references to chapters not written yet:\n" + "\n".join(dangling)


def _is_literal(node):
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _self_evident_asserts(code):
    """Asserts that cannot fail: a comparison of an expression with itself, or
    of a name that the same cell assigned from a literal with another such
    name or a literal (typed data checked against typed data)."""
    tree = ast.parse(code)
    from_literal, from_code = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            (from_literal if _is_literal(node.value) else from_code).update(names)
    typed = from_literal - from_code
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for compare in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            sides = [compare.left, *compare.comparators]
            for a, b in zip(sides, sides[1:]):
                names = [s for s in (a, b) if isinstance(s, ast.Name) and s.id in typed]
                if ast.dump(a) == ast.dump(b):
                    found.append(f"`{ast.unparse(node.test)}` compares {ast.unparse(a)} with itself")
                elif names and all(_is_literal(s) or s in names for s in (a, b)):
                    found.append(f"`{ast.unparse(node.test)}` compares constants typed in the cell")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_assert_compares_a_value_with_itself_or_with_typed_constants(path):
    problems = [
        f"code cell {i}: {problem}"
        for i, cell in enumerate(cells(path, "code"))
        for problem in _self_evident_asserts(source(cell))
    ]
    assert not problems, f"{path.name}: asserts that cannot fail:\n" + "\n".join(problems)


def test_the_self_evident_assert_check_catches_both_kinds():
    assert _self_evident_asserts("x = f()\nassert x == x")
    assert _self_evident_asserts("years = [1, 2]\nlimit = [1, 2]\nassert years == limit")
    assert _self_evident_asserts("n = 5\nassert n == 5")
    assert not _self_evident_asserts("n = f()\nassert n == 5")
    assert not _self_evident_asserts("x = g()\nassert 1e-3 < 1e6 < x")
