"""tuneval compare A B | tuneval gate A B"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli import DbOption, JsonOption, open_store, out, print_json
from harness.cli.slicing import ByOption, MinSliceOption, ProbeOption

if TYPE_CHECKING:
    from harness.comparison.compare import Comparison, Pair

SHOWN_CASES = 10  # cases listed per direction in the terminal; --json and --markdown list more
VERDICT_STYLE = {
    "improved": "bold green",
    "regressed": "bold red",
    "no significant change": "bold",
    "insufficient evidence": "bold yellow",
}

RunA = Annotated[
    str, typer.Argument(metavar="A", help="baseline: run id, or model name (its latest run)")
]
RunB = Annotated[
    str, typer.Argument(metavar="B", help="candidate: run id, or model name (its latest run)")
]
SuiteOption = Annotated[
    str | None,
    typer.Option("--suite", help="suite name or folder: picks the run when A or B is a model name"),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="compare even if the runs' suite files differ")
]
AlphaOption = Annotated[
    float,
    typer.Option(
        "--alpha", min=1e-9, max=1 - 1e-9, help="significance level of the tests, between 0 and 1"
    ),
]
MarkdownOption = Annotated[
    Path | None, typer.Option("--markdown", help="also write a Markdown summary to this file")
]
JunitOption = Annotated[
    Path | None, typer.Option("--junit", help="also write JUnit XML (one test per case)")
]
PromptAOption = Annotated[
    str | None,
    typer.Option("--prompt-a", help="prompt variant of A's run, when A is a model name"),
]
PromptBOption = Annotated[
    str | None,
    typer.Option("--prompt-b", help="prompt variant of B's run, when B is a model name"),
]
JudgeOption = Annotated[
    str | None,
    typer.Option(
        "--judge",
        help="model spec of a judge: also ask it which answer is better, in both orders",
    ),
]


def _suite_name(suite: str | None) -> str | None:
    """Accept a suite folder where a suite name is expected: people type the path they eval'd."""
    if suite and (Path(suite) / "suite.yaml").is_file():
        from harness.suite.loader import load_suite

        return load_suite(suite).name
    return suite


def _compare(
    a: str, b: str, suite: str | None, force: bool, alpha: float, db: Path | None,
    judge: str | None = None, prompts: tuple[str | None, str | None] = (None, None),
) -> Comparison:  # fmt: skip
    from harness.comparison.compare import compare_runs, resolve_run

    name = _suite_name(suite)
    with open_store(db, readonly=True) as store:  # the store must exist; comparing never writes
        run_a = resolve_run(store, a, name, prompts[0])
        run_b = resolve_run(store, b, name, prompts[1])
        c = compare_runs(store, run_a, run_b, force=force, alpha=alpha)
    if judge is not None:  # a judge caches its verdicts: it writes, to the store found above
        from harness.comparison.preference import prefer
        from harness.grading.judges import judge_for

        with open_store(db) as store:
            c.preference = prefer(judge_for(judge, store, progress=True), c.pairs).to_json()
    return c


def _check_outputs(db: Path | None, *paths: Path | None) -> None:
    """Before any work: each output file can be written, and none of them is the store."""
    from harness import outfile
    from harness.store import default_path

    for path in paths:
        if path is not None:
            outfile.check(path, db or default_path())


def _write(
    c: Comparison, markdown: Path | None, junit: Path | None, failures: list[str], db: Path | None,
    extra_markdown: str = "",
) -> None:  # fmt: skip
    from harness import outfile
    from harness.comparison.format import junit as junit_xml
    from harness.comparison.format import markdown as markdown_text
    from harness.store import default_path

    for path, text in (
        (markdown, markdown_text(c) + extra_markdown if markdown else ""),
        (junit, junit_xml(c, failures) if junit else ""),
    ):
        if path is not None:
            outfile.write_text(path, text, db or default_path())


def compare_cmd(
    a: RunA,
    b: RunB,
    suite: SuiteOption = None,
    force: ForceOption = False,
    alpha: AlphaOption = 0.05,
    markdown: MarkdownOption = None,
    junit: JunitOption = None,
    judge: JudgeOption = None,
    prompt_a: PromptAOption = None,
    prompt_b: PromptBOption = None,
    by: ByOption = None,
    probe: ProbeOption = None,
    min_slice: MinSliceOption = 10,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare run B (candidate) with run A (baseline), case by case, with paired statistics and
    what each answer cost; with --judge, also a judge's pairwise preference; with --by, the same
    per slice of cases; with --probe, the share of outputs matching a pattern on each side."""
    from harness.cli import slicing

    _check_outputs(db, markdown, junit)
    slicing.check_probes(probe)
    c = _compare(a, b, suite, force, alpha, db, judge, (prompt_a, prompt_b))
    slices, probes = slicing.slices_and_probes(c, by, probe, force, min_slice)
    _write(c, markdown, junit, [], db, slicing.markdown(slices, probes))
    if as_json:
        print_json({**c.to_json(), **slicing.to_json(slices, probes)})
    else:
        show(c)
        slicing.show(slices, probes)


def gate_cmd(
    a: RunA,
    b: RunB,
    suite: SuiteOption = None,
    alpha: AlphaOption = 0.05,
    max_regressed: Annotated[
        int | None,
        typer.Option("--max-regressed", help="fail when more than N cases drop a grade", min=0),
    ] = None,
    junit: JunitOption = None,
    markdown: MarkdownOption = None,
    force: ForceOption = False,
    prompt_a: PromptAOption = None,
    prompt_b: PromptBOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Exit 0 when B may replace A; 1 on a significant regression, a broken must-pass case, or
    more than --max-regressed cases that dropped a grade; 2 on usage errors."""
    from harness.comparison.compare import gate_failures

    _check_outputs(db, markdown, junit)
    c = _compare(a, b, suite, force, alpha, db, prompts=(prompt_a, prompt_b))
    failures = gate_failures(c, max_regressed)
    _write(c, markdown, junit, failures, db)
    if as_json:
        print_json({"passed": not failures, "failures": failures, "comparison": c.to_json()})
    else:
        show(c, cases=False)
        if failures:
            for f in failures:
                out.print(f"[bold red]gate failed:[/] {escape(f)}")
        else:
            out.print("[bold green]gate passed[/]")
    if failures:
        # Not typer.Exit: under standalone_mode=False click returns its code instead of exiting.
        raise SystemExit(1)


# --- terminal rendering --------------------------------------------------------------------------


def show(c: Comparison, *, cases: bool = True) -> None:
    from harness.suite.prompts import arm

    a, b = c.run_a, c.run_b
    name_a = escape(arm(str(a["model"]), a.get("prompt_variant")))
    name_b = escape(arm(str(b["model"]), b.get("prompt_variant")))
    out.print(
        f"[bold]{escape(a['suite'])}[/] v{a['suite_version']} · {c.n} paired cases\n"
        f"  A  {a['id']}  {name_a}\n  B  {b['id']}  {name_b}"
    )
    for w in c.warnings:
        out.print(f"[yellow]warning:[/] {escape(w)}")
    out.print(headline_table(c))
    if c.sampling is not None:
        out.print(rates_table(c.sampling, c))
    if c.cost:
        from harness.comparison.cost import engine_caveat

        out.print(cost_table(c))
        caveat = engine_caveat(a, b)
        if caveat:
            out.print(f"[yellow]note:[/] {escape(caveat)}")
    if c.preference is not None:
        _preference(c.preference)
    out.print(_transitions(c))
    out.print(_paired_tests(c))
    if c.criteria:
        out.print(criteria_table(c))
    if cases:
        for change in ("regressed", "improved"):
            _cases(c.changed(change), change)
    n_unpaired = len(c.unpaired["only_a"]) + len(c.unpaired["only_b"])
    if n_unpaired:
        out.print(
            f"{n_unpaired} unpaired cases left out ({len(c.unpaired['only_a'])} only in A, "
            f"{len(c.unpaired['only_b'])} only in B)"
        )
    if c.must_pass_broken:
        out.print(
            "[bold red]must-pass cases that stopped passing:[/] "
            + escape(", ".join(c.must_pass_broken))
        )
    style = VERDICT_STYLE[c.verdict]
    out.print(f"verdict: [{style}]{c.verdict}[/] — {escape(c.explanation)}\n  {c.mde_text()}")


def headline_table(c: Comparison) -> Table:
    """Pass and better rates on each side with the paired bootstrap's interval."""
    from harness.comparison.format import interval, pct, pts

    head = Table("figure", "A", "B", "Δ points", "95% CI", title="headline (paired bootstrap)")
    labels = ("pass rate (good or better)", "better rate")
    if c.sampling is not None:
        labels = ("pass share (good or better, mean over cases)", "better rate (majority grade)")
    for name, d in zip(labels, (c.pass_rate, c.better_rate), strict=True):
        head.add_row(name, pct(d.a), pct(d.b), _signed(pts(d.delta), d.delta), interval(d))
    return head


def _paired_tests(c: Comparison) -> str:
    """The paired tests' counts and p-values (with samples, McNemar on majority grades only
    informs: the verdict's own test is in the rates table)."""
    mc, st = c.mcnemar, c.sign_test
    if c.sampling is not None:
        return (
            f"on majority grades, not deciding: exact McNemar {mc['b01']} fail→pass, "
            f"{mc['b10']} pass→fail, p={mc['p_value']:.3g}"
        )
    return (
        f"exact McNemar (pass/fail): {mc['b01']} fail→pass, {mc['b10']} pass→fail, "
        f"p={mc['p_value']:.3g}\nsign test (grades): {st['improved']} up, "
        f"{st['regressed']} down, p={st['p_value']:.3g}"
    )


def criteria_table(c: Comparison) -> Table:
    from harness.comparison.format import interval, pct, pts

    crit = Table("criterion", "section", "A", "B", "Δ points", "95% CI", title="per criterion")
    for cid, d in c.criteria.items():
        crit.add_row(
            escape(cid),
            c.sections.get(cid, ""),
            pct(d.a),
            pct(d.b),
            _signed(pts(d.delta), d.delta),
            interval(d),
        )
    return crit


def rates_table(s: dict[str, Any], c: Comparison) -> Table:
    """What k samples per case say on each side: pass@k, pass^k (paired bootstrap), flaky cases,
    and the cases whose own pass share moved beyond its noise; the title names the test."""
    from harness.comparison.format import pct, pts

    k = min(s["k_a"], s["k_b"])
    table = Table(
        "figure", "A", "B", "Δ points", "95% CI",
        title=f"k samples per case (A {s['k_a']}, B {s['k_b']}): sign-flip test on per-case "
        f"pass shares, p={s['p_value']:.3g}",
    )  # fmt: skip
    for name, label in ((f"pass@{k}", "at least one passes"), (f"pass^{k}", "all pass")):
        f = s[name]
        ci = f"[{f['low'] * 100:+.1f}, {f['high'] * 100:+.1f}]"
        table.add_row(
            f"{name} ({label})", pct(f["a"]), pct(f["b"]), _signed(pts(f["delta"]), f["delta"]), ci
        )
    flaky = s["flaky"]
    table.add_row("flaky cases (some pass, some fail)", str(flaky["a"]), str(flaky["b"]), "", "")
    up, down = len(c.changed("improved")), len(c.changed("regressed"))
    table.add_row("cases beyond their own noise", "", f"{up} up, {down} down", "", "")
    return table


def _passes(row: dict[str, Any]) -> str:
    """A result row's passes out of its samples ('3/4'), or its grade for a one-answer row."""
    from harness.comparison.sampling import sample_grades

    if not row.get("samples"):
        return str(row["grade"])
    grades = sample_grades(row)
    return f"{sum(g != 'bad' for g in grades)}/{len(grades)} pass"


def cost_table(c: Comparison) -> Table:
    from harness.comparison.cost import amount, ratio_text

    table = Table(
        "figure", "A", "B", "B / A  [95% CI]", "cases",
        title="cost per case (mean; seconds: each answer's share of its batch)",
    )  # fmt: skip
    for line in c.cost:
        table.add_row(
            line.label, amount(line, line.a), amount(line, line.b), ratio_text(line), str(line.n)
        )
    return table


def _preference(p: dict[str, Any]) -> None:
    from harness.comparison.format import pct

    table = Table(
        "B wins", "ties", "B loses", "B preferred", "95% CI", "sign test p",
        title=f"pairwise preference (judge {escape(p['judge'])}, both orders)",
    )  # fmt: skip
    table.add_row(
        str(p["wins"]), f"{p['ties']} ({p['inconsistent']} order-inconsistent)", str(p["losses"]),
        pct(p["share"]), f"[{pct(p['low'])}, {pct(p['high'])}]", f"{p['p_value']:.3g}",
    )  # fmt: skip
    out.print(table)


def _signed(text: str, value: float) -> str:
    return f"[green]{text}[/]" if value > 0 else f"[red]{text}[/]" if value < 0 else text


def _transitions(c: Comparison) -> Table:
    from harness.grading.grader import GRADES, RANK

    title = "grade transitions" + (" (majority grade)" if c.sampling is not None else "")
    table = Table("A ↓  B →", *GRADES, title=title)
    for g in GRADES:
        cells = []
        for h in GRADES:
            n = c.transitions[g][h]
            colour = "green" if RANK[h] > RANK[g] else "red" if RANK[h] < RANK[g] else "dim"
            cells.append(f"[{colour}]{n}[/]" if n else "·")
        table.add_row(g, *cells)
    return table


def _cases(pairs: list[Pair], change: str) -> None:
    from harness.comparison.compare import failed_checks
    from harness.comparison.format import shorten
    from harness.comparison.rates import has_samples

    if not pairs:
        return
    colour = "red" if change == "regressed" else "green"
    sampled = has_samples(pairs)
    table = Table(
        "case",
        "A → B",
        "output A",
        "output B",
        "failed in B",
        show_lines=True,
        title=f"[{colour}]{change}: {len(pairs)} case{'s' * (len(pairs) != 1)}[/]",
    )
    for p in pairs[:SHOWN_CASES]:
        table.add_row(
            escape(p.case_id),
            f"{_passes(p.a)} → {_passes(p.b)}" if sampled else f"{p.a['grade']} → {p.b['grade']}",
            escape(shorten(p.a["output"], 200)),
            escape(shorten(p.b["output"], 200)),
            escape("\n".join(failed_checks(p.b))),
        )
    out.print(table)
    if len(pairs) > SHOWN_CASES:
        out.print(f"  …and {len(pairs) - SHOWN_CASES} more (--json or --markdown list them)")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)
    app.command("gate")(gate_cmd)
