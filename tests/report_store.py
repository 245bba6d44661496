"""A store with a base run, a checkpoint run and a candidate run on the mini suite, built with the
real runner and the fake backend. Shared by the report's AppTest and browser tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from harness.evaluation.runner import EvalOptions, evaluate_suite
from harness.generation.models import ModelRef
from harness.store import Store
from harness.suite.loader import load_suite
from tests.conftest import TRAIN, FakeBackend, write_suite

SCRIPT = "<script>alert(1)</script>"
ONERROR = "<img src=x onerror=alert(1)>not sure"
JAVASCRIPT = "[the docs](javascript:alert(1))"

# function name in the prompt -> output. Comments: grade in the base run -> in the candidate run.
BASE = {
    "dedent": "textwrap",  # better -> better (unchanged)
    "dumps": "the json module",  # good -> better (improved)
    "getcwd": ONERROR,  # bad -> better (improved), an onerror handler in an output
    "sqrt": "math",  # better -> good (regressed)
    "choice": "The random module has choice. " + JAVASCRIPT,  # good -> bad (regressed)
    "deepcopy": "copy",  # better -> better (unchanged)
}
CANDIDATE = {
    "dedent": "textwrap",
    "dumps": "json",
    "getcwd": "os",
    "sqrt": "I think it is in the math library, maybe.",
    "choice": SCRIPT,
    "deepcopy": "copy",
}
CHECKPOINT = {**BASE, "dumps": "json"}
# Training rows that leak two test prompts, both of them regressed cases: e exactly, d nearly.
LEAKS = [{"function": "choice", "module": "random"}, {"function": "sqrts", "module": "math"}]


@dataclass
class ReportStore:
    db: Path
    suite: Path
    base_run: str
    checkpoint_run: str
    candidate_run: str
    train_run: str


def _ref(name: str, kind: str) -> ModelRef:
    return ModelRef(name, name, Path("/nonexistent") / name, kind, f"fp-{name}")


def _answer(table: dict[str, str]) -> FakeBackend:
    def answer(user: str) -> str:
        function = user.removeprefix("Which module holds ").removesuffix("?")
        return table[function]

    return FakeBackend(answer)


def build(folder: Path) -> ReportStore:
    folder.mkdir(parents=True, exist_ok=True)
    suite = load_suite(write_suite(folder / "mini", train=TRAIN + LEAKS))
    db = folder / "tuneval.db"
    train_run = "train-test-1"
    with Store(db) as store:
        now = time.time()
        model = {"path": None, "produced_by": None, "info": {}, "base": None, "created_at": now}
        base_model = {"name": "base-model", "spec": "base-model", "kind": "local"}
        store.register_model({**model, **base_model, "fingerprint": "fp-base-model"})
        candidate = {"name": "mini-sft", "spec": "mini-sft", "kind": "trained"}
        store.register_model(
            {
                **model,
                **candidate,
                "fingerprint": "fp-mini-sft",
                "base": "base-model",
                "produced_by": train_run,
                "info": {"epochs": 2},
            }
        )
        store.insert_train_run(
            {
                "id": train_run,
                "suite": "mini",
                "trainer": "sft",
                "base": "base-model",
                "config": {"method": "lora", "lr": 2e-4, "epochs": 2},
                "output_dir": str(folder / "out"),
                "model": "mini-sft",
                "status": "complete",
                "created_at": now,
                "finished_at": now,
            }
        )
        for step in range(1, 11):
            data = {"loss": 2.5 / step, "lr": 2e-4, "tokens_per_s": 900.0}
            store.log_train(train_run, step, "log", data)
        store.log_train(train_run, 10, "log", {"val_loss": 0.4})  # the last line: no lr in it
        kw = {"progress": False, "dtype": "float32"}
        base = evaluate_suite(
            suite, _ref("base-model", "local"), store, EvalOptions(**kw), backend=_answer(BASE)
        )
        ckpt = evaluate_suite(
            suite,
            _ref("mini-sft/checkpoint-5", "local"),
            store,
            EvalOptions(train_run=train_run, step=5, **kw),
            backend=_answer(CHECKPOINT),
        )
        cand = evaluate_suite(
            suite,
            _ref("mini-sft", "trained"),
            store,
            EvalOptions(train_run=train_run, step=10, **kw),
            backend=_answer(CANDIDATE),
        )
        for step, run in ((5, ckpt.run_id), (10, cand.run_id)):
            store.log_train(train_run, step, "checkpoint", {"path": f"ckpt-{step}"})
            store.log_train(train_run, step, "eval", {"run_id": run})
    return ReportStore(db, folder / "mini", base.run_id, ckpt.run_id, cand.run_id, train_run)
