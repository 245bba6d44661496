"""tuneval leaderboard --suite S [--models M ...]"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli import DbOption, JsonOption, open_store, out, print_json
from harness.comparison.leaderboard import MAX_BOOT


def leaderboard_cmd(
    suite: Annotated[str, typer.Option("--suite", help="suite name or folder")],
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models", help="only these models (repeat the option, or separate with commas)"
        ),
    ] = None,
    n_boot: Annotated[
        int, typer.Option("--n-boot", help="bootstrap resamples", min=1, max=MAX_BOOT)
    ] = 1000,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rank every model with a complete run on a suite: Bradley–Terry ratings on per-case grades
    (Elo scale, ties count half), bootstrap intervals over cases, pass rate beside."""
    from harness.cli.compare import _suite_name
    from harness.comparison.leaderboard import leaderboard

    names = [m.strip() for group in models or [] for m in group.split(",") if m.strip()]
    name = _suite_name(suite) or suite
    with open_store(db, readonly=True) as store:
        board = leaderboard(store, name, names or None, n_boot=n_boot)
    if as_json:
        print_json(board.to_json())
        return
    table = Table(
        "#", "model", "rating", "95% CI", "pass rate", "n", "run",
        title=f"{escape(board.suite)} · {board.cases} cases · Bradley–Terry on grades (Elo scale)",
    )  # fmt: skip
    for rank, e in enumerate(board.entries, start=1):
        model = escape(e.model) + (
            " [yellow](served, not verified)[/]" if e.kind == "served" else ""
        )
        table.add_row(
            str(rank), model, f"{e.rating:.0f}", f"[{e.low:.0f}, {e.high:.0f}]",
            f"{e.pass_rate * 100:.1f}%", str(e.n), e.run_id,
        )  # fmt: skip
    out.print(table)
    if board.skipped:
        out.print(
            "[dim]left out, evaluated on older files of the suite: "
            + escape(", ".join(board.skipped))
            + "[/]"
        )
    if board.partial:
        shown = ", ".join(f"{p['model']} ({p['n']} of {p['of']})" for p in board.partial)
        out.print(f"[dim]left out, graded fewer cases than the others: {escape(shown)}[/]")


def register(app: typer.Typer) -> None:
    app.command("leaderboard")(leaderboard_cmd)
