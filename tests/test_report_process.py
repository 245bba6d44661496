"""`tuneval report` takes its Streamlit server down however it ends: kill -9, kill, Ctrl+C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.store import Store
from tests.conftest import TUNEVAL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts: it serves nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["kill-9", "kill", "ctrl-c"]
)
def test_report_server_dies_with_the_command(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "tuneval.db"
    Store(db).close()
    port = _free_port()
    proc = subprocess.Popen(
        [TUNEVAL, "report", "--db", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = 0
    try:
        _wait(lambda: _children(proc.pid), 60, "the Streamlit child")
        [server] = _children(proc.pid)
        _wait(lambda: _listening(port), 180, "Streamlit to listen")
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        _wait(lambda: _gone(server), 60, "the Streamlit child to go")
        _wait(lambda: not _listening(port), 30, "the port to close")
    finally:
        proc.kill()
        if server and not _gone(server):  # leaked: do not leave it serving after the test
            os.kill(server, signal.SIGKILL)
