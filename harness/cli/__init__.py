"""The `tuneval` command line. Each command group lives in its own module with a `register(app)`.

User mistakes exit with code 2 and one line per problem, never a traceback.
"""

from __future__ import annotations

import json
import sys
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console

from harness.errors import UserError

app = typer.Typer(
    name="tuneval",
    help="Evaluation-first finetuning: rubrics, cached evals, paired comparisons, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="store file (default ./.tuneval/tuneval.db, or $TUNEVAL_DB)", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")]

COMMAND_MODULES = ("suites", "evalcmd", "runs", "models", "data", "train", "compare", "report")


def open_store(db: Path | None) -> Any:
    from harness.store import Store

    return Store(db)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def main() -> None:
    for name in COMMAND_MODULES:
        try:
            module = import_module(f"harness.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"harness.cli.{name}":
                continue
            raise
        module.register(app)
    try:
        app(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except UserError as e:
        for line in e.lines():
            err.print(f"[red]error:[/red] {line}", markup=True, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
