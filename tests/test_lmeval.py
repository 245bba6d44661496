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
    from harness.evaluation.runner import EvalOptions, evaluate_suite

    options.setdefault("progress", False)
    return evaluate_suite(suite, ref, store, EvalOptions(**options))


def test_samples_are_stored_as_cases(mc_suite: Path, tiny_model_dir: Path, store, monkeypatch):
    from harness.generation.models import resolve
    from harness.suite.loader import load_suite

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
        # the grading queue shows a reviewer the options and the answer
        assert c["choices"] == doc["choices"] and c["gold"] == [doc["choices"][doc["gold"]]]
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
    from harness.generation.models import resolve
    from harness.suite.loader import load_suite

    suite = load_suite(mc_suite)
    ref = resolve(str(tiny_model_dir), store)
    with pytest.raises(UserError):
        lm_eval_run(suite, ref, store, limit=0)
    (mc_suite / "capitals.yaml").write_text("dataset_path: json\n")  # no task name
    with pytest.raises(UserError, match="needs a 'task' name"):
        load_suite(mc_suite)
    assert store.runs() == []


def test_a_task_file_edited_after_load_is_scored_as_loaded(
    mc_suite: Path, tiny_model_dir: Path, store
) -> None:
    """The run scores the text its suite fingerprint names: the task file is read once, at load
    (a training job's checkpoint evals stay one suite version while the file is edited)."""
    from harness.generation.models import resolve
    from harness.suite.loader import load_suite

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    suite = load_suite(mc_suite)
    (mc_suite / "capitals.yaml").write_text(TASK_YAML.replace("Question:", "EDITED:"))
    ref = resolve(str(tiny_model_dir), store)
    run_id = lm_eval_run(suite, ref, store, limit=1, dtype="float32").run_id
    (row,) = store.results(run_id)
    assert "Question: What is the capital of France?" in row["prompt"]
    assert "EDITED" not in row["prompt"]
    assert store.run(run_id)["suite_files"] == suite.files


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
    from harness.generation.models import resolve
    from harness.suite.loader import load_suite

    suite = load_suite(REPO / "suites" / "world-cities")
    ref = resolve("smollm2-135m-instruct", store)
    result = lm_eval_run(suite, ref, store)
    n = result.summary["n"]
    assert n >= 200
    accuracy = result.summary["pass_rate"]
    # Clearly above chance: more than three binomial standard errors above 25%.
    assert accuracy > 0.25 + 3 * (0.25 * 0.75 / n) ** 0.5, accuracy


GEN_YAML = """\
task: mini_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: sums.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{question}}\\nAnswer:"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
    ignore_case: true
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\d+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        regex_pattern: "(\\\\w+)"
        group_select: -1
        fallback: "[none]"
      - function: take_first
metadata:
  version: 1.0
"""

SUMS = [
    {"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(4)
]


def test_generate_until_pipelines_become_criteria(
    tmp_path: Path, varied_model_dir: Path, store
) -> None:
    from harness.generation.models import resolve
    from harness.suite.loader import load_suite

    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "suite.yaml").write_text("name: gen\nversion: 1\nlm_eval: [sums.yaml]\n")
    (folder / "sums.yaml").write_text(GEN_YAML)
    (folder / "sums.jsonl").write_text("".join(json.dumps(d) + "\n" for d in SUMS))
    suite = load_suite(folder)
    result = lm_eval_run(suite, resolve(str(varied_model_dir), store), store, dtype="float32")
    rows = store.results(result.run_id)
    assert [r["case_id"] for r in rows] == [f"mini_sums/{d['id']}" for d in SUMS]
    for row in rows:
        assert set(row["criteria"]) == {"strict-match", "flexible-extract"}
        assert all(c["section"] == "good" for c in row["criteria"].values())
        # the output is the first pipeline's answer: no "#### n" in random text
        assert row["output"] == "[invalid]"
        assert row["criteria"]["strict-match"]["passed"] is False
        assert "flexible-extract" in row["criteria"]
    # each criterion's pass rate is lm-eval's own figure for its pipeline
    metrics = result.extra["lm_eval"]["mini_sums"]
    for name in ("strict-match", "flexible-extract"):
        assert result.summary["criteria"][name] == pytest.approx(metrics[f"exact_match/{name}"])


def test_acc_norm_beside_acc(mc_suite: Path, tiny_model_dir: Path, store) -> None:
    from harness.generation.models import resolve
    from harness.suite.loader import load_suite

    task = TASK_YAML.replace("  - metric: acc\n", "  - metric: acc\n  - metric: acc_norm\n")
    (mc_suite / "capitals.yaml").write_text(task)
    suite = load_suite(mc_suite)
    result = lm_eval_run(suite, resolve(str(tiny_model_dir), store), store, dtype="float32")
    metrics = result.extra["lm_eval"]["mini_capitals"]
    assert result.summary["criteria"]["correct"] == pytest.approx(metrics["acc"])
    assert result.summary["criteria"]["correct-norm"] == pytest.approx(metrics["acc_norm"])
    assert result.summary["pass_rate"] == pytest.approx(metrics["acc"])
    for row in store.results(result.run_id):
        c = row["criteria"]
        assert c["correct-norm"]["section"] == "better"
        both = c["correct"]["passed"] and c["correct-norm"]["passed"]
        assert row["grade"] == ("better" if both else "good" if c["correct"]["passed"] else "bad")


def test_rows_from_hand_made_samples() -> None:
    """Per character normalisation uses the choice without lm-eval's target delimiter."""
    from harness.lmeval.samples import rows_for

    cfg = {"task": "t", "output_type": "multiple_choice"}
    sample = {
        "doc_id": 0,
        "doc": {"id": "x"},
        "target": 1,
        "arguments": [("Q:", " a"), ("Q:", " bbbb")],
        "filtered_resps": [(-2.0, False), (-3.0, False)],
        "acc": 0.0,
        "acc_norm": 1.0,
    }
    (row,) = rows_for(cfg, [sample])
    assert row["output"] == "a" and row["grade"] == "bad"
    assert row["criteria"]["correct-norm"]["passed"] is True
    assert "picked 'bbbb'" in row["criteria"]["correct-norm"]["detail"]
    gen = {"task": "g", "output_type": "generate_until"}
    base = {"doc_id": 3, "doc": {"q": 1}, "target": "7", "arguments": [("7?", {})],
            "metrics": ["exact_match"]}  # fmt: skip
    samples = [{**base, "filter": "none", "filtered_resps": ["7"], "exact_match": 1.0}]
    (row,) = rows_for(gen, samples)
    assert row["case_id"] == "g/3" and row["output"] == "7" and row["grade"] == "good"
    assert row["criteria"]["exact_match"]["passed"] is True


def test_cases_and_tasks_run_together_from_eval_loop_and_checkpoints(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One function evaluates both parts of a suite, whichever command asks."""
    from harness.store import Store
    from tests.conftest import SUITE_YAML, run_cli, write_suite

    folder = write_suite(tmp_path / "both", SUITE_YAML + "lm_eval: [capitals.yaml]\n")
    (folder / "capitals.yaml").write_text(TASK_YAML)
    (folder / "capitals.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    db = tmp_path / "both.db"
    model = str(tiny_model_dir)

    def kinds(run_id: str) -> set[str]:
        with Store(db) as store:
            ids = [r["case_id"] for r in store.results(run_id)]
        return {"task" if i.startswith("mini_capitals/") else "case" for i in ids}

    code, out, err = run_cli(
        "eval", str(folder), "--model", model, "--db", str(db), "--json", capsys=capsys
    )
    assert code == 0, err
    assert kinds(json.loads(out)["run_id"]) == {"case", "task"}

    fast = ["max_steps=4", "batch_size=2", "save_every=2", "max_length=64", "val_examples=1"]
    code, out, err = run_cli(
        "loop", str(folder), "--base", model, "--db", str(db), "--json", "--limit", "3",
        "--eval-checkpoints", "2", *[a for s in fast for a in ("--set", s)], capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert kinds(result["base_run"]) == kinds(result["candidate_run"]) == {"case", "task"}
    with Store(db) as store:
        checkpoints = store.checkpoint_runs(store.train_runs()[0]["id"])
    assert checkpoints and all(kinds(r["id"]) == {"case", "task"} for r in checkpoints)
    with Store(db) as store:  # a checkpoint takes as many samples per task as test cases
        assert len(store.results(checkpoints[0]["id"])) == 2 + 2


def test_eval_output_has_no_lm_eval_warnings_nor_git_noise(
    mc_suite: Path, tiny_model_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Outside a git repository lm-eval's `git describe` printed "fatal: not a git repository"
    to the terminal (past any sys.stderr redirect), and its warnings about how the model was
    passed came with every run; the progress bars stay."""
    from tests.conftest import run_cli

    monkeypatch.chdir(tmp_path)  # not inside a git repository
    code, _, err = run_cli(
        "eval", str(mc_suite), "--model", str(tiny_model_dir), "--db", str(tmp_path / "t.db"),
        capsys=capfd,  # type: ignore[arg-type]  # file descriptors: git writes to fd 2
    )  # fmt: skip
    assert code == 0, err
    assert "fatal" not in err and "not a git repository" not in err
    # pytest takes log records off the terminal: the warnings are looked for among them
    warned = [r.getMessage() for r in caplog.records if r.name.startswith("lm_eval")]
    assert not warned  # before: "`pretrained` model kwarg is not of type `str`", and more
