"""The shape of the code base: files a person can hold in their head."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 600
# Not the project's code: tests (fixtures run long), and what tools and runs leave in a checkout.
SKIPPED = {"tests", "build", "dist", "runs", "test-artifacts", "__pycache__"}


def code_files() -> list[Path]:
    found = []
    for path in REPO.rglob("*.py"):
        parts = path.relative_to(REPO).parts[:-1]
        if any(p in SKIPPED or p.startswith(".") or p.endswith(".egg-info") for p in parts):
            continue
        found.append(path)
    return sorted(found)


def test_no_code_file_is_over_600_lines() -> None:
    files = code_files()
    assert REPO / "trainers" / "sft.py" in files and REPO / "harness" / "plugin.py" in files
    lengths = {p.relative_to(REPO).as_posix(): len(p.read_text().splitlines()) for p in files}
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines (split by concern): {too_long}"
