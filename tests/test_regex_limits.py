"""Suite regexes that backtrack exponentially: a failed check naming the pattern within the time
limit, never a hang, and the run completes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import criteria
from tests.conftest import SUITE_YAML, FakeBackend, write_suite

EVIL = r"(x+x+)+y"  # backtracks exponentially in `re` and in `regex` alike
TEXT = "x" * 5000


@pytest.fixture(autouse=True)
def _short_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEVAL_REGEX_SECONDS", "0.2")


def run(type_: str, output: str, **params) -> criteria.Result:
    return criteria.get(type_)(**params)([output], [{}])[0]


KEYED = '{"' + TEXT + '": 1}'


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("type_", "params", "output"),
    [
        ("regex", {"pattern": EVIL}, TEXT),
        ("regex", {"pattern": EVIL, "match": "fullmatch"}, TEXT),
        ("filtered-match",
         {"reference": "y", "filters": [{"function": "regex", "regex_pattern": EVIL}]}, TEXT),
        ("filtered-match", {"reference": "y", "regexes_to_ignore": [EVIL]}, TEXT),
        ("json-match", {"schema": {"type": "string", "pattern": EVIL}}, f'"{TEXT}"'),
        ("json-match", {"schema": {"patternProperties": {EVIL: {}}}}, KEYED),
        ("json-match",
         {"schema": {"patternProperties": {EVIL: {}}, "additionalProperties": False}}, KEYED),
    ],
    ids=["search", "fullmatch", "filter-step", "ignored", "schema-pattern",
         "pattern-properties", "additional-properties"],
)  # fmt: skip
def test_a_backtracking_pattern_fails_the_check_in_time(
    type_: str, params: dict, output: str
) -> None:
    result = run(type_, output, **params)
    assert not result.passed and "gave up after 0.2s" in result.detail, result.detail


def test_a_malformed_pattern_is_a_located_problem(tmp_path: Path) -> None:
    from harness.errors import UserError
    from harness.suite.loader import load_suite

    text = SUITE_YAML.replace(
        "  better:\n", "  better:\n    - {id: rx, type: regex, pattern: '(a'}\n"
    )
    with pytest.raises(UserError) as e:
        load_suite(write_suite(tmp_path / "s", text))
    [line] = e.value.lines()
    assert "rubric.better[0]" in line and "invalid regular expression" in line


@pytest.mark.timeout(300)
def test_grading_goes_on_and_the_run_completes(tmp_path: Path, store) -> None:
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation.models import ModelRef
    from harness.suite.loader import load_suite

    text = SUITE_YAML.replace(
        "  better:\n", f"  better:\n    - {{id: rx, type: regex, pattern: '{EVIL}'}}\n"
    )
    suite = load_suite(write_suite(tmp_path / "s", text))
    ref = ModelRef("fake", "fake", tmp_path, "local", "f" * 64)
    result = evaluate_suite(
        suite, ref, store, EvalOptions(progress=False), backend=FakeBackend(lambda _: TEXT)
    )
    assert store.run(result.run_id)["status"] == "complete"
    details = [r["criteria"]["rx"]["detail"] for r in store.results(result.run_id)]
    assert len(details) == 6 and all("gave up" in d for d in details)
