"""Several processes on one store: evaluations of the same run key are computed once, a claim
dies with its holder, and nothing is stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.store import Store
from tests.conftest import TUNEVAL


def _start_evals(n: int, suite: Path, model: Path, db: Path, logs: Path) -> list[tuple]:
    env = {**os.environ, "TUNEVAL_DB": str(db)}
    procs = []
    for i in range(n):
        err = open(logs / f"eval-{i}.err", "w")  # noqa: SIM115 - closed by the caller
        cmd = [TUNEVAL, "eval", str(suite), "--model", str(model)]
        procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env), err))
    return procs


def _finish(procs: list[tuple]) -> list[str]:
    outs = []
    for proc, err in procs:
        out, _ = proc.communicate(timeout=600)
        err.close()
        assert proc.returncode == 0, Path(err.name).read_text()[-2000:]
        outs.append(out.decode())
    return outs


def _run_key(suite: Path, model: Path, db: Path) -> str:
    from harness.evaluation.runner import EvalOptions, _plan
    from harness.generation import models
    from harness.suite.loader import load_suite

    with Store(db) as store:
        ref = models.resolve(str(model), store)
        return _plan(load_suite(suite), ref, EvalOptions(), store).run_key


def test_three_evals_at_once_compute_one_run(
    tmp_path: Path, mini_suite: Path, tiny_model_dir: Path
) -> None:
    """Three `tuneval eval` of the same suite and model start while the run key is claimed; when
    the claim goes, one computes the run and the other two take it: one run, each case once."""
    db = tmp_path / "tuneval.db"
    key = _run_key(mini_suite, tiny_model_dir, db)
    with Store(db) as store, store.claim(f"run:{key}"):
        procs = _start_evals(3, mini_suite, tiny_model_dir, db, tmp_path)
        deadline = time.time() + 300
        logs = [Path(err.name) for _, err in procs]
        while not all("waiting:" in log.read_text() for log in logs):
            assert time.time() < deadline, [log.read_text()[-500:] for log in logs]
            assert all(p.poll() is None for p, _ in procs), "an eval ended instead of waiting"
            time.sleep(0.2)
    outs = _finish(procs)
    with Store(db, readonly=True) as store:
        runs = store.runs()
        assert len(runs) == 1 and runs[0]["status"] == "complete", runs
        results = store.results(runs[0]["id"])
    assert sorted(r["case_id"] for r in results) == list("abcdef")
    assert all(runs[0]["id"] in out for out in outs)
    assert sum("computed meanwhile by another" in out for out in outs) == 2


def test_three_evals_racing_store_each_case_once(
    tmp_path: Path, mini_suite: Path, tiny_model_dir: Path
) -> None:
    """Started together with nothing to hold them back: no crash, no case generated twice."""
    db = tmp_path / "tuneval.db"
    _finish(_start_evals(3, mini_suite, tiny_model_dir, db, tmp_path))
    with Store(db, readonly=True) as store:
        runs = store.runs()
        assert runs and all(r["status"] == "complete" for r in runs)
        for run in runs:
            ids = [r["case_id"] for r in store.results(run["id"])]
            assert sorted(ids) == list("abcdef")
        generated = sum(r["timings"]["generated"] for r in runs)
    assert generated == 6  # the others took every answer from the cache


def test_a_claim_dies_with_its_holder(tmp_path: Path) -> None:
    """A holder killed with -9 leaves no stale claim: the kernel drops its lock."""
    db = tmp_path / "tuneval.db"
    Store(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from harness.store import Store\n"
         f"s = Store({str(db)!r})\n"
         "with s.claim('run:x'):\n    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with Store(db) as store:
        with store.claim("run:y") as waited:  # another key is free
            assert not waited
        got: list[bool] = []

        def claim() -> None:
            with store.claim("run:x") as waited:
                got.append(waited)

        waiter = threading.Thread(target=claim, daemon=True)
        waiter.start()
        waiter.join(timeout=1)
        assert waiter.is_alive() and not got  # blocked behind the holder
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        waiter.join(timeout=60)
        assert got == [True]
