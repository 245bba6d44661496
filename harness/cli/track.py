"""tuneval runs log RUN... --to TRACKER, and the --log-to option of eval, loop and train."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from harness.cli import DbOption, JsonOption, err, open_store, print_json

TRACKERS = "tensorboard | mlflow | wandb | trackio"
LogToOption = Annotated[
    list[str] | None,
    typer.Option(
        "--log-to",
        help=f"also log the result to a tracker ({TRACKERS}); repeat for several",
    ),
]
ProjectOption = Annotated[
    str, typer.Option("--project", help="the tracker's project / experiment name")
]
DestOption = Annotated[
    str | None,
    typer.Option(
        "--dest",
        help="where the tracker writes: TensorBoard folder (default runs/), MLflow tracking URI, "
        "W&B folder, trackio folder",
    ),
]


def check(to: list[str] | None) -> None:
    """Before any work: each tracker named exists and its library is installed."""
    from harness.integrations.trackers import tracker

    for name in to or []:
        tracker(name)


def send(
    db: object, runs: list[tuple[str, str | None]], to: list[str] | None, project: str,
    dest: str | None, quiet: bool = False, train_run: str | None = None,
) -> list[str]:  # fmt: skip
    """Log (run id, baseline run id or None) pairs, and a training run; say where each went on
    stderr."""
    if not to:
        return []
    from harness.integrations.trackers import log, record_for, training_record

    with open_store(db, readonly=True) as store:  # type: ignore[arg-type]
        records = [record_for(store, run, against) for run, against in runs]
        if train_run is not None:
            records.append(training_record(store, train_run))
    where = log(records, to, project, dest)
    if not quiet:
        for line in where:
            err.print(f"logged to {escape(line)}")
    return where


def log_cmd(
    runs: Annotated[list[str], typer.Argument(help="run ids, or model names (their latest run)")],
    to: Annotated[list[str], typer.Option("--to", help=f"{TRACKERS}; repeat for several")],
    project: ProjectOption = "tuneval",
    dest: DestOption = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="a baseline run (or model name): also log each run's paired verdict against it",
        ),
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="picks the run when a model name is given")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Log runs to the trackers a team already watches: run metadata, grade and per-criterion
    rates, cost per case, the verdict against a baseline with its interval, the training loss
    and checkpoint curves, and the per-case table."""
    from harness.comparison.compare import resolve_run

    check(to)
    with open_store(db, readonly=True) as store:
        ids = [resolve_run(store, r, suite) for r in runs]
        base = None
        if against is not None:
            base = resolve_run(store, against, suite or str(store.run(ids[0])["suite"]))
    where = send(db, [(i, base) for i in ids], to, project, dest, quiet=as_json)
    if as_json:
        print_json({"logged": where})


def register(app: typer.Typer) -> None:
    from harness.cli.runs import runs_app

    runs_app.command("log")(log_cmd)
