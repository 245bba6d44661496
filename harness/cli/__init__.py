"""The `tuneval` command line. Each command group lives in its own module with a `register(app)`.

User mistakes exit with code 2 and one line per problem, never a traceback.

May import: any room (it is the top).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

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

# Piped output is not cut to 80 columns: run ids and model names must stay whole.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="store file (default ./.tuneval/tuneval.db, or $TUNEVAL_DB)",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")]
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust-suite-code",
        help="let the suite run code: `metric` criteria (evaluate modules), lm-eval task files' "
        "`!function`, custom filters and metrics, dataset scripts; suites are data without it",
    ),
]

COMMAND_MODULES = (
    "suites", "evalcmd", "grade", "runs", "track", "models", "data", "train", "compare",
    "leaderboard", "report", "curve",
)  # fmt: skip


def open_store(db: Path | None, *, readonly: bool = False) -> Any:
    """The workspace store. Read-only commands pass readonly=True: the store must exist, and
    nothing is written to it."""
    from harness.store import Store

    return Store(db, readonly=readonly)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def quiet_libraries() -> None:
    """Deprecation notices from transformers, torch or peft speak to the authors of code that
    calls those libraries, not to someone reading an eval: keep them out of the output, unless
    the user asked for warnings (-W or PYTHONWARNINGS)."""
    if sys.warnoptions:
        return
    import warnings

    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


_registered: list[str] = []


def register_commands() -> None:
    """Each command module adds its commands to `app`, once per process: `main` runs many times
    in one process (the tests call it in-process), and a second registration would double every
    command that typer rebuilds on each call."""
    for name in COMMAND_MODULES:
        if name not in _registered:
            import_module(f"harness.cli.{name}").register(app)
            _registered.append(name)


def main() -> None:
    # Models given by Hub id are fetched through `harness.generation.hub`, which honours
    # HF_HUB_OFFLINE as the user set it; nothing else reaches a network, so datasets stays offline.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Spinning OpenMP threads cut throughput ~10x on a shared CPU; set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    quiet_libraries()
    from harness.processes import die_with_parent

    die_with_parent()
    register_commands()
    try:
        rc = app(standalone_mode=False)  # returns the code of a `raise typer.Exit(n)`
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as e:  # usage errors: bad options, bad parameter values
        e.show()  # type: ignore[attr-defined]
        sys.exit(getattr(e, "exit_code", 2))
    except UserError as e:
        from rich.markup import escape

        for line in e.lines():
            err.print(f"[red]error:[/red] {escape(line)}", highlight=False)
        sys.exit(2)
    except sqlite3.DatabaseError as e:  # a fault that opening the store could not see
        from rich.markup import escape

        from harness.store import sqlite_problem

        err.print(f"[red]error:[/red] {escape(sqlite_problem(e))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    if isinstance(rc, int) and rc:
        sys.exit(rc)
