"""tuneval curve [TRAIN_RUN]: a training run's checkpoints against its base, case by case."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from harness.cli import DbOption, JsonOption, open_store, out, print_json
from harness.cli.compare import AlphaOption

if TYPE_CHECKING:
    from pathlib import Path

    from harness.evaluation.runner import EvalOptions
    from harness.suite.loader import Suite


def curve_cmd(
    train_run: Annotated[
        str | None,
        typer.Argument(help="training run id or its output folder (default: the newest)"),
    ] = None,
    alpha: AlphaOption = 0.05,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pass and better rate per checkpoint with intervals, the best step against the base with
    its paired interval, and the cases that regressed or flip along the way."""
    from harness.comparison.curve import build_curve, find_train_run, print_curve

    with open_store(db, readonly=True) as store:
        curve = build_curve(store, find_train_run(store, train_run), alpha)
    if as_json:
        print_json(curve.to_json())
        return
    print_curve(curve, out)


def sweep_cmd(
    suite: Suite, folders: list[tuple[int, Path]], opts: EvalOptions, base: str | None,
    db: Path | None, as_json: bool, log_to: list[str] | None = None, project: str = "tuneval",
    dest: str | None = None,
) -> None:  # fmt: skip
    """`tuneval eval SUITE --model "out/checkpoint-*"`: the base and each checkpoint, then the
    curve; with `--log-to`, the training run to each tracker, every checkpoint's scalars at its
    step."""
    from harness.cli import err, track
    from harness.comparison.curve import build_curve, print_curve
    from harness.evaluation.sweep import sweep

    def say(line: str) -> None:
        if not as_json:
            err.print(escape(line), highlight=False)

    with open_store(db) as store:
        done = sweep(suite, folders, store, opts, base, say)
        curve = build_curve(store, done.train_run)
    track.send(db, [], log_to, project, dest, quiet=as_json, train_run=done.train_run)
    if as_json:
        print_json({**curve.to_json(), "skipped": done.skipped})
        return
    if done.skipped:
        out.print(f"{len(done.skipped)} evaluations taken from an earlier sweep")
    print_curve(curve, out)


def register(app: typer.Typer) -> None:
    app.command("curve")(curve_cmd)
