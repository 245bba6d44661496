"""Each thing done once: a task file read once per load and its text the one scored, scorers
built once and handed to the grader, the trust and variant check run once per use, and the
criterion context carrying the loaded suite (spelling never reloads it from disk)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.suite import loader
from harness.suite.loader import load_suite
from tests.conftest import SUITE_YAML, write_suite


def test_spelling_reads_the_loaded_suite_never_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `suite` vocabulary comes from the rows the grader's suite holds: the files edited
    after load change nothing, and nothing loads the suite again."""
    from harness.grading.grader import Grader

    rubric = "rubric:\n  good:\n    - {id: spelled, type: spelling}\n"
    text = SUITE_YAML[: SUITE_YAML.index("rubric:")] + rubric
    folder = write_suite(tmp_path / "s", text, train=[{"function": "zorbulate", "module": "frob"}])
    suite = load_suite(folder)
    write_suite(folder, text, train=[{"function": "quuxify", "module": "frob"}])

    def no_reload(*args: Any) -> Any:
        raise AssertionError("the suite was loaded again")

    monkeypatch.setattr(loader, "load_suite", no_reload)
    case = suite.cases[0]
    (zorb, quux) = Grader(suite)(["It will zorbulate.", "It will quuxify."], [case, case])
    assert zorb[1]["spelled"]["passed"]
    assert not quux[1]["spelled"]["passed"] and "'quuxify'" in quux[1]["spelled"]["detail"]
