"""An lm-eval-only suite in the report: the leaderboard ranks its runs, the Suite page lists its
tasks, items and criteria, and the grading queue shows an item's choices and gold answer. The
runs are stored as lm-eval's rows would be (no test cases of the suite's own), without running
lm-eval: that path has its own tests in test_lmeval.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.test_lmeval import DOCS, TASK_YAML

APP = Path(__file__).resolve().parents[1] / "reports" / "app.py"


def _rows(run_id: str, right: set[str]) -> list[dict]:
    rows = []
    for i, d in enumerate(DOCS):
        gold = d["choices"][d["gold"]]
        picked = gold if d["id"] in right else next(c for c in d["choices"] if c != gold)
        criteria = {
            "correct": {"section": "good", "passed": picked == gold, "score": 0.5,
                        "detail": f"picked '{picked}'", "choices": d["choices"], "gold": [gold]}
        }  # fmt: skip
        rows.append(
            {"run_id": run_id, "case_id": f"mini_capitals/{i}", "position": i,
             "prompt": json.dumps([{"role": "user", "content": f"Capital of {d['country']}?"}]),
             "output": picked, "grade": "good" if picked == gold else "bad",
             "criteria": criteria, "cached": False, "must_pass": False,
             "prompt_tokens": None, "output_tokens": None, "seconds": None}
        )  # fmt: skip
    return rows


@pytest.fixture
def lm_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from harness.evaluation.runner import new_run_row
    from harness.store import Store
    from harness.suite.loader import load_suite

    folder = tmp_path / "mc"
    folder.mkdir()
    (folder / "suite.yaml").write_text("name: mc\nversion: 1\nlm_eval: [capitals.yaml]\n")
    (folder / "capitals.yaml").write_text(TASK_YAML)
    (folder / "capitals.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    suite = load_suite(folder)
    db = tmp_path / "tuneval.db"
    runs = {}
    with Store(db) as store:
        for model, right in (("strong", {"fr", "it", "no", "es"}), ("weak", {"fr"})):
            row = new_run_row(suite, model, f"fp-{model}", "local", {"backend": "lm-eval"},
                              f"key-{model}", 0)  # fmt: skip
            store.insert_run(row)
            store.save_results(_rows(row["id"], right))
            store.finish_run(row["id"], {})
            runs[model] = row["id"]
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    return runs


def page(name: str, **query: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.query_params.update(query)
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_leaderboard_ranks_an_lm_eval_only_suite(lm_store: dict[str, str]) -> None:
    from harness.comparison.leaderboard import leaderboard
    from harness.store import Store

    with Store(Path(os.environ["TUNEVAL_DB"]), readonly=True) as store:
        assert [e.model for e in leaderboard(store, "mc").entries] == ["strong", "weak"]
    at = page("leaderboard", suite="mc")
    assert not at.warning, [w.value for w in at.warning]
    assert list(at.dataframe[0].value["model"]) == ["strong", "weak"]


def test_suite_page_shows_tasks_items_and_criteria(lm_store: dict[str, str]) -> None:
    at = page("suite", suite="mc")
    frames = {d.proto.id: d.value for d in at.dataframe}
    tasks, items = at.dataframe[0].value, at.dataframe[1].value
    assert list(tasks["task"]) == ["mini_capitals"] and list(tasks["metrics"]) == ["acc"]
    assert len(items) == len(DOCS) and items.iloc[1]["gold"] == "Rome", frames
    assert "Paris | Rome | Oslo" in list(items["choices"])
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "correct" in shown and "Cases (0)" not in " ".join(str(h.value) for h in at.subheader)


def test_grading_shows_the_choices_and_the_gold(lm_store: dict[str, str]) -> None:
    at = page("grading", suite="mc", a=lm_store["strong"], b=lm_store["weak"])
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "**Rome** ✓ gold" in shown and "no reference answer" not in shown
