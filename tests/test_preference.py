"""Pairwise preference: both orders asked, order-inconsistent verdicts are ties, and the CLI
shows it beside the rubric comparison."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.comparison.compare import compare_runs
from harness.comparison.preference import prefer
from harness.generation.models import ModelRef
from harness.grading.judges import Verdict
from tests.compare_helpers import answers, fake_run
from tests.conftest import run_cli

WRONG = {"a": "no idea", "b": "no idea", "c": "no idea"}


class FakeJudge:
    """Picks by a rule over (first answer, second answer); records the prompts it saw."""

    def __init__(self, rule):
        self.rule = rule
        self.ref = ModelRef("fake-judge", "fake-judge", Path("."), "local", "fp")
        self.prompts: list[str] = []

    def choose(self, prompts, choices):
        out = []
        for p in prompts:
            text = p[-1]["content"]
            self.prompts.append(text)
            first, second = re.search(
                r"Answer 1:\n(.*)\n\nAnswer 2:\n(.*)\n\nWhich", text, re.S
            ).groups()
            pick = self.rule(first, second)
            out.append(Verdict({c: float(c == pick) for c in choices}))
        return out


def knows_modules(first: str, second: str) -> str:
    return "2" if first == "no idea" else "1"


def test_a_position_biased_judge_yields_ties_not_wins(store, mini_suite: Path) -> None:
    """The planted bug: asking in one order only would hand A every case this judge sees."""
    a = fake_run(store, mini_suite, "base", answers(WRONG))
    b = fake_run(store, mini_suite, "cand", answers())
    pairs = compare_runs(store, a, b).pairs
    judge = FakeJudge(lambda first, second: "1")
    p = prefer(judge, pairs)
    assert (p.wins, p.losses, p.ties) == (0, 0, 6)
    assert p.inconsistent == 3 and p.share == 0.5
    assert len(judge.prompts) == 6  # three differing pairs, two orders each; identical not asked


def test_a_consistent_judge_prefers_the_better_answer_in_both_orders(store, mini_suite) -> None:
    a = fake_run(store, mini_suite, "base", answers(WRONG))
    b = fake_run(store, mini_suite, "cand", answers())
    judge = FakeJudge(knows_modules)
    p = prefer(judge, compare_runs(store, a, b).pairs)
    assert (p.wins, p.ties, p.losses, p.inconsistent) == (3, 3, 0, 0)
    assert p.share == pytest.approx(0.75) and p.low <= 0.75 <= p.high
    by_case = {c["case_id"]: c for c in p.cases}
    assert by_case["a"] == {"case_id": "a", "preferred": "B", "a_first": "2", "b_first": "1"}
    # the other way round: A is the better run
    p = prefer(judge, compare_runs(store, b, a).pairs)
    assert (p.wins, p.losses) == (0, 3) and p.share == pytest.approx(0.25)


def test_compare_cli_with_a_judge(tmp_path: Path, mini_suite: Path, tiny_model_dir: Path, capsys):
    from harness.store import Store

    db = tmp_path / "cli.db"
    with Store(db) as store:
        fake_run(store, mini_suite, "base", answers(WRONG))
        fake_run(store, mini_suite, "cand", answers())
    args = ("compare", "base", "cand", "--judge", str(tiny_model_dir), "--db", str(db))
    code, out, err = run_cli(*args, "--json", capsys=capsys)
    assert code == 0, err
    pref = json.loads(out)["preference"]
    assert pref["judge"] == str(tiny_model_dir) and pref["n"] == 6
    assert pref["wins"] + pref["ties"] + pref["losses"] == 6 and 0 <= pref["low"] <= pref["high"]
    with Store(db, readonly=True) as store:  # verdicts cached: 3 pairs x 2 orders
        assert store.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 6 + 6 + 6
    code, out, _ = run_cli(*args, capsys=capsys)
    assert code == 0 and "pairwise preference" in out and "order-inconsistent" in out


def test_compare_with_a_judge_creates_no_store(tmp_path: Path, tiny_model_dir: Path, capsys):
    """A mistyped --db is an error, not a new empty store."""
    db = tmp_path / "typo.db"
    code, _, err = run_cli("compare", "base", "cand", "--judge", str(tiny_model_dir), "--db",
                           str(db), capsys=capsys)  # fmt: skip
    assert code == 2 and "no store at" in err, err
    assert not db.exists()
