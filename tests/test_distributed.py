"""Training on several processes (torchrun, gloo on the CPU): the same losses as one process with
the same global batch, one model and one manifest, resuming after the launcher is killed; and the
compiled path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TUNEVAL, cli

COMMON = ["--set", "batch_size=1", "--set", "log_every=1", "--set", "val_examples=0",
          "--set", "max_length=64", "--set", "seed=3", "--json"]  # fmt: skip


def train(suite: Path, model: Path, db: Path, *extra: str) -> dict:
    res = cli("train", str(suite), "--base", str(model), "--db", str(db), *COMMON, *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def manifest(result: dict) -> dict:
    return json.loads((Path(result["path"]) / "tuneval-manifest.json").read_text())


def test_two_processes_train_like_one_with_the_same_global_batch(
    mini_suite: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    steps = ["--set", "max_steps=4", "--set", "save_every=2"]
    one = train(mini_suite, tiny_model_dir, tmp_path / "one" / "t.db", *steps,
                "--set", "grad_accum=2")  # fmt: skip
    two = train(mini_suite, tiny_model_dir, tmp_path / "two" / "t.db", *steps, "--nproc", "2")
    curve_one, curve_two = manifest(one)["loss_curve"], manifest(two)["loss_curve"]
    assert [s for s, _ in curve_two] == [1, 2, 3, 4]
    for (_, a), (_, b) in zip(curve_one, curve_two, strict=True):
        assert b == pytest.approx(a, rel=1e-4)  # the same examples per step, summed alike
    assert manifest(two)["world_size"] == 2 and manifest(one)["world_size"] == 1
    models = json.loads(
        cli("models", "list", "--json", "--db", str(tmp_path / "two" / "t.db")).stdout
    )
    assert [m["name"] for m in models if m["kind"] == "trained"] == [two["model"]]
    assert len(list((tmp_path / "two" / "models").glob("*/tuneval-manifest.json"))) == 1


def test_killed_launcher_takes_its_workers_and_the_rerun_resumes(
    mini_suite: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "ws" / "t.db"
    args = [TUNEVAL, "train", str(mini_suite), "--base", str(tiny_model_dir), "--db", str(db),
            "--nproc", "2", "--set", "max_steps=40", "--set", "save_every=2", *COMMON]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    ckpts = db.parent / "models"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if [p for p in ckpts.glob("*/checkpoints/step-*") if not p.name.endswith(".tmp")]:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)  # the launcher only: its workers must follow
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and _workers(db):
        time.sleep(0.2)
    assert _workers(db) == [], "workers outlived their launcher"
    saved = sorted(p for p in ckpts.glob("*/checkpoints/step-*") if not p.name.endswith(".tmp"))
    step = int(saved[-1].name.split("-")[1])
    result = train(mini_suite, tiny_model_dir, db, "--nproc", "2", "--set", "max_steps=40",
                   "--set", "save_every=2")  # fmt: skip
    assert result["resumed_from"] == step and result["steps"] == 40
    assert [s for s, _ in manifest(result)["loss_curve"]] == list(range(1, 41))


def _workers(db: Path) -> list[int]:
    """Processes still running with this store on their command line."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(db).encode() in cmd and b"harness.cli" in cmd:
            found.append(int(proc.name))
    return found


def test_nproc_refuses_what_it_cannot_do(
    mini_suite: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    res = cli("train", str(mini_suite), "--base", str(tiny_model_dir), "--db", str(db),
              "--nproc", "2", "--set", "fsdp=true")  # fmt: skip
    assert res.returncode == 2 and "fsdp=true" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_compiled_training_runs_on_the_cpu(
    mini_suite: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    result = train(mini_suite, tiny_model_dir, tmp_path / "t.db", "--set", "max_steps=3",
                   "--set", "compile=true", "--set", "tokens_per_batch=128")  # fmt: skip
    facts = manifest(result)
    assert facts["compiled"] is True and facts["token_budget"] == 128
    plain = train(mini_suite, tiny_model_dir, tmp_path / "p.db", "--set", "max_steps=3",
                  "--set", "tokens_per_batch=128")  # fmt: skip
    for (_, a), (_, b) in zip(facts["loss_curve"], manifest(plain)["loss_curve"], strict=True):
        assert a == pytest.approx(b, rel=1e-3)  # compiling changes speed, not the arithmetic
