"""tuneval report: the Streamlit app on 127.0.0.1 (streamlit is only imported by the app)."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.cli import DbOption, out
from harness.errors import UserError
from harness.processes import child_dies_with_parent, stop_group

PRIMARY = "#1c6dd0"


def app_file() -> Path:
    spec = importlib.util.find_spec("reports")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the report package is not installed (reinstall tuneval)")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def streamlit_command(app: Path, db: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # No Deploy button or developer menu: a reviewer's report, not a dev server.
        "--client.toolbarMode",
        "minimal",
        # Streamlit's red accent made selected "improved" filters red; blue carries no verdict.
        "--theme.primaryColor",
        PRIMARY,
        "--",
        "--db",
        str(db),
    ]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def report(
    db: DbOption = None,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1", min=1, max=65535)] = 8501,
) -> None:
    """Open the report: runs, side-by-side comparisons, training curves, human grading."""
    from harness.store import Store, default_path

    path = (db or default_path()).resolve()
    if not path.is_file():
        raise UserError(f"no store at {path}: evaluate a model first (`tuneval eval SUITE`)")
    Store(path, readonly=True).close()  # not a store, or a newer schema: one line, exit 2
    if importlib.util.find_spec("streamlit") is None:
        raise UserError("streamlit is not installed: pip install streamlit")
    if not _port_free(port):
        raise UserError(f"port {port} on 127.0.0.1 is in use: pick another with --port")
    url = f"http://127.0.0.1:{port}"
    out.print(f"tuneval report: {url}  (store {path}; Ctrl+C to stop)")
    env = {**os.environ, "TUNEVAL_DB": str(path)}
    # The server dies with us however we end, `kill -9` included: the kernel kills it when its
    # parent goes (PR_SET_PDEATHSIG), and it leads its own process group, which we stop whole.
    proc = subprocess.Popen(
        streamlit_command(app_file(), path, port), env=env, start_new_session=True,
        preexec_fn=child_dies_with_parent(os.getpid()),
    )  # fmt: skip

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # so that `kill` stops the server too, not just us
    signal.signal(signal.SIGHUP, stop)  # the terminal closed
    rc = 0
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_group(proc, 10.0)
    if rc:
        raise typer.Exit(rc)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
