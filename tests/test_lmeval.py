"""The lm-eval bridge: tasks run through lm-eval, every sample stored as an ordinary case."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO, cli

TASK_YAML = """\
task: mini_capitals
dataset_path: json
dataset_kwargs:
  data_files:
    test: capitals.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: What is the capital of {{country}}?\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: gold
metric_list:
  - metric: acc
metadata:
  version: 1.0
"""

DOCS = [
    {"id": "fr", "country": "France", "choices": ["Paris", "Rome", "Oslo"], "gold": 0},
    {"id": "it", "country": "Italy", "choices": ["Paris", "Rome", "Oslo"], "gold": 1},
    {"id": "no", "country": "Norway", "choices": ["Paris", "Rome", "Oslo"], "gold": 2},
    {"id": "es", "country": "Spain", "choices": ["Madrid", "Lima", "Bern"], "gold": 0},
    {"id": "pe", "country": "Peru", "choices": ["Madrid", "Lima", "Bern"], "gold": 1},
]


@pytest.fixture
def mc_suite(tmp_path: Path) -> Path:
    folder = tmp_path / "mc"
    folder.mkdir()
    (folder / "suite.yaml").write_text("name: mc\nversion: 1\nlm_eval: [capitals.yaml]\n")
    (folder / "capitals.yaml").write_text(TASK_YAML)
    (folder / "capitals.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return folder


def lm_eval_run(suite, ref, store, **options):
    from harness.runner import EvalOptions, evaluate_suite

    options.setdefault("progress", False)
    return evaluate_suite(suite, ref, store, EvalOptions(**options))


def test_samples_are_stored_as_cases(mc_suite: Path, tiny_model_dir: Path, store, monkeypatch):
    from harness.models import resolve
    from harness.suite import load_suite

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    monkeypatch.chdir(mc_suite.parent.parent)  # data paths must not depend on the cwd
    suite = load_suite(mc_suite)
    ref = resolve(str(tiny_model_dir), store)
    result = lm_eval_run(suite, ref, store, dtype="float32")

    rows = store.results(result.run_id)
    assert [r["case_id"] for r in rows] == [f"mini_capitals/{d['id']}" for d in DOCS]
    for row, doc in zip(rows, DOCS, strict=True):
        c = row["criteria"]["correct"]
        assert c["section"] == "good"
        assert row["output"] in doc["choices"]
        assert c["passed"] == (row["output"] == doc["choices"][doc["gold"]])
        assert row["grade"] == ("good" if c["passed"] else "bad")
        assert 0.0 <= c["score"] <= 1.0
        assert row["output"] in c["detail"]
    run = store.run(result.run_id)
    assert run["status"] == "complete" and run["settings"]["lm_eval"]["backend"] == "lm-eval"
    # The stored accuracy is lm-eval's own.
    acc = result.extra["lm_eval"]["mini_capitals"]["acc"]
    assert result.summary["pass_rate"] == pytest.approx(acc)

    again = lm_eval_run(suite, ref, store, dtype="float32")
    assert again.run_id != result.run_id and again.cached == len(DOCS) and again.generated == 0
    assert [r["grade"] for r in store.results(again.run_id)] == [r["grade"] for r in rows]

    limited = lm_eval_run(suite, ref, store, limit=2, dtype="float32")
    assert len(store.results(limited.run_id)) == 2


def test_bad_task_file_writes_nothing(mc_suite: Path, tiny_model_dir: Path, store):
    from harness.errors import UserError
    from harness.models import resolve
    from harness.suite import load_suite

    suite = load_suite(mc_suite)
    (mc_suite / "capitals.yaml").write_text("dataset_path: json\n")  # no task name
    ref = resolve(str(tiny_model_dir), store)
    with pytest.raises(UserError):
        lm_eval_run(suite, ref, store)
    with pytest.raises(UserError):
        lm_eval_run(suite, ref, store, limit=0)
    assert store.runs() == []


def test_eval_command_runs_lm_eval_suites(mc_suite: Path, tiny_model_dir: Path, tmp_path) -> None:
    db = tmp_path / "cli.db"
    r = cli("eval", str(mc_suite), "--model", str(tiny_model_dir), "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["n"] == len(DOCS) and data["suite"] == "mc"
    assert set(data["criteria"]) == {"correct"}
    assert r.stderr.strip() == ""  # --json: no lm-eval progress bars or log lines


@pytest.mark.slow
def test_packaged_model_knows_world_cities(store):
    """The forgetting panel is only useful if the base model starts clearly above chance (25%)."""
    from harness.models import resolve
    from harness.suite import load_suite

    suite = load_suite(REPO / "suites" / "world-cities")
    ref = resolve("smollm2-135m-instruct", store)
    result = lm_eval_run(suite, ref, store)
    n = result.summary["n"]
    assert n >= 200
    accuracy = result.summary["pass_rate"]
    # Clearly above chance: more than three binomial standard errors above 25%.
    assert accuracy > 0.25 + 3 * (0.25 * 0.75 / n) ** 0.5, accuracy
