"""tuneval runs list | show | export"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli import DbOption, JsonOption, open_store, out, print_json
from harness.errors import UserError

runs_app = typer.Typer(help="Inspect stored evaluation runs.", no_args_is_help=True)


@runs_app.command("list")
def list_(
    suite: Annotated[str | None, typer.Option(help="only runs of this suite")] = None,
    model: Annotated[str | None, typer.Option(help="only runs of this model")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, oldest first."""
    from harness.grading.grader import summarize

    with open_store(db, readonly=True) as store:
        rows = []
        for r in store.runs(suite, model):
            s = summarize(store.results(r["id"]))
            rows.append(
                {
                    "run_id": r["id"],
                    "suite": r["suite"],
                    "model": r["model"],
                    "prompt": r["prompt_variant"] or None,
                    "status": r["status"],
                    "n": s["n"],
                    "grades": s["grades"],
                    "pass_rate": s["pass_rate"],
                    "created_at": r["created_at"],
                    "step": r["step"],
                    "model_kind": r["model_kind"],
                    "verified": r["model_kind"] != "served",
                }
            )
    if as_json:
        print_json(rows)
        return
    table = Table(
        "run", "suite", "model", "prompt", "status", "cases", "bad", "good", "better", "pass rate",
        "when",
    )  # fmt: skip
    for r in rows:
        g = r["grades"]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
        table.add_row(
            r["run_id"],
            r["suite"],
            r["model"] + ("" if r["verified"] else " (served: fingerprint not verified)"),
            r["prompt"] or "",
            r["status"],
            str(r["n"]),
            str(g["bad"]),
            str(g["good"]),
            str(g["better"]),
            f"{r['pass_rate']:.1%}",
            when,
        )
    out.print(table)


@runs_app.command("show")
def show(
    run: Annotated[str, typer.Argument(help="run id")],
    grade: Annotated[str | None, typer.Option(help="only cases with this grade")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the engine that answered a run (pool, static, hf, served, vllm; cache when every
    answer was cached; unknown for runs stored before tuneval noted it) and every case with its
    output, grade and criteria (and, for a run of k samples per case, each case's passes out of
    k and the suite's pass share, pass@k, pass^k, flaky cases and majority grades)."""
    from harness.comparison.cost import engine_of
    from harness.comparison.sampling import case_fields, suite_outcomes

    with open_store(db, readonly=True) as store:
        info = store.run(run)
        if info is None:
            raise UserError(f"no run '{run}' in {store.path} (see `tuneval runs list`)")
        rows = store.results(run)
    engine = engine_of(info)
    if grade:
        rows = [r for r in rows if r["grade"] == grade]
    sampled = any(r.get("samples") for r in rows)
    cases = [
        {
            "id": r["case_id"],
            "output": r["output"],
            "grade": r["grade"],
            "criteria": {
                k: {"passed": v["passed"], "score": v["score"], "detail": v["detail"]}
                for k, v in r["criteria"].items()
            },
            **case_fields(r),
        }
        for r in rows
    ]
    if as_json:
        print_json(
            {
                "run_id": run,
                "suite": info["suite"],
                "model": info["model"],
                "prompt": info["prompt_variant"] or None,
                "status": info["status"],
                "engine": engine,
                **({"sampling": suite_outcomes(rows)} if sampled else {}),
                "cases": cases,
            }
        )
        return
    from harness.suite.prompts import arm

    name = _escape(arm(info["model"], info["prompt_variant"]))
    out.print(
        f"run [bold]{run}[/bold]: {info['suite']} · {name} · {info['status']}"
        f" · engine {_escape(engine or 'unknown')}"
    )
    if sampled:
        out.print(sampling_table(suite_outcomes(rows)))
    table = Table("case", "grade", "output", "failed checks", show_lines=True)
    colour = {"bad": "red", "good": "yellow", "better": "green"}
    for c in cases:
        failed = "\n".join(
            f"{k}: {v['detail']}" for k, v in c["criteria"].items() if not v["passed"]
        )
        label = f"[{colour[c['grade']]}]{c['grade']}[/]"
        if "k" in c:  # the majority grade of k samples, and how many of them passed
            passes = round(c["pass_share"] * c["k"])
            label += f"\n{passes}/{c['k']} pass" + (" flaky" if c["flaky"] else "")
        table.add_row(c["id"], label, _escape(c["output"][:300]), _escape(failed))
    out.print(table)


@runs_app.command("export")
def export(
    run: Annotated[str, typer.Argument(help="run id")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv | parquet")] = "jsonl",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="file to write (default stdout; parquet needs one)")
    ] = None,
    db: DbOption = None,
) -> None:
    """Export every case of a run: prompt, output, grade and each criterion's result."""
    from harness.export import export_rows, write

    with open_store(db, readonly=True) as store:
        rows = export_rows(store, run)
    write(rows, fmt, out_file, store.path)


def sampling_line(s: dict[str, Any]) -> str:
    """One line of a sampled run's suite figures with their 95% intervals."""

    def fig(name: str) -> str:
        f = s[name]
        return f"{f['mean']:.1%} [{f['low']:.1%}, {f['high']:.1%}]"

    return (
        f"{s['n']} cases x {s['k']} samples: pass share {fig('pass_share')}, "
        f"pass@{s['k']} {fig('pass_at_k')}, pass^{s['k']} {fig('pass_hat_k')}, "
        f"{s['flaky_cases']} flaky"
    )


def sampling_table(s: dict[str, Any]) -> Table:
    """A sampled run's suite figures: means over cases with 95% bootstrap intervals, the flaky
    cases and the cases by majority grade."""
    k = s["k"]
    table = Table(
        "figure", "mean over cases", "95% CI",
        title=f"{s['n']} cases x {k} samples (majority grade per case)",
    )  # fmt: skip
    for name, label in (
        ("pass_share", "pass share (good or better)"),
        ("pass_at_k", f"pass@{k} (at least one of {k} passes)"),
        ("pass_hat_k", f"pass^{k} (all {k} pass)"),
        ("flaky", "flaky (some pass, some fail)"),
    ):
        f = s[name]
        table.add_row(label, f"{f['mean']:.1%}", f"[{f['low']:.1%}, {f['high']:.1%}]")
    table.add_row("flaky cases", str(s["flaky_cases"]), "")
    for g in ("bad", "good", "better"):
        table.add_row(f"majority grade {g}", str(s["majority"][g]), "")
    return table


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
