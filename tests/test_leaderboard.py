"""The leaderboard: Bradley–Terry on per-case grades recovers a known order, ties count half,
and the CLI prints the promised JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.comparison.leaderboard import case_wins, elo, fit, leaderboard
from harness.errors import UserError
from tests.compare_helpers import answers, fake_run
from tests.conftest import run_cli, write_suite

# base: a better, b good, c bad, d better, e good, f better
BASE = {"b": "the json module", "c": "no idea", "e": "The random module."}
BROKEN = {c: "no idea" for c in "abcdef"}


@pytest.fixture
def three(store, mini_suite: Path):
    fake_run(store, mini_suite, "good", answers())
    fake_run(store, mini_suite, "base", answers(BASE))
    fake_run(store, mini_suite, "broken", answers(BROKEN))
    return store


def test_recovers_good_base_broken(three) -> None:
    """The planted bug: a leaderboard that puts the broken model above the base fails here."""
    board = leaderboard(three, "mini")
    assert [e.model for e in board.entries] == ["good", "base", "broken"]
    good, base, broken = board.entries
    assert good.rating > base.rating > broken.rating
    for e in board.entries:
        assert e.low <= e.rating <= e.high and e.n == 6
    assert (good.pass_rate, base.pass_rate, broken.pass_rate) == (1.0, 5 / 6, 0.0)
    assert sum(e.rating for e in board.entries) / 3 == pytest.approx(1000.0)


def test_ties_count_half() -> None:
    # two models that always tie get equal ratings; a model that ties a third of its games and
    # wins the rest sits above
    grades = np.array([[1, 1, 0], [2, 2, 0], [0, 0, 0]], dtype=float)
    wins = case_wins(grades).sum(0)
    assert wins[0, 1] == wins[1, 0] == 1.5  # three ties, half each
    assert wins[0, 2] == 2.5 and wins[2, 0] == 0.5
    r = elo(fit(wins))
    assert r[0] == pytest.approx(r[1]) and r[0] > r[2]


def test_fit_matches_a_known_strength_ratio() -> None:
    # 64 wins to 36 in 100 games (plus the virtual tie) is close to a 100-point Elo gap
    r = elo(fit(np.array([[0.0, 64.0], [36.0, 0.0]])))
    assert r[0] - r[1] == pytest.approx(400 * np.log10(64.5 / 36.5), abs=0.01)


def test_models_filter_and_unknown_model(three) -> None:
    board = leaderboard(three, "mini", ["broken", "base"])
    assert [e.model for e in board.entries] == ["base", "broken"]
    with pytest.raises(UserError, match="for: nobody"):
        leaderboard(three, "mini", ["base", "nobody"])
    with pytest.raises(UserError, match="no complete run on suite 'other'"):
        leaderboard(three, "other")


def test_runs_on_older_suite_files_are_left_out(three, tmp_path: Path) -> None:
    changed = write_suite(tmp_path / "mini")  # same name, other files
    (changed / "suite.yaml").write_text((changed / "suite.yaml").read_text() + "\n# changed\n")
    fake_run(three, changed, "newcomer", answers())
    fake_run(three, changed, "base", answers(BASE))
    board = leaderboard(three, "mini")
    assert [e.model for e in board.entries] == ["newcomer", "base"]
    assert board.skipped == ["broken", "good"]


def test_cli_json(tmp_path: Path, mini_suite: Path, capsys) -> None:
    from harness.store import Store

    db = tmp_path / "lb.db"
    with Store(db) as store:
        fake_run(store, mini_suite, "broken", answers(BROKEN))
        fake_run(store, mini_suite, "good", answers())
        fake_run(store, mini_suite, "base", answers(BASE))
    code, out, err = run_cli(
        "leaderboard", "--suite", str(mini_suite), "--db", str(db), "--json", capsys=capsys
    )
    assert code == 0, err
    models = json.loads(out)["models"]
    assert [m["model"] for m in models] == ["good", "base", "broken"]
    assert {"model", "rating", "low", "high", "pass_rate", "n"} <= set(models[0])
    code, out, _ = run_cli(
        "leaderboard", "--suite", "mini", "--models", "base,broken", "--db", str(db), capsys=capsys
    )
    assert code == 0 and "base" in out and "good" not in out.split("cases")[-1]


def test_checkpoint_runs_are_not_models(three, mini_suite: Path) -> None:
    """A training checkpoint's evaluation (job@step) is a point on a curve: left out unless
    named."""
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation.models import ModelRef
    from harness.suite.loader import load_suite
    from tests.conftest import FakeBackend

    ref = ModelRef("job@10", "job@10", mini_suite, "local", "fp-checkpoint")
    opts = EvalOptions(progress=False, dtype="float32", train_run="train-1", step=10)
    evaluate_suite(load_suite(mini_suite), ref, three, opts, backend=FakeBackend(answers()))
    assert [e.model for e in leaderboard(three, "mini").entries] == ["good", "base", "broken"]
    named = leaderboard(three, "mini", ["base", "job@10"])
    assert [e.model for e in named.entries] == ["job@10", "base"]


def test_a_single_model_gets_the_average_rating(store, mini_suite: Path) -> None:
    fake_run(store, mini_suite, "alone", answers())
    (entry,) = leaderboard(store, "mini").entries
    assert entry.rating == entry.low == entry.high == pytest.approx(1000.0)
