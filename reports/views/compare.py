"""Compare two runs case by case: headline deltas, transitions, criteria, side-by-side cards."""

from __future__ import annotations

from typing import Any

import streamlit as st

from harness.errors import UserError
from reports import charts, data, suites
from reports.comparison import CHANGES, CRITERION_STATES, compared, filter_pairs
from reports.render import (
    CHANGE_COLOUR,
    badge,
    criteria_html,
    diff_html,
    md,
    pct,
    prompt_block,
    text_block,
)
from reports.widgets import label_line, review_form, reviewer_box

db = data.db_path()
all_runs = [r for r in data.runs(db, data.stamp(db)) if r["n_results"]]
by_id = {r["id"]: r for r in all_runs}
st.title("Compare")
reviewer_box()
if len(all_runs) < 2:
    st.info("Comparing needs two runs with results on the same suite.")
    st.stop()


def run_label(run_id: str) -> str:
    r = by_id[run_id]
    step = f" · step {r['step']}" if r["step"] is not None else ""
    tag = " · candidate" if r["is_candidate"] else ""
    return f"{r['arm']}{step}{tag} · {run_id} ({r['n_results']} cases)"


# --- choose the runs ------------------------------------------------------------------------
suite_names = sorted({r["suite"] for r in all_runs})
newest_suite = all_runs[0]["suite"]  # runs come newest first
if st.session_state.get("compare-suite") not in suite_names:
    st.session_state["compare-suite"] = newest_suite
pick = st.columns([1, 2, 2])
suite = pick[0].selectbox("Suite", suite_names, key="compare-suite")
options = [r["id"] for r in all_runs if r["suite"] == suite]
base_default, cand_default = data.default_pair(all_runs, suite)
for side, default in (("a", base_default), ("b", cand_default)):
    if st.session_state.get(f"compare-{side}") not in options:
        st.session_state[f"compare-{side}"] = default
run_a = pick[1].selectbox("A (base)", options, format_func=run_label, key="compare-a")
run_b = pick[2].selectbox("B (candidate)", options, format_func=run_label, key="compare-b")
if not run_a or not run_b:
    st.info("This suite has a single run: evaluate another model on it to compare.")
    st.stop()
if run_a == run_b:
    st.warning("Pick two different runs.")
    st.stop()

force = False
if by_id[run_a]["suite_fingerprint"] != by_id[run_b]["suite_fingerprint"]:
    st.warning("The two runs used different versions of the suite (cases or rubric changed).")
    force = st.checkbox("Compare anyway", key="compare-force")
try:
    c = compared(
        db,
        run_a,
        run_b,
        force,
        data.run_version(by_id[run_a], db),
        data.run_version(by_id[run_b], db),
    )
except UserError as e:
    st.error("These runs cannot be compared as they are:\n\n" + "\n\n".join(map(md, e.lines())))
    st.stop()
cmp = c.cmp

# --- headline -------------------------------------------------------------------------------
verdict_box = {"improved": st.success, "regressed": st.error}.get(cmp.verdict, st.info)
explanation = getattr(cmp, "explanation", "")
verdict_box(
    f"Verdict: **{cmp.verdict}** · {len(cmp.pairs)} paired cases"
    + (f"  \n{md(explanation)}" if explanation else "")
)
if cmp.must_pass_broken:
    broken = ", ".join(md(str(x)) for x in cmp.must_pass_broken)
    st.error(f"must_pass cases that stopped passing: {broken}")
for warning in getattr(cmp, "warnings", []):
    st.warning(md(warning))
cols = st.columns(4)
for col, (name, d) in zip(
    cols, (("Pass rate", cmp.pass_rate), ("Better rate", cmp.better_rate)), strict=False
):
    col.metric(
        name,
        pct(d.b),
        f"{d.delta * 100:+.1f} pts",
        border=True,
        help=f"A {pct(d.a)} → B {pct(d.b)}; 95% paired bootstrap interval of the change",
    )
    col.caption(f"95% CI [{d.low * 100:+.1f}, {d.high * 100:+.1f}] pts · A {pct(d.a)}")


def _p(test: dict[str, Any]) -> str:
    p = test.get("p_value", test.get("p"))
    return "—" if p is None else f"{p:.3g}"


cols[2].metric("McNemar p (pass/fail)", _p(cmp.mcnemar), border=True)
cols[3].metric("Sign test p (grades)", _p(cmp.sign_test), border=True)
mde_text = getattr(cmp, "mde_text", None)
st.caption(mde_text() if callable(mde_text) else f"minimum detectable effect: {cmp.mde:.3f}")

charts_cols = st.columns(2)
with charts_cols[0]:
    st.markdown("**Grade transitions** (rows: A, columns: B)")
    st.vega_lite_chart(
        c.charts["transitions"], key="chart-transitions", height=charts.HEATMAP_HEIGHT
    )
with charts_cols[1]:
    st.markdown("**Per-criterion pass-rate change** (B − A, 95% CI)")
    st.vega_lite_chart(
        c.charts["criteria"],
        key="chart-criteria",
        height=charts.criteria_height(len(cmp.criteria)),
    )

# --- filters --------------------------------------------------------------------------------
st.subheader("Cases")
counts = c.table["change"].value_counts().to_dict() if not c.table.empty else {}
changes = st.pills(
    "Change",
    CHANGES,
    selection_mode="multi",
    default=["regressed", "improved"],
    key="compare-changes",
    format_func=lambda ch: f"{ch} ({counts.get(ch, 0)})",
)
f = st.columns([2, 2, 3])
criterion = f[0].selectbox(
    "Criterion",
    [None, *c.criteria],
    key="compare-criterion",
    format_func=lambda x: "any" if x is None else x,
)
state = f[1].selectbox(
    "…which",
    list(CRITERION_STATES),
    key="compare-crit-state",
    format_func=CRITERION_STATES.get,
    disabled=criterion is None,
)
search = f[2].text_input("Search prompt, outputs, case id", key="compare-search")
shown = filter_pairs(c.table, changes, criterion, state, search)
order = {ch: i for i, ch in enumerate(CHANGES)}
shown = shown.sort_values(
    by=["change", "i"], key=lambda s: s.map(order) if s.name == "change" else s
)

size = 10
pages = max(1, -(-len(shown) // size))
page_no = 1
if pages > 1:  # keyed by the match count, so a new filter starts again at page 1
    page_no = int(st.pagination(pages, key=f"compare-page-{len(shown)}"))
st.caption(f"{len(shown)} of {len(c.table)} cases match · page {page_no} of {pages}")

# --- side-by-side cards ---------------------------------------------------------------------
view_a = suites.load(by_id[run_a]["suite_path"])
labels = data.labels(db)
side_names = {"A": by_id[run_a]["arm"], "B": by_id[run_b]["arm"]}
for i in shown["i"].iloc[(page_no - 1) * size : page_no * size]:
    p = cmp.pairs[int(i)]
    with st.container(border=True, key=f"card-{i}"):
        flag = " · :violet-badge[must pass]" if suites.must_pass(view_a, str(p.case_id)) else ""
        st.markdown(f"#### case {md(str(p.case_id))} {badge(p.change, CHANGE_COLOUR)}{flag}")
        top = st.columns(2)
        with top[0]:
            st.markdown("**Prompt**")
            prompt_block(p.a.get("prompt") or p.b.get("prompt") or "[]")
        with top[1]:
            st.markdown("**Reference**")
            ref = suites.reference(view_a, str(p.case_id))
            if ref is None:
                st.caption(view_a.problem or "no reference answer for this case")
            else:
                text_block(ref, empty="(empty reference)")
        sides = st.columns(2)
        for col, tag, run_id, row in ((sides[0], "A", run_a, p.a), (sides[1], "B", run_b, p.b)):
            with col:
                lab = labels.get((run_id, str(p.case_id)))
                st.markdown(f"**{tag} · {md(side_names[tag])}** — {label_line(row['grade'], lab)}")
                text_block(row.get("output", ""))
        st.html(diff_html(p.a.get("output", ""), p.b.get("output", "")))
        st.html(criteria_html(p.a.get("criteria", {}), p.b.get("criteria", {})))
        if st.toggle("Human grade", key=f"review-{run_a}-{run_b}-{p.case_id}"):
            grade_cols = st.columns(2)
            for col, tag, run_id in ((grade_cols[0], "A", run_a), (grade_cols[1], "B", run_b)):
                with col:
                    st.caption(f"{tag} · {side_names[tag]}")
                    review_form(
                        db,
                        run_id,
                        str(p.case_id),
                        labels.get((run_id, str(p.case_id))),
                        key=f"lab-{tag}-{run_id}-{p.case_id}",
                    )
