"""The house's layout: each room of harness/ (a package, or a top-level module such as
harness.errors) imports only the rooms its docstring's "May import:" line names and there is no
import circle between rooms (every import counts: module level and inside functions alike); the
README's tree names the files there are; no code file is over 600 lines. That trainers import
only `harness.plugin` is tests/test_trainers.py's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600
# Not the project's code: tests (fixtures run long), and what tools and runs leave in a checkout.
SKIPPED = {"tests", "build", "dist", "runs", "test-artifacts", "__pycache__"}
PACKAGES = sorted(p.parent.name for p in (ROOT / "harness").glob("*/__init__.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every absolute module an import in `path` names (for `from a import b`
    both `a` and `a.b`: b may be a module)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def room(module: str) -> str | None:
    """harness.suite.loader -> "suite"; harness.errors -> "errors"; None outside harness."""
    parts = module.split(".")
    return parts[1] if parts[0] == "harness" and len(parts) > 1 else None


def room_imports() -> list[tuple[str, str, str]]:
    """(room, room it imports, where: file:line) for every import that crosses rooms."""
    modules = {module_name(p): p for p in (ROOT / "harness").rglob("*.py")}
    found = []
    for name, path in sorted(modules.items()):
        here = room(name)
        for line, target in imports_of(path):
            there = room(target)
            if here and there and there != here and target in modules:
                found.append((here, there, f"{path.relative_to(ROOT)}:{line}"))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each circle once, as the path that closes it."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt in path:
                loop = path[path.index(nxt) :] + [nxt]
                if frozenset(loop) not in seen:
                    seen.add(frozenset(loop))
                    found.append(loop)
            else:
                walk(path + [nxt])

    for start in sorted(graph):
        walk([start])
    return found


def declared(package: str) -> set[str] | None:
    """The rooms a package's docstring says it may import; None for "any room"."""
    doc = ast.get_docstring(ast.parse((ROOT / "harness" / package / "__init__.py").read_text()))
    match = re.search(r"May import:(.*?)(?:\n\n|$)", doc or "", re.S)
    assert match, f"harness/{package}/__init__.py: no 'May import:' line in its docstring"
    text = re.sub(r"\(never[^)]*\)|never .*", "", match.group(1), flags=re.S)
    if "any room" in text:
        return None
    return set(re.findall(r"harness\.(\w+)", text))


def test_no_import_circle_between_rooms() -> None:
    graph: dict[str, set[str]] = {}
    for here, there, _ in room_imports():
        graph.setdefault(here, set()).add(there)
    loops = cycles(graph)
    assert not loops, "import circles between rooms: " + "; ".join(" -> ".join(c) for c in loops)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_room_imports_only_what_its_docstring_allows(package: str) -> None:
    allowed = declared(package)
    if allowed is None:
        return
    wrong = [f"{where} imports harness.{there}" for here, there, where in room_imports()
             if here == package and there not in allowed]  # fmt: skip
    assert not wrong, f"harness/{package} may import {sorted(allowed)}: " + "; ".join(wrong)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_room_says_what_it_owns(package: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "harness" / package / "__init__.py").read_text()))
    owned = (doc or "").split("May import:")[0]
    assert len(owned.split()) >= 12, f"harness/{package}/__init__.py: say what the room owns"


def test_the_checks_find_what_they_look_for() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert room("harness.suite.loader") == "suite" and room("harness") is None
    assert ("safe", "errors") in {(h, t) for h, t, _ in room_imports()}


def readme_tree() -> list[str]:
    """The paths the README's file tree names: an entry's name starts before the description
    column, two spaces deeper per level; a folder named without entries below it stands for the
    whole folder."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## File tree", 1)[1].split("```", 2)[1]
    paths: list[str] = []
    stack: list[str] = []
    for line in block.splitlines():
        name = line.strip().split(" ", 1)[0] if line.strip() else ""
        indent = len(line) - len(line.lstrip(" "))
        if not name or indent >= 28:  # blank, or a description running on
            continue
        level = indent // 2
        stack[level:] = [name.rstrip("/")]
        paths.append("/".join(stack))
    return paths


def test_the_readme_tree_names_the_files_there_are() -> None:
    listed = readme_tree()
    missing = [p for p in listed if not (ROOT / p).exists()]
    assert not missing, f"the README's tree names what is not there: {missing}"
    summarized = {p for p in listed if (ROOT / p).is_dir() and not any(
        q.startswith(p + "/") for q in listed)}  # fmt: skip
    unlisted = [
        str(f.relative_to(ROOT))
        for f in sorted((ROOT / "harness").rglob("*.py"))
        if str(f.relative_to(ROOT)) not in listed
        and not any(str(f.relative_to(ROOT)).startswith(s + "/") for s in summarized)
        and not (f.name == "__init__.py" and str(f.parent.relative_to(ROOT)) in listed)
    ]
    assert not unlisted, f"harness files the README's tree leaves out: {unlisted}"
    tops = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"}
    tops -= {"README.md"}
    assert tops - {p.split("/")[0] for p in listed} <= {
        p for p in tops if (ROOT / ".gitignore").exists() and _ignored(p)
    }, "top-level entries the README's tree leaves out"


def _ignored(name: str) -> bool:
    import subprocess

    done = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT)
    return done.returncode == 0


def code_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts[:-1]
        if any(p in SKIPPED or p.startswith(".") or p.endswith(".egg-info") for p in parts):
            continue
        found.append(path)
    return sorted(found)


def test_no_code_file_is_over_600_lines() -> None:
    files = code_files()
    assert ROOT / "trainers" / "sft.py" in files and ROOT / "harness" / "plugin.py" in files
    lengths = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in files}
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines (split by concern): {too_long}"
