"""`compare --by FIELD` and `compare --probe TEXT`: the comparison cut into slices, and ad-hoc
questions asked of every output. The statistics live in harness.comparison.slices; this is the
terminal."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli import out
from harness.errors import UserError

if TYPE_CHECKING:
    from harness.comparison.compare import Comparison
    from harness.comparison.slices import Probe, Slice

ByOption = Annotated[
    list[str] | None,
    typer.Option(
        "--by",
        help="also compare per slice of cases: a case field, a metadata key, tags, task (lm-eval) "
        "or source; repeat for several (p-values Holm-adjusted across all slices)",
    ),
]
ProbeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--probe",
        help="share of outputs matching a regex, or a length test such as 'words > 60', on each "
        "side, paired; repeat for several; changes no grade",
    ),
]
MinSliceOption = Annotated[
    int,
    typer.Option("--min-slice", min=2, help="slices smaller than this get no test or verdict"),
]


def check_probes(probes: list[str] | None) -> None:
    """Before any work: every probe parses (a malformed regex is one line, exit 2)."""
    from harness.comparison.slices import matcher

    for text in probes or []:
        matcher(text)


def suite_cases(c: Comparison, force: bool) -> dict[str, dict[str, Any]]:
    """The cases of the suite run A was evaluated on, read from its folder; refused when the folder
    has changed since (the fields might not be the ones the runs saw), unless --force."""
    from harness.comparison.slices import case_table
    from harness.suite.loader import load_suite

    run = c.run_a
    path = Path(str(run["suite_path"]))
    if not (path / "suite.yaml").is_file():
        raise UserError(
            f"--by reads case fields from the suite, and {path} (where run {run['id']} found it) "
            "has no suite.yaml"
        )
    suite = load_suite(path)
    if suite.fingerprint != run["suite_fingerprint"] and not force:
        raise UserError(
            f"--by reads case fields from {path}, which has changed since run {run['id']} was "
            "evaluated; pass --force to slice by its current fields"
        )
    return case_table(suite)


def slices_and_probes(
    c: Comparison, by: list[str] | None, probes: list[str] | None, force: bool, min_slice: int
) -> tuple[list[Slice], list[Probe]]:
    from harness.comparison.slices import probe, slice_comparison

    rows = slice_comparison(c, suite_cases(c, force), by, min_cases=min_slice) if by else []
    return rows, [probe(c, text) for text in probes or []]


def to_json(slices: list[Slice], probes: list[Probe]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if slices:
        extra["slices"] = [s.to_json() for s in slices]
    if probes:
        extra["probes"] = [p.to_json() for p in probes]
    return extra


def show(slices: list[Slice], probes: list[Probe]) -> None:
    from harness.comparison.format import interval, pct, pts

    if slices:
        table = Table(
            "slice", "n", "A", "B", "Δ points", "95% CI", "p (Holm)", "detectable", "verdict",
            title="per slice (paired; McNemar p-values Holm-adjusted across these slices)",
        )  # fmt: skip
        for s in slices:
            d = s.pass_rate
            p = "" if s.p_adjusted is None else f"{s.p_adjusted:.3g}"
            mde = "—" if math.isinf(s.mde) else f"{s.mde * 100:.0f} pts"
            table.add_row(
                escape(f"{s.field}={s.value}"), str(s.n), pct(d.a), pct(d.b), pts(d.delta),
                interval(d), p, mde, s.verdict,
            )  # fmt: skip
        out.print(table)
    for pr in probes:
        d = pr.share
        out.print(
            f"probe [bold]{escape(pr.text)}[/] ({pr.kind}): A {pct(d.a)}, B {pct(d.b)}, "
            f"Δ {pts(d.delta)} points {interval(d)}, McNemar p={pr.p_value:.3g}; "
            f"{len(pr.only_b)} cases match only in B, {len(pr.only_a)} only in A"
        )
        for label, ids in (("only in B", pr.only_b), ("only in A", pr.only_a)):
            if ids:
                shown = ", ".join(ids[:10]) + (f", …{len(ids) - 10} more" if len(ids) > 10 else "")
                out.print(f"  {label}: {escape(shown)}")


def markdown(slices: list[Slice], probes: list[Probe]) -> str:
    from harness.comparison.format import interval, md_text, pct, pts

    lines: list[str] = []
    if slices:
        lines += [
            "",
            "### Per slice",
            "",
            "McNemar p-values Holm-adjusted across these slices.",
            "",
            "| slice | n | A | B | Δ points | 95% CI | p (Holm) | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in slices:
            p = "" if s.p_adjusted is None else f"{s.p_adjusted:.3g}"
            lines.append(
                f"| {md_text(f'{s.field}={s.value}', 80)} | {s.n} | {pct(s.pass_rate.a)} | "
                f"{pct(s.pass_rate.b)} | {pts(s.pass_rate.delta)} | {interval(s.pass_rate)} | "
                f"{p} | {s.verdict} |"
            )
    if probes:
        lines += ["", "### Probes", "", "| probe | A | B | Δ points | 95% CI | McNemar p |"]
        lines.append("|---|---|---|---|---|---|")
        for pr in probes:
            lines.append(
                f"| {md_text(pr.text, 80)} | {pct(pr.share.a)} | {pct(pr.share.b)} | "
                f"{pts(pr.share.delta)} | {interval(pr.share)} | {pr.p_value:.3g} |"
            )
    return "\n".join(lines) + ("\n" if lines else "")
