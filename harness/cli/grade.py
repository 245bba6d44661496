"""tuneval grade SUITE --outputs FILE.jsonl --name NAME"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli import DbOption, JsonOption, TrustOption, open_store, out, print_json


def grade_cmd(
    suite: Annotated[Path, typer.Argument(help="suite folder")],
    outputs: Annotated[
        Path, typer.Option("--outputs", help='JSONL, one {"id": ..., "output": ...} per case')
    ],
    name: Annotated[
        str, typer.Option("--name", help="the name the run is stored under (compare by it)")
    ],
    trust_code: TrustOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Grade outputs produced elsewhere, without loading a model, and store them as a run;
    `compare` and `gate` pair it with any model's run."""
    from harness.cli.evalcmd import summary_table
    from harness.evaluation.offline import grade_outputs
    from harness.suite.loader import load_suite

    s = load_suite(suite)  # before the store is touched: a bad suite writes nothing
    s.check_use(trust_code)
    _check_outputs(outputs)
    with open_store(db) as store:
        result = grade_outputs(s, outputs, name, store, trust_code=trust_code, progress=not as_json)
    data = result.to_json()
    if as_json:
        print_json(data)
        return
    out.print(summary_table(data, result.summary["sections"]))
    missing = data["missing"]
    note = f"{missing} of the suite's cases had no output: left out" if missing else "every case"
    sha = data["outputs_sha256"][:12]
    out.print(f"run [bold]{result.run_id}[/bold]  ({note}; outputs sha256 {sha})")


def _check_outputs(path: Path) -> None:
    """A missing file, and one that is not a file (`/dev/null`, a folder, a pipe), each said as
    it is, before the store is opened."""
    import os
    import stat

    from harness.errors import UserError

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read: {e.strerror or e}") from None
    if not stat.S_ISREG(info.st_mode):
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "a device or pipe"
        raise UserError(f"{path} is {what}, not a file: give the JSONL file of outputs")


def register(app: typer.Typer) -> None:
    app.command("grade")(grade_cmd)
