"""The report's leaderboard page and the judge-agreement block of the grading page (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.generation.models import ModelRef
from harness.grading.judges import Judge, Verdict
from tests.compare_helpers import answers, fake_run
from tests.report_store import build
from tests.test_judge import JUDGED
from tests.test_leaderboard import BASE
from tests.test_report_apptest import open_page, texts


def test_leaderboard_page_ranks_the_report_store(tmp_path: Path, monkeypatch) -> None:
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.store import Store
    from harness.suite.loader import load_suite
    from tests.report_store import CANDIDATE, _answer, _ref

    rs = build(tmp_path)
    with Store(rs.db) as store:  # the candidate evaluated after training, as `loop` does
        opts = EvalOptions(progress=False, dtype="float32")
        ref = _ref("mini-sft", "trained")
        evaluate_suite(load_suite(rs.suite), ref, store, opts, backend=_answer(CANDIDATE))
    monkeypatch.setenv("TUNEVAL_DB", str(rs.db))
    at = open_page("leaderboard")
    assert not at.error, texts(at, "error")
    table = at.dataframe[0].value
    assert set(table["model"]) == {"base-model", "mini-sft"}  # checkpoint runs are not models
    assert list(table["#"]) == [1, 2]
    assert list(table["rating"]) == sorted(table["rating"], reverse=True)
    assert len(at.get("vega_lite_chart")) == 1


def test_leaderboard_page_on_an_empty_store(tmp_path: Path, monkeypatch) -> None:
    from harness.store import Store

    Store(tmp_path / "empty.db").close()
    monkeypatch.setenv("TUNEVAL_DB", str(tmp_path / "empty.db"))
    at = open_page("leaderboard")
    assert not at.error and any("No complete runs" in t for t in texts(at, "info"))


class KnowsNoIdea:
    """A judge that fails exactly the answers 'no idea'."""

    def choose(self, prompts, choices):
        return [
            Verdict({"yes": 0.0, "no": 1.0} if "Answer: no idea." in p[-1]["content"]
                    else {"yes": 1.0, "no": 0.0})
            for p in prompts
        ]  # fmt: skip


def test_grading_page_shows_judge_agreement_with_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.grading import judges as judge_module
    from harness.store import Store
    from reports.labels import save_label
    from tests.conftest import write_suite

    suite = write_suite(tmp_path / "judged", JUDGED.replace("MODEL", "fake-judge"))
    ref = ModelRef("fake-judge", "fake-judge", Path("."), "local", "fp-fake-judge")
    monkeypatch.setattr(
        judge_module, "judge_for", lambda spec, store, progress=False: Judge(ref, KnowsNoIdea())
    )
    db = tmp_path / "judged.db"
    with Store(db) as store:
        run = fake_run(store, suite, "base", answers(BASE))  # c answers "no idea"
    # (judge, human) pass: a (T, T), c (F, F), e (T, F), b (T, T)
    for case, grade in (("a", "better"), ("c", "bad"), ("e", "bad"), ("b", "good")):
        save_label(str(db), run, case, grade)
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    at = open_page("grading")
    judged = next(df.value for df in at.dataframe if "kappa" in df.value.columns)
    row = judged.iloc[0]
    # c is left out: names-module failed too, so the judge did not decide its grade; of a (T, T),
    # e (T, F), b (T, T) two agree, and a judge that always passes agrees no more than chance
    assert row["criterion"] == "judged" and row["judge"] == "fake-judge" and row["labelled"] == 3
    assert row["left_out"] == 1 and row["agreement"] == pytest.approx(2 / 3)
    assert row["kappa"] == pytest.approx(0.0)
