"""`runs log --to` and `--log-to`: each tracker written with its own library and read back with
it, offline; a test fails if anything tries to reach a non-loopback address."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

import pytest

from tests.compare_helpers import answers
from tests.conftest import FakeBackend, cli, run_cli, write_suite


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection beyond this machine fails the test (loopback stays: W&B talks to its own
    service process over it)."""
    real = socket.socket.connect

    def connect(self, address):  # type: ignore[no-untyped-def]
        host = address[0] if isinstance(address, tuple) else ""
        if isinstance(address, tuple) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network call attempted: {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


@pytest.fixture
def logged_store(tmp_path: Path) -> dict:
    """A base run, and a candidate run whose model came from a training run with a loss curve
    and one evaluated checkpoint."""
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation.models import ModelRef
    from harness.store import Store
    from harness.suite.loader import load_suite

    db = tmp_path / "tuneval.db"
    suite_dir = write_suite(tmp_path / "mini")
    suite = load_suite(suite_dir)
    with Store(db) as store:

        def run(name: str, answer, **opts) -> str:
            fp = hashlib.sha256(name.encode()).hexdigest()
            ref = ModelRef(name, name, suite_dir, "local", fp)
            o = EvalOptions(progress=False, dtype="float32", **opts)
            return evaluate_suite(suite, ref, store, o, backend=FakeBackend(answer)).run_id

        base = run("base", answers({"a": "no idea", "b": "no idea", "c": "os"}))
        now = time.time()
        store.insert_train_run(
            {"id": "train-1", "suite": "mini", "trainer": "sft", "base": "base",
             "config": {"lr": 1e-4, "steps": 3}, "output_dir": str(tmp_path / "out"),
             "model": "cand", "status": "complete", "created_at": now, "finished_at": now}
        )  # fmt: skip
        for step, loss in ((1, 2.5), (2, 1.75), (3, 1.25)):
            store.log_train("train-1", step, "log", {"loss": loss, "lr": 1e-4})
        ckpt = run("cand@2", answers({"a": "no idea"}), train_run="train-1", step=2)
        store.register_model(
            {"name": "cand", "spec": "cand", "path": str(tmp_path / "out"), "fingerprint": "f",
             "kind": "trained", "base": "base", "produced_by": "train-1", "info": {},
             "created_at": now}
        )  # fmt: skip
        cand = run("cand", answers())
        base_rate = sum(r["grade"] != "bad" for r in store.results(base)) / 6
    return {"db": db, "base": base, "cand": cand, "ckpt": ckpt, "base_rate": base_rate}


def _log(s: dict, capsys, *args: str) -> list[str]:
    code, out, err = run_cli(
        "runs", "log", s["cand"], "--against", s["base"], "--db", str(s["db"]), "--json", *args,
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    return json.loads(out)["logged"]


def test_tensorboard_read_back(logged_store, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    where = _log(logged_store, capsys, "--to", "tensorboard", "--dest", str(tmp_path / "tb"))
    acc = EventAccumulator(where[0])
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert acc.Scalars("tuneval/pass_rate")[-1].value == 1.0
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [
        (1, 2.5),
        (2, 1.75),
        (3, 1.25),
    ]
    assert [e.step for e in acc.Scalars("tuneval/checkpoint/pass_rate")] == [2]
    assert "tuneval/vs_base/pass_rate_delta" in scalars and "tuneval/criterion/bare" in scalars
    delta = acc.Scalars("tuneval/vs_base/pass_rate_delta")[-1].value
    assert delta == pytest.approx(1.0 - logged_store["base_rate"])
    texts = acc.Tags()["tensors"]
    assert "tuneval/verdict/text_summary" in texts and "tuneval/cases/text_summary" in texts
    rows = (Path(where[0]) / "cases.csv").read_text().splitlines()
    assert rows[0] == "case_id,grade,failed,output" and len(rows) == 7


def test_mlflow_file_store_read_back(logged_store, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    _log(logged_store, capsys, "--to", "mlflow", "--dest", uri, "--project", "exp")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == logged_store["cand"]
    assert run.data.metrics["tuneval/pass_rate"] == 1.0
    assert run.data.tags["tuneval.verdict"] in ("improved", "insufficient evidence")
    assert run.data.params["tuneval.model"] == "cand"
    assert run.data.params["tuneval.baseline_run"] == logged_store["base"]
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in loss] == [(1, 2.5), (2, 1.75), (3, 1.25)]
    assert "cases.json" in [a.path for a in client.list_artifacts(run.info.run_id)]


def _wandb_records(folder: Path) -> list[dict]:
    """The offline run's transaction log, read with W&B's own reader."""
    (log,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    res = cli("--help")  # the tuneval script's folder holds the wandb script too
    assert res.returncode == 0
    from tests.conftest import TUNEVAL

    wandb_cli = Path(TUNEVAL).with_name("wandb")
    import subprocess

    out = subprocess.run(
        [str(wandb_cli), "leet", "inspect", "--json", str(log)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_wandb_offline_read_back(logged_store, tmp_path, capsys):
    dest = tmp_path / "wb"
    dest.mkdir()
    _log(logged_store, capsys, "--to", "wandb", "--dest", str(dest), "--project", "p")
    records = _wandb_records(dest)
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["display_name"] == logged_store["cand"] and run["project"] == "p"
    assert run["config"]["update"]["tuneval.model"] == "cand"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["train/loss"] for h in history if "train/loss" in h] == [2.5, 1.75, 1.25]
    summary: dict = {}
    for r in records:
        if r["type"] == "summary":
            summary.update(r["summary"].get("update", {}))
    assert summary["tuneval/pass_rate"] == 1.0
    assert summary["tuneval/verdict"] in ("improved", "insufficient evidence")
    assert any(k.startswith("tuneval/cases") for h in history for k in h)  # the per-case table
    (table,) = dest.glob("wandb/offline-run-*/files/media/table/**/*.table.json")
    assert len(json.loads(table.read_text())["data"]) == 6


GUARD = """\
import socket
_real = socket.socket.connect
def _connect(self, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit(f"network call attempted: {address}")
    return _real(self, address)
socket.socket.connect = _connect
"""


def test_trackio_local_read_back(logged_store, tmp_path):
    """In a subprocess (trackio reads its folder when imported), with the same network guard
    installed there through sitecustomize."""
    import os

    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    path = os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH", "")) if p)
    dest = tmp_path / "trackio"
    s = logged_store
    res = cli(
        "runs", "log", s["cand"], "--against", s["base"], "--to", "trackio", "--dest", str(dest),
        "--project", "proj", db=s["db"], env={"PYTHONPATH": path},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    import subprocess
    import sys

    read = (
        "import json, sys\n"
        "from trackio.sqlite_storage import SQLiteStorage\n"
        "print(json.dumps({'runs': SQLiteStorage.get_runs('proj'),"
        f" 'logs': SQLiteStorage.get_logs('proj', {s['cand']!r})}}, default=str))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", read], capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "TRACKIO_DIR": str(dest)}, timeout=120,
    )  # fmt: skip
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["runs"] == [s["cand"]]
    logs = doc["logs"]
    assert [row["train/loss"] for row in logs if "train/loss" in row] == [2.5, 1.75, 1.25]
    assert any(row.get("tuneval/pass_rate") == 1.0 for row in logs)
    assert any("tuneval/cases" in row for row in logs)


def test_eval_log_to_and_missing_tracker(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNEVAL_DB", str(tmp_path / "t.db"))
    suite = write_suite(tmp_path / "mini")
    code, _, err = run_cli("eval", str(suite), "--log-to", "nope", capsys=capsys)
    assert code == 2 and "unknown tracker 'nope'" in err
    assert not (tmp_path / "t.db").exists()  # refused before the store is touched
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "mlflow" else real(n, *a)
    )
    code, _, err = run_cli("eval", str(suite), "--log-to", "mlflow", capsys=capsys)
    assert code == 2 and "pip install 'tuneval[trackers]'" in err
    assert not (tmp_path / "t.db").exists()


def test_eval_log_to_tensorboard(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("TUNEVAL_DB", str(tmp_path / "t.db"))
    suite = write_suite(tmp_path / "mini")
    tb = tmp_path / "tb"
    code, out, err = run_cli(
        "eval", str(suite), "--model", str(tiny_model_dir), "--limit", "2", "--log-to",
        "tensorboard", "--dest", str(tb), "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    acc = EventAccumulator(str(tb / "tuneval" / run_id))
    acc.Reload()
    assert acc.Scalars("tuneval/n_cases")[-1].value == 2


def test_loop_log_to_tensorboard_has_loss_and_verdict(tmp_path, tiny_model_dir, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    suite = write_suite(tmp_path / "mini")
    tb = tmp_path / "tb"
    args = ["loop", str(suite), "--base", str(tiny_model_dir), "--db", str(tmp_path / "t.db")]
    for item in ("max_steps=2", "batch_size=2", "max_length=64", "val_examples=0"):
        args += ["--set", item]
    code, out, err = run_cli(
        *args, "--log-to", "tensorboard", "--dest", str(tb), "--json", capsys=capsys
    )
    assert code == 0, err
    data = json.loads(out)
    from harness.store import Store

    train_run = data["train"]["train_run"]
    with Store(tmp_path / "t.db") as store:
        losses = [(r["step"], r["data"]["loss"]) for r in store.train_log(train_run)
                  if r["kind"] == "log"]  # fmt: skip
    assert losses
    cand = EventAccumulator(str(tb / "tuneval" / data["candidate_run"]))
    cand.Reload()
    assert "tuneval/vs_base/pass_rate_delta" in cand.Tags()["scalars"]
    assert "tuneval/verdict/text_summary" in cand.Tags()["tensors"]
    for acc in (cand, EventAccumulator(str(tb / "tuneval" / train_run))):
        acc.Reload()
        got = [(e.step, e.value) for e in acc.Scalars("train/loss")]
        assert got == [(s, pytest.approx(v)) for s, v in losses]
