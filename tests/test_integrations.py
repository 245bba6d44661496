"""The Trainer callback, the axolotl plugin and checkpoint sweeps, on real `transformers.Trainer`
and TRL `SFTTrainer` runs of the tiny model (a few steps each), with a real store."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.grading.grader import RANK
from tests import hf_helpers as H
from tests.conftest import REPO, run_cli

README = (REPO / "README.md").read_text()


def readme_block(marker: str) -> str:
    """The fenced block after `<!-- marker -->` in the README."""
    m = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", README, re.S)
    assert m, marker
    return m.group(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, varied_model_dir: Path) -> dict[str, Any]:
    """One real Trainer run with the callback at every save (steps 2, 4, 6): the store, the
    checkpoint folders it left and the trainer's log history."""
    from harness.integrations import TunevalCallback

    tmp = tmp_path_factory.mktemp("trained")
    suite = H.zz_suite(tmp / "zz")
    db = tmp / "tuneval.db"
    cb = TunevalCallback(suite, every="save", db=db)
    t = H.trainer(varied_model_dir, suite, tmp / "out", [cb], learning_rate=3e-3,
                  save_strategy="steps", save_steps=2)  # fmt: skip
    cb.trainer = t
    t.train()
    return {"tmp": tmp, "suite": suite, "db": db, "out": tmp / "out", "cb": cb,
            "log": t.state.log_history}  # fmt: skip


def test_callback_stores_the_base_and_one_run_per_save(trained: dict[str, Any]) -> None:
    from harness.store import Store

    with Store(trained["db"], readonly=True) as store:
        (train,) = store.train_runs()
        runs = store.checkpoint_runs(train["id"])
        log = store.train_log(train["id"])
    assert [r["step"] for r in runs] == [0, 2, 4, 6]
    assert all(r["status"] == "complete" and r["n_cases"] == 6 for r in runs)
    assert len({r["model_fingerprint"] for r in runs}) == 4  # the weights changed every time
    assert train["trainer"] == "hf:Trainer" and train["status"] == "complete"
    assert [r["step"] for r in log if r["kind"] == "checkpoint"] == [0, 2, 4, 6]
    assert [r["step"] for r in log if r["kind"] == "log" and "loss" in r["data"]] == [2, 4, 6]
    logged = [r for r in trained["log"] if "tuneval/pass_rate" in r]
    assert [r["step"] for r in logged] == [2, 4, 6]
    for r in logged:
        assert (
            r["tuneval/delta_pass_low"] <= r["tuneval/delta_pass"] <= r["tuneval/delta_pass_high"]
        )
        assert {"tuneval/better_rate", "tuneval/criterion/no-zz", "tuneval/seconds"} <= set(r)


def test_stop_on_regression_stops_early_says_why_and_fails_the_gate(
    tmp_path: Path, varied_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from harness.integrations import GateFailed, TunevalCallback

    suite = H.zz_suite(tmp_path / "zz")  # the training data teaches "zz": every case fails
    cb = TunevalCallback(suite, every="eval", db=tmp_path / "t.db", stop_on_regression=True,
                         gate=True)  # fmt: skip
    t = H.trainer(varied_model_dir, suite, tmp_path / "out", [cb], eval_strategy="steps",
                  eval_steps=2, max_steps=12)  # fmt: skip
    cb.trainer = t
    with pytest.raises(GateFailed, match="must-pass cases stopped passing: f") as failed:
        t.train()
    assert t.state.global_step < 12
    assert cb.gate_result is failed.value.result
    assert not cb.gate_result.passed and cb.gate_result.step == t.state.global_step
    err = capfd.readouterr().err
    assert f"tuneval gate at step {t.state.global_step} against the base failed" in err
    assert f"tuneval: stopping at step {t.state.global_step}: significant regression" in err
    assert "must-pass cases stopped passing: f" in err
    evals = [r for r in t.state.log_history if "eval_loss" in r]
    assert evals and "tuneval/gate_passed" in H.log_keys(t.state.log_history)


def test_the_gate_judges_the_weights_training_ends_with(
    tmp_path: Path, varied_model_dir: Path
) -> None:
    """Training ends at step 3, between the points at 2 and 4: the gate evaluates step 3 first,
    then pairs it with the base; a small learning rate keeps the base's answers and passes it."""
    from harness.integrations import TunevalCallback
    from harness.store import Store

    suite = H.zz_suite(tmp_path / "zz")
    db = tmp_path / "t.db"
    cb = TunevalCallback(suite, every=2, db=db, gate=True)
    t = H.trainer(varied_model_dir, suite, tmp_path / "out", [cb], max_steps=3,
                  learning_rate=1e-5)  # fmt: skip
    t.train()
    with Store(db, readonly=True) as store:
        (train,) = store.train_runs()
        runs = store.checkpoint_runs(train["id"])
    assert [r["step"] for r in runs] == [0, 2, 3]
    result = cb.gate_result
    assert result is not None and result.passed and result.failures == []
    assert (result.step, result.base_run, result.run_id) == (3, runs[0]["id"], runs[2]["id"])


def test_a_resumed_trainer_continues_its_training_run(
    tmp_path: Path, varied_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Stopped after step 4, resumed from checkpoint-2: the same training run, its base, each
    step once (step 4, stored already, is not evaluated again), the new step paired with the
    stored base."""
    from harness.integrations import TunevalCallback
    from harness.store import Store

    suite = H.zz_suite(tmp_path / "zz")
    db = tmp_path / "t.db"

    def train(max_steps: int, resume: Path | None = None, db: Path = db) -> Any:
        cb = TunevalCallback(suite, every="save", db=db)
        t = H.trainer(varied_model_dir, suite, tmp_path / "out", [cb], max_steps=max_steps,
                      save_strategy="steps", save_steps=2)  # fmt: skip
        cb.trainer = t
        t.train(resume_from_checkpoint=str(resume) if resume else None)
        return t

    train(4)
    capfd.readouterr()
    t = train(6, tmp_path / "out" / "checkpoint-2")
    err = capfd.readouterr().err
    assert "(base)" not in err and "tuneval: step 6:" in err and "tuneval: step 4:" not in err
    with Store(db, readonly=True) as store:
        (run,) = store.train_runs()
        steps = [r["step"] for r in store.checkpoint_runs(run["id"])]
        log = store.train_log(run["id"])
    assert steps == [0, 2, 4, 6] and run["status"] == "complete"
    assert [r["step"] for r in log if r["kind"] == "checkpoint"] == [0, 2, 4, 6]
    assert [r["step"] for r in log if r["kind"] == "log" and "loss" in r["data"]] == [2, 4, 6]
    (point,) = [r for r in t.state.log_history if "tuneval/delta_pass" in r and r["step"] == 6]
    assert point["tuneval/delta_pass"] < 0  # paired with the stored base, which passed
    # a store that never saw the run: the points go on, without a base to pair with
    train(6, tmp_path / "out" / "checkpoint-4", db=tmp_path / "other.db")
    err = capfd.readouterr().err
    assert "resumed at step 4 with no training run of" in err
    assert re.search(r"tuneval: step 6: pass [0-9.]+%, no base to pair with", err)


def test_the_readme_lines_in_a_trl_script(tmp_path: Path, varied_model_dir: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from harness.store import Store
    from harness.suite.loader import load_suite
    from harness.training.data import chat_examples

    suite = H.zz_suite(tmp_path / "zz", wrong=False)
    tokenizer = AutoTokenizer.from_pretrained(varied_model_dir)
    model = AutoModelForCausalLM.from_pretrained(varied_model_dir)
    train = Dataset.from_list([{"messages": m} for m in chat_examples(load_suite(suite))])
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, save_steps=2, report_to=[],
                     per_device_train_batch_size=6, use_cpu=True, disable_tqdm=True)  # fmt: skip
    lines = readme_block("trl-lines").replace("suites/python-docs", str(suite))
    scope = {"SFTTrainer": SFTTrainer, "model": model, "args": args, "train": train,
             "tokenizer": tokenizer}  # fmt: skip
    import os

    os.environ["TUNEVAL_DB"] = str(tmp_path / "t.db")
    try:
        exec(lines, scope)  # the README's lines, as a user pastes them
    finally:
        del os.environ["TUNEVAL_DB"]
    with Store(tmp_path / "t.db", readonly=True) as store:
        (train_run,) = store.train_runs()
        assert [r["step"] for r in store.checkpoint_runs(train_run["id"])] == [0, 2]
    assert train_run["trainer"] == "hf:SFTTrainer"
    history = scope["trainer"].state.log_history
    assert any(r.get("step") == 2 and "tuneval/pass_rate" in r for r in history)


class DictDefault(dict):  # axolotl's config: a dict whose missing keys read as None
    def __getattr__(self, key: str) -> Any:
        return self.get(key)


def test_axolotl_plugin_through_its_hooks(
    tmp_path: Path, varied_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """axolotl pins a torch of its own and is not installed here: the plugin is driven the way
    axolotl's PluginManager drives it (load by dotted path, `get_input_args` -> a pydantic model
    of the YAML keys, `add_callbacks_post_trainer(cfg, trainer)`, `post_train(cfg, model)`,
    `post_train_unload(cfg)`), on the README's YAML lines."""
    import importlib

    from pydantic import BaseModel

    suite = H.zz_suite(tmp_path / "zz")
    cfg = DictDefault(yaml.safe_load(readme_block("axolotl-lines")))
    cfg["tuneval_suite"] = str(suite)
    cfg["tuneval_db"] = str(tmp_path / "t.db")
    cfg["tuneval_limit"] = 3
    module, name = cfg["plugins"][0].rsplit(".", 1)
    plugin = getattr(importlib.import_module(module), name)()
    args_path = plugin.get_input_args()
    args_model = getattr(
        importlib.import_module(args_path.rsplit(".", 1)[0]), args_path.rsplit(".", 1)[1]
    )
    assert issubclass(args_model, BaseModel)
    args_model.model_validate({k: v for k, v in cfg.items() if k.startswith("tuneval_")})
    t = H.trainer(varied_model_dir, suite, tmp_path / "out", max_steps=2, save_strategy="steps",
                  save_steps=2)  # fmt: skip
    for cb in plugin.add_callbacks_post_trainer(cfg, t):
        t.add_callback(cb)
    t.train()
    capsys.readouterr()
    plugin.post_train(cfg, t.model)
    plugin.post_train_unload(cfg)
    out = capsys.readouterr().out
    assert "best step 2" in out and "base" in out
    with pytest.raises(Exception, match="tuneval_limit"):
        args_model.model_validate({"tuneval_limit": "many"})


# --- sweeps over checkpoint folders ------------------------------------------------------------


def test_sweep_of_full_checkpoints_matches_the_live_curve(
    trained: dict[str, Any], varied_model_dir: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    db = trained["tmp"] / "sweep.db"
    # The live model was evaluated in its training dtype (float32); a bf16 CPU would otherwise
    # load the saved checkpoints in bf16, whose greedy answers may differ.
    monkeypatch.setenv("TUNEVAL_DTYPE", "float32")
    pattern = str(trained["out"] / "checkpoint-*")
    base = ("--base", str(varied_model_dir), "--db", str(db), "--json")
    code, out, err = run_cli(
        "eval", str(trained["suite"]), "--model", pattern, *base, capsys=capsys
    )
    assert code == 0, err
    curve = json.loads(out)
    assert [p["step"] for p in curve["points"]] == [2, 4, 6]
    best = max(curve["points"], key=lambda p: (p["pass_rate"], p["better_rate"], -p["step"]))
    assert curve["best_step"] == best["step"]
    d = curve["best"]["vs_base"]["pass_rate"]
    assert d["low"] <= d["delta"] <= d["high"]
    # the same weights saved and evaluated again grade as the live model did
    from harness.store import Store

    with Store(trained["db"], readonly=True) as store:
        (live,) = store.train_runs()
        live_grades = {r["step"]: grades(store, r["id"]) for r in store.checkpoint_runs(live["id"])}
    with Store(db, readonly=True) as store:
        swept = {
            r["step"]: grades(store, r["id"]) for r in store.checkpoint_runs(curve["train_run"])
        }
    assert swept == live_grades
    # the regressed cases are those some step graded below their base grade
    below = {
        cid for step in (2, 4, 6) for cid, g in swept[step].items() if RANK[g] < RANK[swept[0][cid]]
    }
    assert {t["case_id"] for t in curve["regressed"]} == below
    # the README's sweep commands, run again in the training folder: nothing is evaluated twice
    monkeypatch.chdir(trained["tmp"])
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    outputs = []
    for line in readme_block("sweep-command").splitlines():
        line = line.split("  #")[0].replace("suites/python-docs", str(trained["suite"]))
        argv = shlex.split(line.replace("smollm2-135m-instruct", str(varied_model_dir)))
        assert argv[0] == "tuneval"
        code, out, err = run_cli(*argv[1:], capsys=capsys)
        assert code == 0, err
        outputs.append(out)
    assert "4 evaluations taken from an earlier sweep" in outputs[0]
    assert f"best step {curve['best_step']}" in outputs[1]


def test_sweep_logs_each_checkpoint_to_the_tracker_at_its_step(
    trained: dict[str, Any], varied_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--log-to tensorboard`: the sweep's training run, read back with TensorBoard's reader,
    holds each checkpoint's rates at its step and its paired delta against the base."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = trained["tmp"] / "tb"
    code, out, err = run_cli(
        "eval", str(trained["suite"]), "--model", str(trained["out"]), "--base",
        str(varied_model_dir), "--db", str(trained["tmp"] / "tracked.db"), "--log-to",
        "tensorboard", "--dest", str(tb), "--project", "sweep", "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    curve = json.loads(out)
    acc = EventAccumulator(str(tb / "sweep" / curve["train_run"]))
    acc.Reload()

    def series(tag: str) -> list[tuple[int, float]]:
        return [(e.step, e.value) for e in acc.Scalars(f"tuneval/checkpoint/{tag}")]

    points = curve["points"]
    want = [(0, curve["base"]["pass_rate"])] + [(p["step"], p["pass_rate"]) for p in points]
    assert series("pass_rate") == [(s, pytest.approx(v)) for s, v in want]
    assert [s for s, _ in series("criterion/no-zz")] == [0, 2, 4, 6]
    deltas = [(p["step"], p["vs_base"]["pass_rate"]["delta"]) for p in points]
    assert series("vs_base/pass_rate_delta") == [(s, pytest.approx(v)) for s, v in deltas]
    assert [s for s, _ in series("vs_base/pass_rate_low")] == [2, 4, 6]


def grades(store: Any, run_id: str) -> dict[str, str]:
    return {r["case_id"]: r["grade"] for r in store.results(run_id)}


def test_sweep_of_lora_checkpoints_finds_its_base(
    tmp_path: Path, varied_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = H.zz_suite(tmp_path / "zz")
    t = H.trainer(varied_model_dir, suite, tmp_path / "out", lora=True, max_steps=4,
                  save_strategy="steps", save_steps=2)  # fmt: skip
    t.train()
    capsys.readouterr()  # the Trainer's own log lines
    folders = sorted(p.name for p in (tmp_path / "out").glob("checkpoint-*"))
    assert folders == ["checkpoint-2", "checkpoint-4"]
    assert (tmp_path / "out" / "checkpoint-2" / "adapter_config.json").is_file()
    db = str(tmp_path / "t.db")
    code, out, err = run_cli("eval", str(suite), "--model", str(tmp_path / "out"), "--db", db,
                             "--json", capsys=capsys)  # fmt: skip
    assert code == 0, err
    curve = json.loads(out)
    assert curve["base"]["model"] == str(varied_model_dir)
    assert [p["step"] for p in curve["points"]] == [2, 4]


def test_sweep_input_errors_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = H.zz_suite(tmp_path / "zz")
    db = tmp_path / "t.db"
    code, _, err = run_cli("eval", str(suite), "--model", str(tmp_path / "none-*"), "--db",
                           str(db), capsys=capsys)  # fmt: skip
    assert code == 2 and "no folder matches" in err
    (tmp_path / "out" / "checkpoint-2").mkdir(parents=True)
    code, _, err = run_cli("eval", str(suite), "--model", str(tmp_path / "out" / "checkpoint-*"),
                           "--db", str(db), capsys=capsys)  # fmt: skip
    assert code == 2 and "not a checkpoint" in err
    assert not db.exists()


def test_integrations_import_without_torch() -> None:
    import subprocess

    code = (
        "import sys, harness.integrations, harness.evaluation.sweep, harness.comparison.curve; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_training_page_shows_the_curve(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_report_apptest import open_page

    monkeypatch.setenv("TUNEVAL_DB", str(trained["db"]))
    at = open_page("training")
    assert len(at.get("vega_lite_chart")) == 3  # loss, grade shares, the curve
    best = [m.value for m in at.markdown if str(m.value).startswith("Best step")]
    assert best and "against the base" in best[0]
    links = [link for link in at.get("page_link") if "against the base" in link.proto.label]
    assert [link.proto.label for link in links] == [f"Step {s} against the base" for s in (2, 4, 6)]


@pytest.mark.slow
def test_a_killed_sweep_resumes(trained: dict[str, Any], varied_model_dir: Path) -> None:
    """kill -9 after the base point is stored; the same command finishes the rest, each step
    once."""
    import os
    import signal
    import sqlite3
    import subprocess
    import time

    from harness.store import Store
    from tests.conftest import TUNEVAL, cli

    db = trained["tmp"] / "killed.db"
    args = ["eval", str(trained["suite"]), "--model", str(trained["out"]), "--base",
            str(varied_model_dir)]  # fmt: skip
    env = {**os.environ, "TUNEVAL_DB": str(db)}
    proc = subprocess.Popen([TUNEVAL, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    sql = "SELECT COUNT(*) FROM runs WHERE status='complete'"
    try:
        while proc.poll() is None:
            try:
                if sqlite3.connect(db).execute(sql).fetchone()[0] >= 1:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    with Store(db, readonly=True) as store:
        (train,) = store.train_runs()
        assert len([r for r in store.checkpoint_runs(train["id"]) if r["status"] == "complete"]) < 4
    done = cli(*args, "--json", db=db)
    assert done.returncode == 0, done.stderr
    assert 0 in json.loads(done.stdout)["skipped"]
    with Store(db, readonly=True) as store:
        runs = store.checkpoint_runs(train["id"])
        assert [r["step"] for r in runs] == [0, 2, 4, 6]
        assert all(len(store.results(r["id"])) == 6 for r in runs)


@pytest.mark.slow
def test_callback_under_ddp_writes_one_set_and_grades_as_one_process(
    tmp_path: Path, varied_model_dir: Path
) -> None:
    """torchrun --nproc_per_node 2 (gloo): the main process alone writes the store, every rank
    logs its figures and stops at the same step (a rank left training would hang the other), and
    each point grades every case as the same training in one process does (same seed, same data).

    Why the later steps may be compared too, not only the base: the six training rows are one
    batch, 2 x 3 under DDP and 1 x 6 in one process, so every step sees the same examples, and
    the Trainer normalises the loss by the label tokens of the whole global batch
    (`average_tokens_across_devices`: `num_items_in_batch` gathered across ranks, the loss
    scaled by the world size that DDP's gradient mean divides by again): the same
    gradient up to float summation order. The weights then differ in their last bits (their
    fingerprints may differ), which a greedy answer of 12 tokens does not notice on this model."""
    import os
    import subprocess

    from harness.integrations import TunevalCallback
    from harness.store import Store

    suite = H.zz_suite(tmp_path / "zz")
    db = tmp_path / "t.db"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    cmd = [torchrun, "--nproc_per_node", "2", str(REPO / "tests" / "ddp_callback.py"),
           str(varied_model_dir), str(suite), str(tmp_path), str(db)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]["step"] < 12
    with Store(db, readonly=True) as store:
        (train,) = store.train_runs()
        runs = store.checkpoint_runs(train["id"])
        ddp = {r["step"]: grades(store, r["id"]) for r in runs}
    # the same training in one process: one batch of 6 where DDP had 2 x 3
    one_db = tmp_path / "one.db"
    cb = TunevalCallback(suite, every="eval", db=one_db, stop_on_regression=True)
    t = H.trainer(varied_model_dir, suite, tmp_path / "one", [cb], eval_strategy="steps",
                  eval_steps=2, max_steps=12)  # fmt: skip
    cb.trainer = t
    t.train()
    with Store(one_db, readonly=True) as store:
        (train,) = store.train_runs()
        one = {r["step"]: grades(store, r["id"]) for r in store.checkpoint_runs(train["id"])}
    assert ddp == one
    assert [r["step"] for r in runs] == [0, ranks[0]["step"]]
    assert all(len(g) == 6 for g in ddp.values())
    assert done.stderr.count("tuneval: stopping at step") == 1
