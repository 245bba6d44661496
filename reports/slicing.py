"""The Compare page's "Where did it change?" block: the comparison per slice of cases (a sortable
table; picking a row lists that slice's cases below) and a probe box (a regex or a length test, its
share per side with the paired interval, the cases where the sides differ, the rubric lines that
would keep it). The figures are `tuneval compare --by/--probe`'s own (harness.comparison.slices)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from harness.comparison.slices import (
    as_criterion_yaml,
    fields_in,
    probe,
    slice_comparison,
    suite_slices,
)
from harness.errors import UserError
from reports import urlstate
from reports.render import md

PROBE_FILTERS = {"all": "all cases", "differs": "cases where the probe differs"}


def _fields(view: Any, case_ids: list[str]) -> list[str]:
    """What to offer: the suite's declared `slices` first, then fields that split its cases, and
    the lm-eval task when the run holds lm-eval items."""
    declared = suite_slices(view.suite) if view.suite is not None else []
    found = fields_in(view.suite.cases) if view.suite is not None else []
    lm_eval = any(cid not in view.cases and "/" in cid for cid in case_ids)
    rest = [f for f in (["task"] if lm_eval else []) + found if f not in declared]
    return declared + rest


def _table(rows: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "slice": [s.value for s in rows],
            "n": [s.n for s in rows],
            "A %": [round(s.pass_rate.a * 100, 1) for s in rows],
            "B %": [round(s.pass_rate.b * 100, 1) for s in rows],
            "Δ points": [round(s.pass_rate.delta * 100, 1) for s in rows],
            "95% CI": [
                f"[{s.pass_rate.low * 100:+.1f}, {s.pass_rate.high * 100:+.1f}]" for s in rows
            ],
            "p (Holm)": [None if s.p_adjusted is None else round(s.p_adjusted, 4) for s in rows],
            "detectable (pts)": [None if math.isinf(s.mde) else round(s.mde * 100) for s in rows],
            "verdict": [s.verdict for s in rows],
        }
    )


def panel(cmp: Any, view: Any) -> tuple[set[str] | None, dict[str, Any]]:
    """Draw the block; (case ids the case list keeps, or None for all; URL parameters)."""
    case_ids = [str(p.case_id) for p in cmp.pairs]
    fields = _fields(view, case_ids)
    urlstate.seed("compare-by", "by", "", options=["", *fields])
    urlstate.seed("compare-probe", "probe", "")
    urlstate.seed("compare-probe-filter", "pf", "all", options=list(PROBE_FILTERS))
    keep: set[str] | None = None
    by, text = "", ""
    wanted = bool(st.session_state.get("compare-by") or st.session_state.get("compare-probe"))
    st.session_state.setdefault("compare-slicing", wanted)
    if st.toggle("Where did it change? Slices and probes", key="compare-slicing"):
        cols = st.columns(2)
        by = cols[0].selectbox(
            "Slice by",
            ["", *fields],
            key="compare-by",
            format_func=lambda f: f or "(no slicing)",
            help="a case field, metadata key, tags or the lm-eval task; suites list theirs first",
        )
        text = cols[1].text_input(
            "Probe: a regex, or e.g. words > 60", key="compare-probe", help="changes no grade"
        )
        if by:
            keep = _slices(cmp, view, by)
        if text.strip():
            kept = _probe(cmp, text.strip())
            if kept is not None:
                keep = kept if keep is None else keep & kept
    params = {
        "by": by or None,
        "probe": text.strip() or None,
        "pf": "differs"
        if text.strip() and st.session_state["compare-probe-filter"] != "all"
        else None,
    }
    return keep, params


def _slices(cmp: Any, view: Any, by: str) -> set[str] | None:
    cases = dict(view.cases) if view.suite is not None else {}
    try:
        rows = slice_comparison(cmp, cases, [by])
    except UserError as e:
        st.error("\n\n".join(map(md, e.lines())))
        return None
    st.caption(
        "Paired per slice; McNemar p-values Holm-adjusted across the slices shown. "
        "Pick a row to list its cases below."
    )
    picked = st.dataframe(
        _table(rows),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"compare-slice-table-{by}",
        width="stretch",
    )
    chosen = list(getattr(getattr(picked, "selection", None), "rows", []) or [])
    if not chosen:
        return None
    s = rows[int(chosen[0])]
    st.caption(f"Listing slice {md(s.field)} = {md(s.value)} ({s.n} cases).")
    return set(s.case_ids)


def _probe(cmp: Any, text: str) -> set[str] | None:
    try:
        result = probe(cmp, text)
    except UserError as e:
        st.error("\n\n".join(map(md, e.lines())))
        return None
    d = result.share
    st.markdown(
        f"**{md(text)}** ({result.kind}): A {d.a * 100:.1f}%, B {d.b * 100:.1f}%, "
        f"Δ {d.delta * 100:+.1f} points [{d.low * 100:+.1f}, {d.high * 100:+.1f}], "
        f"McNemar p={result.p_value:.3g} · {len(result.only_b)} cases match only in B, "
        f"{len(result.only_a)} only in A"
    )
    which = st.radio(
        "List",
        list(PROBE_FILTERS),
        key="compare-probe-filter",
        format_func=PROBE_FILTERS.get,
        horizontal=True,
    )
    st.code(as_criterion_yaml(result), language="yaml")
    st.caption("To keep the probe as a check, paste the lines above into the suite's rubric.")
    return set(result.only_a) | set(result.only_b) if which == "differs" else None
