"""Paired comparison of stored runs: pairing, transitions, must-pass, fingerprints, formats."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.comparison.compare import compare_rows, compare_runs, decide, resolve_run
from harness.comparison.format import markdown, pct
from harness.errors import UserError
from tests.compare_helpers import answers, fake_run
from tests.conftest import CASES, SUITE_YAML, write_suite


def test_run_with_itself_is_no_significant_change(store, mini_suite):
    run = fake_run(store, mini_suite, "base", answers())
    c = compare_runs(store, run, run)
    assert c.verdict == "no significant change"
    assert c.n == 6
    assert c.transitions["better"]["better"] == 6
    assert sum(sum(row.values()) for row in c.transitions.values()) == 6
    assert c.pass_rate.delta == 0.0 and (c.pass_rate.low, c.pass_rate.high) == (0.0, 0.0)
    assert c.mcnemar == {"b01": 0, "b10": 0, "p_value": 1.0}
    assert c.must_pass_broken == [] and c.warnings == []
    assert c.mde > 0.5  # six cases can only see a huge change, and the comparison says so
    assert "n=6" in c.mde_text()


def test_two_runs_of_the_same_model_agree(store, mini_suite):
    first = fake_run(store, mini_suite, "base", answers())
    second = fake_run(store, mini_suite, "base", answers(), limit=5)  # another run, same model
    c = compare_runs(store, first, second)
    assert c.verdict == "no significant change"
    assert c.unpaired == {"only_a": ["f"], "only_b": []}
    assert any("must-pass case 'f' is missing from run B" in w for w in c.warnings)


def test_transitions_changes_and_deltas(store, mini_suite):
    a = fake_run(store, mini_suite, "base", answers({"a": "no idea", "b": "the json module"}))
    b = fake_run(
        store, mini_suite, "cand", answers({"c": "no idea", "d": "the math module", "e": "x"})
    )
    c = compare_runs(store, a, b)
    grades = {p.case_id: (p.a["grade"], p.b["grade"], p.change) for p in c.pairs}
    assert grades == {
        "a": ("bad", "better", "improved"),
        "b": ("good", "better", "improved"),
        "c": ("better", "bad", "regressed"),
        "d": ("better", "good", "regressed"),
        "e": ("better", "bad", "regressed"),
        "f": ("better", "better", "unchanged"),
    }
    assert c.transitions["bad"]["better"] == 1
    assert c.transitions["better"]["bad"] == 2
    assert c.pass_rate.a == pytest.approx(5 / 6) and c.pass_rate.b == pytest.approx(4 / 6)
    assert c.pass_rate.delta == pytest.approx(-1 / 6)
    assert c.better_rate.delta == pytest.approx(3 / 6 - 4 / 6)
    assert c.mcnemar["b01"] == 1 and c.mcnemar["b10"] == 2
    assert c.mcnemar["p_value"] == pytest.approx(1.0)
    assert c.sign_test == {"improved": 2, "regressed": 3, "p_value": 1.0}
    assert c.verdict == "insufficient evidence"
    assert c.criteria["names-module"].delta == pytest.approx(-1 / 6)
    assert c.criteria["bare"].a == pytest.approx(4 / 6)
    assert c.sections["empty"] == "bad" and c.sections["bare"] == "better"


def test_all_cases_broken_is_a_significant_regression(store, mini_suite):
    a = fake_run(store, mini_suite, "base", answers())
    b = fake_run(store, mini_suite, "broken", lambda prompt: "no idea")
    c = compare_runs(store, a, b)
    assert c.mcnemar == {"b01": 0, "b10": 6, "p_value": pytest.approx(2 / 64)}
    assert c.verdict == "regressed"
    assert c.must_pass_broken == ["f"]
    reverse = compare_runs(store, b, a)
    assert reverse.verdict == "improved" and reverse.must_pass_broken == []


def test_must_pass_broken_alone(store, mini_suite):
    a = fake_run(store, mini_suite, "base", answers())
    b = fake_run(store, mini_suite, "cand", answers({"f": "no idea"}))
    c = compare_runs(store, a, b)
    assert c.must_pass_broken == ["f"]
    assert c.verdict != "regressed"  # one case is no statistical evidence; must-pass still fails


def test_comparison_needs_only_the_store(store, tmp_path):
    """must_pass is recorded with each result: the suite folder may move, change or vanish."""
    suite = write_suite(tmp_path / "moving")
    a = fake_run(store, suite, "base", answers())
    b = fake_run(store, suite, "cand", answers({"f": "no idea"}))
    shutil.rmtree(suite)
    c = compare_runs(store, a, b)
    assert c.must_pass_broken == ["f"] and c.warnings == []


def test_different_suite_fingerprints_are_refused(store, tmp_path):
    one = write_suite(tmp_path / "one")
    two = write_suite(
        tmp_path / "two",
        SUITE_YAML.replace("version: 1", "version: 2"),
        cases=[*CASES, {"id": "g", "function": "sleep", "module": "time"}],
    )
    a = fake_run(store, one, "base", answers())
    b = fake_run(store, two, "cand", answers())
    with pytest.raises(UserError) as e:
        compare_runs(store, a, b)
    text = str(e.value)
    assert "v1 -> mini v2" in text and "--force" in text
    assert "test.jsonl changed" in text and "suite.yaml changed" in text
    assert "train.jsonl" not in text  # unchanged files are not named
    c = compare_runs(store, a, b, force=True)
    assert c.n == 6 and c.unpaired["only_b"] == ["g"]
    assert any("different suites" in w for w in c.warnings)


def test_resolve_run(store, tmp_path):
    suite = write_suite(tmp_path / "mini")
    first = fake_run(store, suite, "base", answers())
    latest = fake_run(store, suite, "base", answers(), limit=3)
    assert resolve_run(store, first) == first
    assert resolve_run(store, latest[:-2]) == latest  # a unique prefix
    assert resolve_run(store, "base") == latest
    assert resolve_run(store, "base", suite="mini") == latest
    with pytest.raises(UserError, match="neither a run id nor a model"):
        resolve_run(store, "nobody")
    with pytest.raises(UserError, match="on suite 'other'"):
        resolve_run(store, "base", suite="other")
    other = write_suite(tmp_path / "other", SUITE_YAML.replace("name: mini", "name: other"))
    fake_run(store, other, "base", answers())
    with pytest.raises(UserError, match="several suites"):
        resolve_run(store, "base")


def test_unknown_runs_and_bad_alpha(store, mini_suite):
    run = fake_run(store, mini_suite, "base", answers())
    with pytest.raises(UserError) as e:
        compare_runs(store, "run-x", "run-y")
    assert len(e.value.lines()) == 2
    with pytest.raises(UserError, match="alpha"):
        compare_runs(store, run, run, alpha=1.5)


def test_json_and_markdown(store, mini_suite):
    a = fake_run(store, mini_suite, "base", answers())
    evil = "<script>alert(1)</script> | `x` **bold**\nsecond line"
    b = fake_run(store, mini_suite, "cand", answers({"c": evil, "d": "the math module"}))
    c = compare_runs(store, a, b)
    data = json.loads(json.dumps(c.to_json()))
    assert data["verdict"] == c.verdict and data["counts"]["regressed"] == 2
    assert data["pass_rate"]["delta"] == pytest.approx(-1 / 6)
    assert {p["case_id"] for p in data["pairs"]} == {x["id"] for x in CASES}
    md = markdown(c)
    assert md.startswith(f"## tuneval compare: {c.verdict}")
    assert "| pass rate (good or better) | 100.0% | 83.3% | -16.7 |" in md
    assert "| **better** | 1 | 1 | 4 |" in md
    assert "### Regressed cases (2)" in md and "Improved cases" not in md
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\| \\`x\\` \\*\\*bold\\*\\*" in md
    row = next(line for line in md.splitlines() if line.startswith("| c |"))
    assert row.count(" | ") == 4  # the output's pipe did not add a column
    assert "names-module" in md and "smallest detectable pass-rate change" in md


def test_a_share_reads_as_in_the_report():
    """The command line's Markdown and tables write a share with the report's one `pct`: halves
    up (56.25 is 56.3, as the report's table columns show it), unknown as a dash."""
    assert pct(0.5625) == "56.3%" and pct(0.0) == "0.0%" and pct(1) == "100.0%"
    assert pct(None) == "—"


def test_compare_rows_hand_computed():
    """Forty cases: 12 fail->pass, 2 pass->fail; McNemar p = 2 * P(X <= 2 | 14, 1/2)."""
    crit = {"ok": {"section": "good", "passed": True, "score": None, "detail": ""}}

    def rows(grades):
        return [
            {"case_id": str(i), "grade": g, "output": g, "criteria": crit}
            for i, g in enumerate(grades)
        ]

    a = ["bad"] * 12 + ["good"] * 2 + ["good"] * 26
    b = ["good"] * 12 + ["bad"] * 2 + ["good"] * 26
    run = {"id": "r", "suite": "s", "suite_version": 1, "model": "m"}
    c = compare_rows(run, run, rows(a), rows(b))
    assert c.mcnemar["p_value"] == pytest.approx(2 * (1 + 14 + 91) / 2**14)
    assert c.verdict == "improved"
    assert c.pass_rate.delta == pytest.approx(10 / 40)
    assert c.pass_rate.low > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0.01, 1.0, 9, 1, 9, 1, 0.3), "improved"),
        ((0.01, 1.0, 1, 9, 1, 9, 0.3), "regressed"),
        ((1.0, 1.0, 0, 0, 0, 0, 0.9), "no significant change"),  # nothing moved
        ((0.5, 0.5, 2, 1, 2, 1, 0.3), "insufficient evidence"),
        ((0.5, 0.5, 20, 16, 20, 16, 0.07), "no significant change"),
        ((1.0, 0.001, 0, 0, 0, 12, 0.03), "no significant change"),  # grades only: noted
    ],
)
def test_decide(args, expected):
    verdict, why = decide(*args)
    assert verdict == expected
    if args[1] < 0.05 and args[0] >= 0.05:
        assert "grades moved down" in why
