"""Each thing done once: a task file read once per load and its text the one scored, scorers
built once and handed to the grader, the trust and variant check run once per use, and the
criterion context carrying the loaded suite (spelling never reloads it from disk)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness import criteria
from harness.suite import loader
from harness.suite.loader import load_suite
from tests.conftest import SUITE_YAML, write_suite


def count_builds(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every scorer built, by criterion type."""
    builds: Counter[str] = Counter()
    get = criteria.get

    def counted_get(name: str) -> Any:
        factory = get(name)

        def build(**params: Any) -> Any:
            builds[name] += 1
            return factory(**params)

        return build

    monkeypatch.setattr(criteria, "get", counted_get)
    return builds


def test_the_grader_scores_with_the_scorers_the_suite_built(
    mini_suite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.grading.grader import Grader

    builds = count_builds(monkeypatch)
    suite = load_suite(mini_suite)
    assert builds == Counter({"empty": 1, "repetition": 1, "contains": 1, "exact": 1})
    for _ in range(2):
        grader = Grader(suite)
        assert [s for _, _, s in grader.scorers] == [
            suite.scorers[c.id] for _, c in suite.criteria()
        ]
        graded = grader(["textwrap", "no idea"], suite.cases[:2])
        assert [g for g, _ in graded] == ["better", "bad"]
    assert sum(builds.values()) == 4


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
