"""Training on several processes (torchrun, gloo on the CPU): the same losses as one process with
the same global batch, one model and one manifest, resuming after the launcher is killed; and the
compiled path."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.store import Store
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

    with Store(tmp_path / "two" / "t.db") as store:  # as if it crashed before registering
        store.remove_model(two["model"])
    db = str(tmp_path / "two" / "t.db")
    res = cli("train", str(mini_suite), "--base", str(tiny_model_dir), "--db", db, *COMMON,
              *steps, "--nproc", "2", timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]  # every process skips training, none waits
    again = json.loads(res.stdout)
    assert again["model"] == two["model"] and manifest(again) == manifest(two)


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


FULL = ["--set", "method=full", "--set", "max_steps=40", "--set", "save_every=2"]


@pytest.mark.slow
def test_fsdp_trains_like_ddp_and_resumes_after_kill(
    mini_suite: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    ddp = train(mini_suite, tiny_model_dir, tmp_path / "ddp" / "t.db", "--nproc", "2", *FULL)
    db = tmp_path / "fsdp" / "t.db"
    sharded = ["--nproc", "2", *FULL, "--set", "fsdp=true"]
    args = ["train", str(mini_suite), "--base", str(tiny_model_dir), "--db", str(db), *sharded,
            *COMMON]  # fmt: skip
    proc = subprocess.Popen([TUNEVAL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    _first_checkpoint(db.parent / "models", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ckpts = db.parent / "models"
    done = sorted(p for p in ckpts.glob("*/checkpoints/step-*") if not p.name.endswith(".tmp"))
    # the sharded run's checkpoint: the gathered model, the run's state, one optimizer shard each
    assert {"model.safetensors", "trainer_state.pt", "optimizer-0.pt", "optimizer-1.pt"} <= {
        p.name for p in done[-1].iterdir()
    }
    fsdp = train(mini_suite, tiny_model_dir, db, *sharded)
    assert fsdp["resumed_from"] == int(done[-1].name.split("-")[1]) and fsdp["steps"] == 40
    curve_ddp, curve_fsdp = manifest(ddp)["loss_curve"], manifest(fsdp)["loss_curve"]
    assert [s for s, _ in curve_fsdp] == list(range(1, 41))
    worst = max(abs(b - a) / a for (_, a), (_, b) in zip(curve_ddp, curve_fsdp, strict=True))
    print(f"FSDP vs DDP, 40 steps: largest relative loss difference {worst:.1e}")
    # float32 sums in another order (reduce-scatter, sharded norms), compounded over 40 steps
    assert worst <= 1e-3
    weights = [load_file(Path(r["path"]) / "model.safetensors") for r in (ddp, fsdp)]
    assert weights[0].keys() == weights[1].keys()  # the tied output layer saved once, as DDP
    drift = max(float((weights[0][k] - weights[1][k]).abs().max()) for k in weights[0])
    print(f"FSDP vs DDP, 40 steps: largest weight difference {drift:.1e}")
    assert drift <= 5e-4
    res = cli("eval", str(mini_suite), "--model", fsdp["model"], "--json", db=db)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["n"] == 6


def _first_checkpoint(models: Path, proc: subprocess.Popen) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if [p for p in models.glob("*/checkpoints/step-*") if not p.name.endswith(".tmp")]:
            return
        time.sleep(0.1)
    raise AssertionError(proc.stderr.read().decode()[-2000:] if proc.stderr else "no checkpoint")


def load_file(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _two_nodes(suite: Path, model: Path, dbs: tuple[Path, Path], *extra: str) -> list:
    """Two `tuneval train` launchers on this machine, one node each, meeting at a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [
                TUNEVAL,
                "train",
                str(suite),
                "--base",
                str(model),
                "--db",
                str(db),
                "--torchrun=--nnodes=2",
                f"--torchrun=--node_rank={rank}",
                f"--torchrun=--rdzv-endpoint=127.0.0.1:{port}",
                *COMMON,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank, db in enumerate(dbs)
    ]
    return [(p, *p.communicate(timeout=600)) for p in procs]


@pytest.mark.slow
def test_two_nodes_on_one_machine_train_one_model(
    mini_suite: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "shared" / "t.db"  # one folder both nodes see
    sharded = ["--set", "method=full", "--set", "fsdp=true", "--set", "max_steps=4",
               "--set", "save_every=2"]  # fmt: skip
    nodes = _two_nodes(mini_suite, tiny_model_dir, (db, db), *sharded)
    for proc, _, stderr in nodes:
        assert proc.returncode == 0, stderr[-3000:]
    result, second = json.loads(nodes[0][1]), nodes[1][1]
    assert second == ""  # the main process alone reports
    assert manifest(result)["world_size"] == 2
    assert [s for s, _ in manifest(result)["loss_curve"]] == [1, 2, 3, 4]
    models = json.loads(cli("models", "list", "--json", "--db", str(db)).stdout)
    assert [m["name"] for m in models if m["kind"] == "trained"] == [result["model"]]
    assert len(list((db.parent / "models").glob("*/tuneval-manifest.json"))) == 1


@pytest.mark.slow
def test_two_nodes_need_a_shared_folder(
    mini_suite: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    dbs = (tmp_path / "node0" / "t.db", tmp_path / "node1" / "t.db")
    nodes = _two_nodes(mini_suite, tiny_model_dir, dbs, "--set", "max_steps=4")
    for proc, stdout, stderr in nodes:
        assert proc.returncode == 2 and stdout == "", stderr[-3000:]
        assert "filesystem every node shares" in stderr and "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == 1
    for db in dbs:
        assert not list((db.parent / "models").glob("*/tuneval-manifest.json"))
    with Store(dbs[0]) as store:  # the refusal came before the main node recorded a run
        assert store.train_runs() == []
