"""The top of the Compare page: the verdict with its reason and what leaked test prompts carry of
it, the headline deltas with their intervals, what each answer cost, and the per-criterion changes
by rubric section."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from harness.comparison.cost import amount, engine_caveat, engine_of, ratio_cells
from harness.comparison.format import pct
from reports.comparison import Compared, without
from reports.data import Stamp
from reports.render import md, plural, points


def _p(test: dict[str, Any]) -> str:
    p = test.get("p_value", test.get("p"))
    return "—" if p is None else f"{p:.3g}"


def _interval(d: Any) -> str:
    return f"95% CI [{d.low * 100:+.1f}, {d.high * 100:+.1f}] pts"


def leak_line(
    c: Compared, leaks: dict[str, dict[str, Any]], db: str, runs: tuple[str, str], force: bool,
    versions: tuple[Stamp, Stamp],
) -> str:  # fmt: skip
    """How many paired cases leaked, how many of the moved cases are among them, and the verdict
    on the others."""
    cmp = c.cmp
    leaked = frozenset(str(p.case_id) for p in cmp.pairs if str(p.case_id) in leaks)
    exact = sum(1 for cid in leaked if leaks[cid]["kind"] == "exact")
    moved = []
    for change in ("regressed", "improved"):
        pairs = cmp.changed(change)
        inside = sum(1 for p in pairs if str(p.case_id) in leaked)
        moved.append(f"{inside} of {len(pairs)} {change}")
    text = (
        f"⚠ **{len(leaked)} of {cmp.n} paired cases have prompts in the training data** "
        f"({exact} exactly, {len(leaked) - exact} nearly); {' and '.join(moved)} cases are among "
        "them."
    )
    rest = without(db, *runs, force, versions, leaked)
    if rest is None:
        return text + " No case is left without them."
    d = rest.pass_rate
    return text + (
        f" Without them ({plural(rest.n, 'case')}): **{rest.verdict}**, pass rate "
        f"{pct(d.a)} → {pct(d.b)} ({points(d.delta)}, {_interval(d)})."
    )


def headline(
    c: Compared, db: str, runs: tuple[str, str], force: bool, versions: tuple[Stamp, Stamp],
    leaks: dict[str, dict[str, Any]], leak_note: str,
) -> None:  # fmt: skip
    cmp = c.cmp
    lines = [f"Verdict: **{cmp.verdict}** · {plural(cmp.n, 'paired case')}"]
    if cmp.explanation:
        lines.append(md(cmp.explanation))
    if any(str(p.case_id) in leaks for p in cmp.pairs):
        lines.append(leak_line(c, leaks, db, runs, force, versions))
    box = {"improved": st.success, "regressed": st.error}.get(cmp.verdict, st.info)
    box("  \n".join(lines))
    if leak_note:
        st.caption(leak_note)
    if cmp.must_pass_broken:
        broken = ", ".join(md(str(x)) for x in cmp.must_pass_broken)
        st.error(f"must_pass cases that stopped passing: {broken}")
    for warning in cmp.warnings:
        st.warning(md(warning))

    left, right = st.columns([3, 4])
    with left:
        cols = st.columns(2)
        for col, (name, d) in zip(
            cols, (("Pass rate", cmp.pass_rate), ("Better rate", cmp.better_rate)), strict=True
        ):
            col.metric(
                name,
                pct(d.b),
                points(d.delta),
                delta_color="normal" if round(d.delta * 1000) else "off",  # no arrow for ±0.0
                border=True,
                help=f"A {pct(d.a)} → B {pct(d.b)}; 95% paired bootstrap interval of the change",
            )
            col.caption(f"{_interval(d)} · A {pct(d.a)}")
        cols = st.columns(2)
        cols[0].metric("McNemar p (pass/fail)", _p(cmp.mcnemar), border=True)
        cols[1].metric("Sign test p (grades)", _p(cmp.sign_test), border=True)
        st.caption(cmp.mde_text())
        cost_block(cmp)
    with right:
        st.markdown("**Per-criterion pass-rate change** (B − A, 95% CI; faint: CI holds 0)")
        st.vega_lite_chart(c.charts["criteria"], key="chart-criteria", width="content")


def cost_rows(cmp: Any) -> list[dict[str, Any]]:
    """The CLI's cost table (`tuneval compare`): mean per case on each side, B / A with its
    paired bootstrap interval, the cases with the figure on both sides."""
    rows = []
    for line in cmp.cost:
        ratio, ci = ratio_cells(line)
        rows.append(
            {
                "cost per case (mean)": line.label,
                "A": amount(line, line.a),
                "B": amount(line, line.b),
                "B / A": ratio,
                "95% CI": ci,
                "cases": line.n,
            }
        )
    return rows


def _engine(run: dict[str, Any]) -> str:
    """The engine that answered a run, as `tuneval runs show` names it, in words."""
    engine = engine_of(run)
    if engine is None:  # stored before tuneval noted it
        return "an unknown engine"
    return "the cache (every answer)" if engine == "cache" else md(engine)


def cost_block(cmp: Any) -> None:
    """What an answer costs beside how good it is: the prompt-or-finetune question needs both."""
    rows = cost_rows(cmp)
    engines = " · ".join(
        f"{side} answered by {_engine(run)}"
        for side, run in zip("AB", (cmp.run_a, cmp.run_b), strict=True)
    )
    if not rows:
        st.caption(f"No cost figures: these runs record no token counts or times. {engines}.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="compare-cost")
    note = f"Seconds: each answer's share of its batch's decoding time. {engines}."
    caveat = engine_caveat(cmp.run_a, cmp.run_b)
    if caveat:
        st.warning(md(caveat[0].upper() + caveat[1:] + "."))
    st.caption(note)
