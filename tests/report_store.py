"""A store with a base run, a checkpoint run and a candidate run on the mini suite, built with the
real runner and the fake backend. Shared by the report's AppTest and browser tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from harness.models import ModelRef
from harness.runner import evaluate
from harness.store import Store
from harness.suite import load_suite
from tests.conftest import FakeBackend, write_suite

SCRIPT = "<script>alert(1)</script>"

# function name in the prompt -> output. Comments: grade in the base run -> in the candidate run.
BASE = {
    "dedent": "textwrap",  # better -> better (unchanged)
    "dumps": "the json module",  # good -> better (improved)
    "getcwd": "<b>not sure</b>",  # bad -> better (improved), HTML in an output
    "sqrt": "math",  # better -> good (regressed)
    "choice": "The random module has choice.",  # good -> bad (regressed)
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
    suite = load_suite(write_suite(folder / "mini"))
    db = folder / "tuneval.db"
    train_run = "train-test-1"
    with Store(db) as store:
        store.register_model(
            "base-model", "base-model", path=None, fingerprint="fp-base-model", kind="local"
        )
        store.register_model(
            "mini-sft",
            "mini-sft",
            path=None,
            fingerprint="fp-mini-sft",
            kind="trained",
            base="base-model",
            produced_by=train_run,
            info={"epochs": 2},
        )
        with store.tx() as conn:
            conn.execute(
                "INSERT INTO train_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    train_run,
                    "mini",
                    "sft",
                    "base-model",
                    json.dumps({"method": "lora", "lr": 2e-4, "epochs": 2}),
                    str(folder / "out"),
                    "mini-sft",
                    "complete",
                    time.time(),
                    time.time(),
                ),
            )
            for step in range(1, 11):
                data = {"loss": 2.5 / step, "lr": 2e-4, "tokens_per_s": 900.0}
                conn.execute(
                    "INSERT INTO train_log VALUES (?, ?, 'log', ?, ?)",
                    (train_run, step, json.dumps(data), time.time()),
                )
        kw = {"progress": False, "dtype": "float32"}
        base = evaluate(suite, _ref("base-model", "local"), store, backend=_answer(BASE), **kw)
        ckpt = evaluate(
            suite,
            _ref("mini-sft/checkpoint-5", "local"),
            store,
            backend=_answer(CHECKPOINT),
            train_run=train_run,
            step=5,
            **kw,
        )
        cand = evaluate(
            suite,
            _ref("mini-sft", "trained"),
            store,
            backend=_answer(CANDIDATE),
            train_run=train_run,
            step=10,
            **kw,
        )
        with store.tx() as conn:
            for step, run in ((5, ckpt.run_id), (10, cand.run_id)):
                conn.execute(
                    "INSERT INTO train_log VALUES (?, ?, 'checkpoint', ?, ?)",
                    (train_run, step, json.dumps({"path": f"ckpt-{step}"}), time.time()),
                )
                conn.execute(
                    "INSERT INTO train_log VALUES (?, ?, 'eval', ?, ?)",
                    (train_run, step, json.dumps({"run_id": run}), time.time()),
                )
    return ReportStore(db, folder / "mini", base.run_id, ckpt.run_id, cand.run_id, train_run)
