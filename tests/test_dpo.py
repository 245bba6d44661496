"""Preference pairs from the rubric (`tuneval data pairs`) and the `dpo` trainer on TRL's
DPOTrainer, on the tiny model: pairs leak-free and ordered by the rubric, reruns from the cache,
the file in a bare DPOTrainer and through the plugin, resume after kill -9, the whole loop."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TUNEVAL, run_cli, write_suite

# Lengths tell the tiny model's random answers apart: some are short, some shorter.
PAIRS_YAML = """\
name: prefs
version: 1
description: Pairs from a tiny model.
prompt:
  system: Answer briefly.
  user: "Which module holds {function}?"
  assistant: "{module}"
generation: {max_new_tokens: 16, stop: ["\\n\\n"]}
data: {test: test.jsonl, train: train.jsonl}
rubric:
  bad: [{id: empty, type: empty}]
  good: [{id: short, type: length, max_chars: 30}]
  better: [{id: shorter, type: length, max_chars: 15}]
"""
SAME_GRADE_YAML = PAIRS_YAML.replace(
    "  good: [{id: short, type: length, max_chars: 30}]\n"
    "  better: [{id: shorter, type: length, max_chars: 15}]\n",
    "  good: [{id: any, type: length, max_chars: 100000}]\n",
)
TRAIN = [
    {"function": "wrap", "module": "textwrap"},
    {"function": "loads", "module": "json"},
    {"function": "listdir", "module": "os"},
    {"function": "floor", "module": "math"},
    {"function": "dedent", "module": "textwrap"},  # test case a's prompt
    {"function": "dedents", "module": "textwrap"},  # near it
]
SAMPLES = ["-k", "3"]
FAST = ["max_steps=3", "batch_size=2", "save_every=2", "log_every=1", "max_length=64"]


def sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict:
    """One pairs run shared by the tests of this file, made in this process (the command's own
    path, minus its argument parsing, which the tests below go through): the suite, its store,
    the file, the report and the command line that makes the same file."""
    from harness.generation.models import resolve
    from harness.store import Store
    from harness.suite.loader import load_suite
    from harness.training.pairs import PairOptions, build_pairs, write_pairs

    root = tmp_path_factory.mktemp("pairs")
    suite = write_suite(root / "prefs", PAIRS_YAML, train=TRAIN)
    db, file = root / "ws" / "tuneval.db", root / "pairs.jsonl"
    with Store(db) as store:
        opts = PairOptions(samples=3, progress=False)
        result = build_pairs(load_suite(suite), resolve(str(tiny_model_dir), store), store, opts)
    write_pairs(file, result.rows)
    args = ["data", "pairs", str(suite), "--model", str(tiny_model_dir), "--out", str(file)]
    args += [*SAMPLES, "--db", str(db), "--json"]
    return {"suite": suite, "db": db, "file": file, "report": result.to_json(), "args": args}


def test_pairs_are_leak_free_ordered_by_the_rubric_and_cached(
    made: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.comparison.sampling import sample_seed
    from harness.grading.grader import RANK, Grader
    from harness.suite.leakage import near_matches, normalize
    from harness.suite.loader import load_suite

    report, rows = made["report"], read_rows(made["file"])
    assert report["prompts"] == 6 and report["generated"] == 4 * 3 and report["cached"] == 0
    assert report["dropped"]["near or same as a test prompt"] == 2
    assert {leak["row"] for leak in report["leaked"]} == {"train-4", "train-5"}
    assert len(rows) == report["pairs"] >= 1
    suite = load_suite(made["suite"])
    tests = [f"Which module holds {c['function']}?" for c in suite.cases]
    grader = Grader(suite)
    for row in rows:
        user = row["prompt"][-1]["content"]
        assert normalize(user) not in {normalize(t) for t in tests}
        assert not near_matches([user], tests)
        meta = row["tuneval"]
        case = TRAIN[int(meta["row"].removeprefix("train-"))]
        chosen = row["chosen"][0]["content"]
        rejected = row["rejected"][0]["content"]
        (g_c, _), (g_r, _) = grader([chosen, rejected], [case, case])
        assert RANK[g_c] > RANK[g_r]  # the rubric itself, asked again, prefers the chosen
        assert (meta["chosen"]["grade"], meta["rejected"]["grade"]) == (g_c, g_r)
        assert meta["decided_by"] and meta["model_fingerprint"]
        for side in ("chosen", "rejected"):  # the suite's seed is 0
            assert meta[side]["seed"] == sample_seed(0, meta["row"], meta[side]["sample"])
    before = made["file"].read_bytes()
    code, out, _ = run_cli(*made["args"], capsys=capsys)
    again = json.loads(out)
    assert code == 0 and again["generated"] == 0 and again["cached"] == 12
    assert made["file"].read_bytes() == before


def test_a_sampled_eval_of_the_same_prompts_reuses_the_pairs_samples(
    made: dict, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pairs seed answer j to row r as `eval --samples` does
    (harness.comparison.sampling.sample_seed): the pairs' training rows, evaluated as test cases at
    the same settings, are all cache, and each pair's answers are the eval's samples of the same
    j."""
    cases = [{"id": f"train-{i}", **row} for i, row in enumerate(TRAIN[:4])]
    yaml = PAIRS_YAML.replace("name: prefs", "name: prefs-as-test").replace(
        "{max_new_tokens: 16,", "{max_new_tokens: 16, temperature: 1.0, top_p: 0.95,"
    )
    suite = write_suite(tmp_path / "as-test", yaml, cases=cases, train=TRAIN[:1])
    code, out, err = run_cli(
        "eval", str(suite), "--model", str(tiny_model_dir), "--samples", "3",
        "--db", str(made["db"]), "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    from harness.store import Store

    with Store(made["db"]) as store:
        results = {r["case_id"]: r for r in store.results(json.loads(out)["run_id"])}
    assert all(s["cached"] for r in results.values() for s in r["samples"])
    for row in read_rows(made["file"]):
        meta, samples = row["tuneval"], results[row["tuneval"]["row"]]["samples"]
        for side in ("chosen", "rejected"):
            sample = samples[meta[side]["sample"]]
            assert sample["output"] == row[side][0]["content"]
            assert sample["seed"] == meta[side]["seed"]


def test_every_sample_at_one_grade_makes_no_pairs_and_says_so(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path / "same", SAME_GRADE_YAML, train=TRAIN[:2])
    file = tmp_path / "pairs.jsonl"
    code, out, err = run_cli(
        "data", "pairs", str(suite), "--model", str(tiny_model_dir), "--out", str(file),
        *SAMPLES, "--db", str(tmp_path / "t.db"), capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert "0 pairs from 2 train prompts" in out and "dropped 2: same grade (better)" in out
    assert "no pairs" in err
    assert file.read_text() == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--split", "test"], "never from the test cases"),
        (["-k", "1"], "--samples must be at least 2"),
        (["--tie-break", "coin"], "--tie-break coin"),
        (["--temperature", "0"], "--temperature must be above 0"),
    ],
)
def test_bad_pairs_options_exit_2_and_write_nothing(
    tmp_path: Path, made: dict, extra: list[str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    db = tmp_path / "t.db"
    code, _, err = run_cli(
        "data", "pairs", str(made["suite"]), "--out", str(tmp_path / "p.jsonl"), *extra,
        "--db", str(db), capsys=capsys,
    )  # fmt: skip
    assert code == 2 and message in err and "Traceback" not in err
    assert not db.exists() and not (tmp_path / "p.jsonl").exists()


def test_pairs_file_trains_a_bare_trl_dpo_trainer(made: dict, tiny_model_dir: Path) -> None:
    """The file is TRL's own format: a DPOTrainer takes it as `datasets` loads it."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    data = load_dataset("json", data_files=str(made["file"]), split="train")
    args = DPOConfig(
        output_dir=str(made["file"].parent / "bare"), max_steps=1, per_device_train_batch_size=2,
        max_length=64, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=args,
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    assert trainer.ref_model is None  # LoRA: the frozen base is the reference
    trainer.train()
    assert trainer.state.global_step == 1


def test_dpo_plugin_trains_and_registers_a_candidate_named_by_its_pairs(
    made: dict, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sha = hashlib.sha256(made["file"].read_bytes()).hexdigest()
    args = [
        "train", str(made["suite"]), "--trainer", "dpo", "--base", str(tiny_model_dir),
        *sets(f"pairs={made['file']}", *FAST), "--db", str(made["db"]), "--json",
    ]  # fmt: skip
    code, out, err = run_cli(*args, capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["model"].endswith(f"-p{sha[:8]}") and result["kind"] == "adapter"
    assert result["steps"] == 3 and result["final_loss"] is not None
    manifest = json.loads((Path(result["path"]) / "tuneval-manifest.json").read_text())
    assert manifest["pairs"]["sha256"] == sha == manifest["config"]["pairs_sha256"]
    assert manifest["trainer"] == "dpo" and len(manifest["loss_curve"]) == 3
    assert (Path(result["path"]) / "adapter_config.json").is_file()
    code, out, _ = run_cli(*args, capsys=capsys)
    assert code == 0 and json.loads(out)["reused"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--set:pairs: required"),
        (sets("pairs=missing.jsonl"), "missing.jsonl: no such file"),
        (sets("pairs=BAD"), "bad.jsonl:2: field 'chosen' must end with an assistant message"),
        (sets("pairs=GOOD", "beta=0"), "beta: Input should be greater than 0"),
        (sets("pairs=GOOD", "learning_rate=inf"), "learning_rate: Input should be a finite"),
        (sets("pairs=GOOD", "max_length=2"), "max_length: Input should be greater than"),
    ],
)
def test_bad_dpo_settings_exit_2_and_touch_no_store(
    tmp_path: Path, made: dict, extra: list[str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    good = read_rows(made["file"])[0]
    bad = tmp_path / "bad.jsonl"
    wrong = {**good, "chosen": [{"role": "user", "content": "x"}]}
    bad.write_text(json.dumps(good) + "\n" + json.dumps(wrong) + "\n")
    extra = [a.replace("BAD", str(bad)).replace("GOOD", str(made["file"])) for a in extra]
    db = tmp_path / "t.db"
    runs = [("train", extra)]
    if "beta=0" in extra:  # the loop, which will make the pairs, checks the rest first
        runs.append(("loop", sets("beta=0")))
    for command, args in runs:
        code, _, err = run_cli(
            command, str(made["suite"]), "--trainer", "dpo", *args, "--db", str(db),
            capsys=capsys,
        )  # fmt: skip
        assert code == 2 and message in err and "Traceback" not in err, (command, err)
        assert not db.exists()


def test_loop_with_dpo_makes_pairs_trains_grades_checkpoints_and_judges(
    made: dict, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        "loop", str(made["suite"]), "--trainer", "dpo", "--base", str(tiny_model_dir),
        "--pair-samples", "3",
        *sets("max_steps=2", "batch_size=2", "max_length=64", "save_every=1"),
        "--eval-checkpoints", "2", "--db", str(made["db"]), "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    from harness.store import Store

    with Store(made["db"]) as store:  # each checkpoint (an adapter) graded on the first 2 cases
        runs = store.checkpoint_runs(result["train"]["train_run"])
        kinds = [r["kind"] for r in store.train_log(result["train"]["train_run"])]
    assert [(r["step"], r["n_cases"]) for r in runs] == [(1, 2), (2, 2)]
    assert [r["id"] for r in runs] == result["train"]["checkpoint_runs"]
    assert kinds.count("eval") == kinds.count("checkpoint") == 2
    assert result["verdict"] in ("improved", "regressed", "no significant change",
                                 "insufficient evidence")  # fmt: skip
    sha = hashlib.sha256(made["file"].read_bytes()).hexdigest()
    assert result["model"].endswith(f"-p{sha[:8]}")  # the same pairs as `data pairs` made
    assert result["pairs"]["pairs"] == made["report"]["pairs"]
    assert result["pairs"]["generated"] == 0  # every sample came from the cache


@pytest.mark.slow
def test_dpo_resumes_after_kill_9(made: dict, tiny_model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "ws" / "tuneval.db"
    args = [
        TUNEVAL, "train", str(made["suite"]), "--trainer", "dpo", "--base", str(tiny_model_dir),
        *sets(f"pairs={made['file']}", "max_steps=8", "batch_size=1", "save_every=2",
              "log_every=1", "max_length=64"),
        "--db", str(db), "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    models = tmp_path / "ws" / "models"
    deadline = time.monotonic() + 600
    while not list(models.glob("*/checkpoints/checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["resumed_from"] and result["resumed_from"] % 2 == 0
    assert result["steps"] == 8
    manifest = json.loads((Path(result["path"]) / "tuneval-manifest.json").read_text())
    assert [s for s, _ in manifest["loss_curve"]] == list(range(1, 9))


@pytest.mark.slow  # two graded runs and three commands: about 17 s
def test_human_labels_export_as_pairs_refused_for_training_by_default(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two recorded runs of the mini suite; a reviewer overrides one automatic grade. The
    human grade decides the pair; the dpo trainer refuses the file unless told otherwise."""
    from harness.store import Store
    from harness.training.job import parse_sets
    from tests.conftest import CASES
    from trainers import registry

    db = tmp_path / "ws.db"
    ids = {}
    for name, answer in (
        ("right", lambda c: c["module"]),
        ("wordy", lambda c: "it is " + c["module"]),
    ):
        outputs = tmp_path / f"{name}.jsonl"
        outputs.write_text(
            "".join(json.dumps({"id": c["id"], "output": answer(c)}) + "\n" for c in CASES)
        )
        code, out, err = run_cli(
            "grade", str(mini_suite), "--outputs", str(outputs), "--name", name, "--db", str(db),
            "--json", capsys=capsys,
        )  # fmt: skip
        assert code == 0, err
        ids[name] = json.loads(out)["run_id"]
    # by the rubric "right" is better and "wordy" good everywhere; a reviewer overrides two
    with Store(db) as store:
        for run, case, grade in (("right", "a", "bad"), ("wordy", "b", "better")):
            label = {"run_id": ids[run], "case_id": case, "grade": grade, "note": ""}
            store.save_label({**label, "corrected_output": None, "reviewer": "r", "created_at": 0})
    file = tmp_path / "labels.jsonl"
    code, out, err = run_cli("data", "label-pairs", ids["right"], ids["wordy"], "--out", str(file),
                             "--db", str(db), "--json", capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == {
        "out": str(file),
        "pairs": 1,
        "dropped": {"no human label": 4, "same grade (better)": 1},
    }
    assert "test cases of mini" in err and "memory, not skill" in err
    (row,) = read_rows(file)
    assert (
        row["chosen"][0]["content"] == "it is textwrap"
    )  # the human's "bad" beat the rubric's "better"
    assert (
        row["tuneval"]["chosen"]["by"] == "rubric" and row["tuneval"]["rejected"]["by"] == "human"
    )
    assert row["tuneval"]["split"] == "test"
    code, _, err = run_cli("train", str(mini_suite), "--trainer", "dpo", *sets(f"pairs={file}"),
                           "--db", str(tmp_path / "t.db"), capsys=capsys)  # fmt: skip
    assert code == 2 and f"{file}:1: field 'tuneval.split' is 'test'" in err
    assert "allow_test_pairs=true" in err and not (tmp_path / "t.db").exists()
    _, cfg = parse_sets(registry.get("dpo"), [f"pairs={file}", "allow_test_pairs=true"])
    assert cfg.allow_test_pairs and cfg.pairs_sha256


def test_report_shows_the_pairs_behind_a_dpo_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.store import Store
    from tests.report_store import SCRIPT, build
    from tests.test_report_apptest import open_page

    rs = build(tmp_path)
    file = tmp_path / "pairs.jsonl"
    row = {
        "prompt": [{"role": "user", "content": "Which module holds dedent?"}],
        "chosen": [{"role": "assistant", "content": "textwrap"}],
        "rejected": [{"role": "assistant", "content": SCRIPT}],
        "tuneval": {"chosen": {"grade": "better"}, "rejected": {"grade": "bad"},
                    "decided_by": ["names-module"]},
    }  # fmt: skip
    file.write_text(json.dumps(row) + "\n")
    sha = hashlib.sha256(file.read_bytes()).hexdigest()
    with Store(rs.db) as store:
        now = time.time()
        store.register_model({
            "name": "mini-dpo", "spec": "mini-dpo", "kind": "trained", "path": None,
            "fingerprint": "fp-mini-dpo", "base": "base-model", "produced_by": "train-dpo",
            "info": {"pairs": {"path": str(file), "sha256": sha, "rows": 1}}, "created_at": now,
        })  # fmt: skip
        store.insert_train_run({
            "id": "train-dpo", "suite": "mini", "trainer": "dpo", "base": "base-model",
            "config": {}, "output_dir": str(tmp_path / "dpo"), "model": "mini-dpo",
            "status": "complete", "created_at": now + 1, "finished_at": now + 1,
        })  # fmt: skip
    monkeypatch.setenv("TUNEVAL_DB", str(rs.db))
    at = open_page("training", run="train-dpo")
    assert "Preference pairs behind this candidate" in [s.value for s in at.subheader]
    table = at.dataframe[0].value
    assert list(table["rejected"]) == [SCRIPT] and list(table["decided by"]) == ["names-module"]
    file.write_text("")  # changed since training: not shown as if it were what it learned
    at = open_page("training", run="train-dpo")
    assert any("has changed since training" in str(c.value) for c in at.caption)
