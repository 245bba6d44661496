"""Served models: registering an endpoint, evaluating through it with faults injected, resuming
after kill -9, a server that is down, the API key kept out of the store, and a real
`transformers serve` process with the packaged model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CASES, TUNEVAL, cli, run_cli
from tests.served_stub import StubServer

MODULE_OF = {c["function"]: c["module"] for c in CASES}


def oracle(user: str) -> str:
    function = user.removeprefix("Which module holds ").removesuffix("?")
    return MODULE_OF.get(function, "no idea")


def add(db: Path, url: str, *extra: str, name: str = "served") -> subprocess.CompletedProcess:
    return cli("models", "add", name, "--url", url, "--model", "stub-model", *extra, db=db)


def test_eval_through_a_faulty_server_loses_and_repeats_nothing(
    mini_suite: Path, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    with StubServer(oracle, faults=0.4, seed=3) as server:
        assert add(db, server.url, "--timeout", "1").returncode == 0
        res = cli("eval", str(mini_suite), "--model", "served", "--json", db=db)
        assert res.returncode == 0, res.stderr
        data = json.loads(res.stdout)
        assert data["n"] == len(CASES) and data["generated"] == len(CASES)
        assert data["served"]["retries"] == sum(server.injected.values()) > 0  # every fault retried
        assert data["grades"]["better"] == len(CASES)  # the oracle's answers, all of them
        # every case answered once, plus once more for each slow answer the client gave up on
        assert sum(server.served.values()) == len(CASES) + server.injected["slow"]
        shown = json.loads(cli("runs", "show", data["run_id"], "--json", db=db).stdout)
        assert sorted(c["id"] for c in shown["cases"]) == sorted(c["id"] for c in CASES)
        assert shown["engine"] == "served"
        res = cli("eval", str(mini_suite), "--model", "served", "--json", db=db)
        again = json.loads(res.stdout)
    assert again["cached"] == len(CASES) and again["generated"] == 0  # all from the cache
    runs = json.loads(cli("runs", "list", "--json", db=db).stdout)
    assert {r["model"] for r in runs} == {"served"} and all(r["verified"] is False for r in runs)


def test_unreachable_server_is_one_line_and_writes_nothing(
    mini_suite: Path, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    res = add(db, url)
    assert res.returncode == 2 and f"cannot reach {url}" in res.stderr and not db.exists()
    assert add(db, url, "--no-check").returncode == 0  # registered without asking the server
    res = cli("eval", str(mini_suite), "--model", "served", db=db)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and url in res.stderr
    assert "Traceback" not in res.stderr
    assert json.loads(cli("runs", "list", "--json", db=db).stdout) == []  # no run recorded


def test_api_key_is_read_at_call_time_and_never_stored(mini_suite: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    secret = "sk-test-0123456789-secret"
    with StubServer(oracle, api_key=secret) as server:
        res = add(db, server.url, "--api-key-env", "STUB_KEY", "--no-check")
        assert res.returncode == 0
        missing = cli("eval", str(mini_suite), "--model", "served", db=db, env={"STUB_KEY": ""})
        assert (
            missing.returncode == 2 and "STUB_KEY" in missing.stderr and "not set" in missing.stderr
        )
        res = cli("eval", str(mini_suite), "--model", "served", db=db, env={"STUB_KEY": "wrong"})
        assert res.returncode == 2 and "401" in res.stderr  # the key is read when calling
        res = cli("eval", str(mini_suite), "--model", "served", db=db, env={"STUB_KEY": secret})
        assert res.returncode == 0, res.stderr
        assert f"Bearer {secret}" in server.auth_seen
    for path in db.parent.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_kill_9_mid_run_then_rerun_resumes(mini_suite: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with StubServer(oracle, delay=0.5) as server:
        assert add(db, server.url, "--concurrency", "1").returncode == 0
        env = {**os.environ, "TUNEVAL_DB": str(db)}
        proc = subprocess.Popen(
            [TUNEVAL, "eval", str(mini_suite), "--model", "served", "--json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 120
        while time.time() < deadline and sum(server.served.values()) < 2:
            time.sleep(0.05)
        time.sleep(0.6)  # let a commit land
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        first_pass = sum(server.served.values())
        assert 0 < first_pass < len(CASES), "the run must be killed mid-way"
        res = cli("eval", str(mini_suite), "--model", "served", "--json", db=db)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["resumed"] and data["n"] == len(CASES)
    shown = json.loads(cli("runs", "show", data["run_id"], "--json", db=db).stdout)
    ids = [c["id"] for c in shown["cases"]]
    assert sorted(ids) == sorted(c["id"] for c in CASES)  # each case once
    assert sum(server.served.values()) <= len(CASES) + 1  # at most the one in flight, again


def test_models_add_validates_and_remove_forgets(tmp_path: Path, capsys) -> None:
    db = tmp_path / "t.db"
    code, _, err = run_cli("models", "add", "x", "--url", "ftp://host", "--model", "m",
                           "--no-check", "--db", str(db), capsys=capsys)  # fmt: skip
    assert code == 2 and "http" in err
    default = "smollm2-135m-instruct"
    code, _, err = run_cli("models", "add", default, "--url", "http://h:1/v1", "--model", "m",
                           "--no-check", "--db", str(db), capsys=capsys)  # fmt: skip
    assert code == 2
    code, out, _ = run_cli("models", "add", "x", "--url", "http://h:1/v1/", "--model", "m",
                           "--revision", "r1", "--no-check", "--json", "--db", str(db),
                           capsys=capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["url"] == "http://h:1/v1"
    code, out, _ = run_cli("models", "list", "--json", "--db", str(db), capsys=capsys)
    listed = {m["name"]: m for m in json.loads(out)}
    assert listed["x"]["kind"] == "served" and listed["x"]["fingerprint_verified"] is False
    from harness.generation.models import resolve
    from harness.generation.served import fingerprint
    from harness.store import Store

    with Store(db, readonly=True) as store:
        assert resolve("x", store).fingerprint == fingerprint("m", "r1")  # not the URL
    code, _, _ = run_cli("models", "remove", "x", "--db", str(db), capsys=capsys)
    assert code == 0
    code, _, err = run_cli("models", "remove", "x", "--db", str(db), capsys=capsys)
    assert code == 2 and "no served model" in err


def test_compare_says_a_served_fingerprint_is_not_verified(
    mini_suite: Path, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    with StubServer(oracle) as one, StubServer(lambda u: "no idea", model="other") as two:
        assert add(db, one.url, name="good").returncode == 0
        two_add = cli("models", "add", "bad", "--url", two.url, "--model", "other", db=db)
        assert two_add.returncode == 0
        for name in ("good", "bad"):
            assert cli("eval", str(mini_suite), "--model", name, db=db).returncode == 0
    res = cli("compare", "good", "bad", "--json", db=db)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["verdict"] in ("regressed", "insufficient evidence")
    assert sum("not verified" in w for w in data["warnings"]) == 2


# --- a real server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def transformers_serve(packaged_model_dir: Path, tmp_path: Path):
    """`transformers serve` on 127.0.0.1 with the packaged model; stopped by its PID."""
    pytest.importorskip("fastapi")
    port = _free_port()
    exe = Path(sys.executable).parent / "transformers"
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [str(exe), "serve", str(packaged_model_dir), "--host", "127.0.0.1", "--port", str(port),
         "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail((tmp_path / "serve.log").read_text()[-2000:])
            time.sleep(1)
    try:
        yield f"{url}/v1", str(packaged_model_dir)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.mark.slow
def test_eval_against_a_real_transformers_serve(
    transformers_serve: tuple[str, str], mini_suite: Path, tmp_path: Path
) -> None:
    url, served_id = transformers_serve
    db = tmp_path / "t.db"
    res = cli("models", "add", "smol-served", "--url", url, "--model", served_id, db=db)
    assert res.returncode == 0, res.stderr
    first = cli("eval", str(mini_suite), "--model", "smol-served", "--json", db=db)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["n"] == len(CASES) and data["generated"] == len(CASES)
    assert sum(data["grades"].values()) == len(CASES)
    shown = json.loads(cli("runs", "show", data["run_id"], "--json", db=db).stdout)
    assert all(isinstance(c["output"], str) for c in shown["cases"])
    again = json.loads(
        cli("eval", str(mini_suite), "--model", "smol-served", "--json", db=db).stdout
    )
    assert again["cached"] == len(CASES) and again["generated"] == 0

    from streamlit.testing.v1 import AppTest

    os.environ["TUNEVAL_DB"] = str(db)
    try:
        app = Path(__file__).resolve().parents[1] / "reports" / "app.py"
        at = AppTest.from_file(str(app), default_timeout=120).run()
        assert not at.exception
        shown_text = " ".join(str(e.value) for e in at.dataframe) + " ".join(
            m.value for m in at.markdown
        )
        assert "smol-served" in shown_text
    finally:
        os.environ.pop("TUNEVAL_DB", None)
