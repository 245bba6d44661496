"""tuneval suites list | show | validate | import | new"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli import JsonOption, TrustOption, err, out, print_json
from harness.errors import UserError

suites_app = typer.Typer(help="List, show and validate suites.", no_args_is_help=True)


def shipped_root() -> Path:
    """The suites/ folder beside the package (a source checkout), else ./suites."""
    here = Path(__file__).resolve().parents[2] / "suites"
    return here if here.is_dir() else Path("suites")


@suites_app.command("list")
def list_(
    root: Annotated[
        Path | None, typer.Argument(help="folder to search (default: the shipped suites)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the suites below a folder."""
    from harness.suite.loader import find_suites, load_suite

    if root is not None and not root.is_dir():
        raise UserError(f"{root}: no such folder")
    rows: list[dict[str, Any]] = []
    for folder in find_suites(root or shipped_root()):
        try:
            s = load_suite(folder)
            rows.append(
                {
                    "name": s.name,
                    "version": s.spec.version,
                    "path": str(folder),
                    "cases": len(s.cases),
                    "train": len(s.train or []),
                    "lm_eval": len(s.spec.lm_eval),
                    "description": s.spec.description,
                }
            )
        except UserError as e:
            rows.append(
                {"name": folder.name, "path": str(folder), "error": f"{len(e.problems)} problem(s)"}
            )
    if as_json:
        print_json(rows)
        return
    table = Table("suite", "version", "cases", "train", "lm-eval", "path", "description")
    for r in rows:
        if "error" in r:
            table.add_row(r["name"], "", "", "", "", r["path"], f"[red]invalid: {r['error']}[/red]")
        else:
            table.add_row(
                r["name"],
                str(r["version"]),
                str(r["cases"]),
                str(r["train"]),
                str(r["lm_eval"]),
                r["path"],
                r["description"],
            )
    out.print(table)


@suites_app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="suite folder")], as_json: JsonOption = False
) -> None:
    """Show a suite's prompt, generation settings and rubric."""
    from harness import criteria
    from harness.suite.loader import load_suite

    s = load_suite(path)
    if as_json:
        print_json(
            {
                "name": s.name,
                "version": s.spec.version,
                "fingerprint": s.fingerprint,
                "cases": len(s.cases),
                "train": len(s.train or []),
                **s.spec.model_dump(exclude_none=True),
            }
        )
        return
    out.print(
        f"[bold]{s.name}[/bold] v{s.spec.version}  ({len(s.cases)} test cases, "
        f"{len(s.train or [])} train pairs, fingerprint {s.fingerprint[:12]})"
    )
    if s.spec.description:
        out.print(s.spec.description)
    if s.spec.prompt:
        if s.spec.prompt.system:
            out.print(f"[dim]system:[/dim] {s.spec.prompt.system}")
        if s.spec.prompt.messages:
            out.print(f"[dim]messages:[/dim] each case's '{s.spec.prompt.messages}' field")
        else:
            out.print(f"[dim]user:[/dim] {s.spec.prompt.user}")
        from rich.markup import escape

        for name, v in s.spec.prompt.variants.items():
            what = v.model_dump(exclude_none=True, exclude_defaults=True)
            out.print(f"[dim]variant {name}:[/dim] {escape(str(what))}")
    g = s.spec.generation
    out.print(
        f"[dim]generation:[/dim] max_new_tokens={g.max_new_tokens} stop={g.stop!r} "
        f"temperature={g.temperature}"
    )
    table = Table("section", "id", "type", "parameters", "what it checks")
    for section, c in s.criteria():
        params = ", ".join(f"{k}={v!r}" for k, v in c.params().items())
        table.add_row(section, c.id, c.type, params, criteria.describe(c.type))
    out.print(table)
    for task in s.spec.lm_eval:
        out.print(f"[dim]lm-eval task:[/dim] {task}")


@suites_app.command("validate")
def validate(
    paths: Annotated[list[Path], typer.Argument(help="suite folders")],
    trust_code: TrustOption = False,
    as_json: JsonOption = False,
) -> None:
    """Validate suites; exit 2 with one line per problem when any is invalid (an lm-eval task
    that would run code is a problem unless --trust-suite-code)."""
    from harness.suite.loader import load_suite

    problems: list[str] = []
    report = []
    for p in paths:
        try:
            s = load_suite(p)
            s.check_use(trust_code)
            report.append({"path": str(p), "ok": True, "name": s.name, "cases": len(s.cases)})
            if not as_json:
                out.print(
                    f"[green]ok[/green] {p}  ({s.name} v{s.spec.version}, {len(s.cases)} cases)"
                )
        except UserError as e:
            problems += e.lines()
            report.append({"path": str(p), "ok": False, "problems": e.lines()})
    if as_json:
        print_json(report)
        if problems:
            raise typer.Exit(2)
        return
    if problems:
        raise UserError(problems_as_user_error(problems))


@suites_app.command("import")
def import_(
    fmt: Annotated[
        str, typer.Argument(metavar="FORMAT", help="promptfoo | openai-evals | inspect | lm-eval")
    ],
    source: Annotated[
        Path,
        typer.Argument(
            help="a promptfoo config, an evals registry file, a data file, or an lm-eval task file"
        ),
    ],  # fmt: skip
    out_dir: Annotated[Path, typer.Option("--out", help="the suite folder to create")],
    name: Annotated[str | None, typer.Option(help="suite name (default: the folder's)")] = None,
    eval_name: Annotated[
        str | None, typer.Option("--eval", help="openai-evals: which eval of a registry file")
    ] = None,
    scorer: Annotated[
        str | None,
        typer.Option(help="inspect: the task's scorer, match | includes | exact | choice"),
    ] = None,
    prompt: Annotated[int, typer.Option(min=0, help="promptfoo: which prompt (0 = first)")] = 0,
    skip_refused: Annotated[
        bool, typer.Option("--skip-refused", help="import the rest when checks are refused")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Convert another tool's test set into a suite folder whose criteria give that tool's
    verdicts; lists what was mapped and what was refused."""
    import sys

    from harness.importers import ImportOptions, read
    from harness.importers.writer import write

    options = ImportOptions(name, eval_name, scorer, prompt, skip_refused)
    imported = read(fmt, source, options)
    summary = write(imported, out_dir, name, "tuneval " + " ".join(sys.argv[1:]))
    if as_json:
        print_json(summary)
        return
    tasks = summary["lm_eval_tasks"]
    what = f"{summary['cases']} cases" + (f", lm-eval tasks: {', '.join(tasks)}" if tasks else "")
    out.print(f"[green]imported[/green] {summary['suite']} into {out_dir} ({what})")
    if summary["mapped"]:
        table = Table("source check -> criterion", "count")
        for k, v in summary["mapped"].items():
            table.add_row(k, str(v))
        out.print(table)
    for line in summary["refused"]:
        out.print(f"[yellow]refused:[/yellow] {escape(line)}")
    for line in summary["notes"]:
        out.print(f"[dim]note:[/dim] {escape(line)}")


@suites_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="the suite's name; also its folder unless --out")],
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="a JSONL, CSV, Parquet, JSON or Arrow file, or a Hub dataset org/name[@revision]",
        ),
    ],
    input_col: Annotated[str, typer.Option("--input", help="the column holding the input")],
    target_col: Annotated[str, typer.Option("--target", help="the column holding the answer")],
    test_size: Annotated[
        int | None,
        typer.Option("--test-size", min=1, help="test cases (default: a fifth, at most 200)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="chooses the split")] = 0,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="the folder to create (default: ./NAME)")
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="a Hub dataset's configuration (subset)")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="a Hub dataset's split to read (default: train)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A suite folder from a table of inputs and targets: train / validation / test split by seed
    with near-duplicate inputs kept on one side, a starter rubric chosen from the targets, the
    error detectors, and a README with provenance and counts."""
    import re
    import sys

    from harness.suite import new as suite_new

    if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", name):
        raise UserError(f"'{name}': a suite name uses lower-case letters, digits, '-', '_', '.'")
    folder = out_dir or Path(name)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder}: already exists and is not an empty folder")
    src = suite_new.read_source(source, config, split)
    command = "tuneval " + " ".join(sys.argv[1:])
    summary = suite_new.write(
        folder, name, src, source, input_col, target_col, test_size, seed, command
    )
    if as_json:
        print_json(summary)
        return
    c = summary["counts"]
    out.print(
        f"[green]created[/green] {escape(str(folder))}: {c['test']} test, {c['validation']} "
        f"validation, {c['train']} train cases ({summary['dropped']} left out: no input or "
        f"target; "
        f"{summary['near_duplicate_groups']} near-duplicate groups kept on one side)"
    )
    out.print(f"[dim]rubric:[/dim] {escape(summary['rubric'])}")
    shown = escape(str(folder))
    out.print(f"next: the list in {shown}/README.md, then `tuneval eval {shown} --model SPEC`")


def problems_as_user_error(lines: list[str]) -> list:
    from harness.errors import Problem

    return [Problem("", "", line) for line in lines]


def register(app: typer.Typer) -> None:
    app.add_typer(suites_app, name="suites")


_ = err
