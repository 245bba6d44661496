"""tuneval curve [TRAIN_RUN]: a training run's checkpoints against its base, case by case."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli import DbOption, JsonOption, open_store, out, print_json
from harness.cli.compare import AlphaOption

if TYPE_CHECKING:
    from pathlib import Path

    from harness.comparison.curve import Curve, Point
    from harness.evaluation.runner import EvalOptions
    from harness.suite.loader import Suite

SHOWN = 10  # cases listed per list in the terminal; --json lists them all


def _rate(rate: float, interval: tuple[float, float]) -> str:
    return f"{rate:.1%} [{interval[0]:.0%}, {interval[1]:.0%}]"


def _delta(p: Point) -> str:
    c = p.vs_base
    if c is None:
        return "—"
    d = c.pass_rate
    return f"{d.delta * 100:+.1f} [{d.low * 100:+.1f}, {d.high * 100:+.1f}]"


def print_curve(curve: Curve) -> None:
    t = curve.train_run
    table = Table(title=f"{t['suite']} · training run {t['id']} · {t['output_dir']}")
    for col in ("step", "pass rate [95%]", "better rate [95%]", "Δ pass vs base (pts)", "verdict"):
        table.add_column(col, justify="left" if col == "verdict" else "right")
    if curve.base is not None:
        b = curve.base
        table.add_row(
            "base", _rate(b.pass_rate, b.pass_interval), _rate(b.better_rate, b.better_interval),
            "", escape(b.model),
        )  # fmt: skip
    best = curve.best
    for p in curve.points:
        mark = " ★" if best is not None and p.step == best.step else ""
        table.add_row(
            f"{p.step}{mark}", _rate(p.pass_rate, p.pass_interval),
            _rate(p.better_rate, p.better_interval), _delta(p),
            p.vs_base.verdict if p.vs_base else "",
        )  # fmt: skip
    out.print(table)
    if best is None:
        out.print("no checkpoint evaluated yet")
        return
    line = f"best step [bold]{best.step}[/bold]: pass rate {best.pass_rate:.1%}"
    if best.vs_base is not None:
        line += f", {_delta(best)} points vs base ({best.vs_base.verdict}); "
        line += best.vs_base.mde_text()
    else:
        line += " (no base run to pair with: pass --base for full checkpoints)"
    out.print(line)
    out.print(f"compare it: tuneval compare {curve.base.run_id if curve.base else 'BASE'} "
              f"{best.run_id}")  # fmt: skip
    regressed = curve.regressed()
    if regressed:
        out.print(f"[red]{len(regressed)} cases fell below their base grade[/red] (first step):")
        for tr in regressed[:SHOWN]:
            out.print(f"  {escape(tr.case_id)}: {tr.base} → {tr.grades[-1]} at the last step, "
                      f"first at step {tr.first_regressed}")  # fmt: skip
    flipping = curve.flipping()
    if flipping:
        names = ", ".join(f"{escape(tr.case_id)} ({tr.flips})" for tr in flipping[:SHOWN])
        out.print(f"{len(flipping)} cases flip between pass and fail (flips): {names}")


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
    from harness.comparison.curve import build_curve, find_train_run

    with open_store(db, readonly=True) as store:
        curve = build_curve(store, find_train_run(store, train_run), alpha)
    if as_json:
        print_json(curve.to_json())
        return
    print_curve(curve)


def sweep_cmd(
    suite: Suite, folders: list[tuple[int, Path]], opts: EvalOptions, base: str | None,
    db: Path | None, as_json: bool, log_to: list[str] | None = None, project: str = "tuneval",
    dest: str | None = None,
) -> None:  # fmt: skip
    """`tuneval eval SUITE --model "out/checkpoint-*"`: the base and each checkpoint, then the
    curve; with `--log-to`, the training run to each tracker, every checkpoint's scalars at its
    step."""
    from harness.cli import err, track
    from harness.comparison.curve import build_curve
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
    print_curve(curve)


def register(app: typer.Typer) -> None:
    app.command("curve")(curve_cmd)
