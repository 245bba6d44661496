"""Case explorer: one case across every run and checkpoint of its suite."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
import streamlit as st

from reports import data, suites, urlstate
from reports.caseview import leak_badge, leak_warning, prompt_and_reference
from reports.render import criteria_html, md, step_text, text_block
from reports.widgets import label_line, model_label, review_form, reviewer_box, suite_picker

db = data.db_path()
version = data.stamp(db)
all_runs = [r for r in data.runs(db, version) if r["n_results"]]
st.title("Case explorer")
reviewer_box()
if not all_runs:
    st.info("No runs with results yet.")
    st.stop()

top = st.columns([1, 3])
suite = suite_picker(top[0], all_runs, "cases-suite")
ids = data.case_ids(db, suite, version)
first_case = ids[0] if ids else None
urlstate.seed("cases-case", "case", first_case, options=ids)
urlstate.keep("cases-case", ids, first_case)
case_id = top[1].selectbox("Case", ids, key="cases-case", placeholder="type to search case ids")
urlstate.publish({"suite": suite, "case": case_id})
if case_id is None:
    st.stop()

rows = data.case_across_runs(db, suite, case_id, version)
newest = next(r for r in all_runs if r["suite"] == suite)
view = suites.for_run(newest)
leak = suites.leaks(view).get(case_id)
leak_warning(leak)
with prompt_and_reference(
    view, case_id, rows[-1]["prompt"] if rows else "", rows[-1] if rows else None
):
    if suites.must_pass(view, case_id):
        st.markdown(":violet-badge[must pass]")
    if leak:
        st.markdown(leak_badge(leak))

labels = data.labels(db)
st.dataframe(
    pd.DataFrame(
        [
            {
                "run": r["run_id"],
                "model": model_label(r),
                "step": step_text(r["step"]),
                "when": dt.datetime.fromtimestamp(r["created_at"]),
                "grade": r["grade"],
                "human": (labels.get((r["run_id"], case_id)) or {}).get("grade", ""),
                "failed": ", ".join(k for k, v in r["criteria"].items() if not v.get("passed")),
            }
            for r in rows
        ]
    ),
    hide_index=True,
    column_config={"when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
)


def same_card(r: dict[str, Any]) -> tuple[Any, ...]:
    """What a card shows: re-runs of one arm with the same answer, grades and human grade (a
    cached re-run, as every loop makes of its base) are one card."""
    lab = (labels.get((r["run_id"], case_id)) or {}).get("grade")
    criteria = json.dumps(r["criteria"], sort_keys=True, default=str)
    return (model_label(r), r["step"], r["output"], r["grade"], criteria, lab)


cards: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
for r in reversed(rows):  # newest first; a card stands where its newest run is
    cards.setdefault(same_card(r), []).append(r)

for same in cards.values():
    r = same[0]
    with st.container(border=True):
        step = f" · step {r['step']}" if r["step"] is not None else ""
        lab = labels.get((r["run_id"], case_id))
        who = md(model_label(r))
        st.markdown(f"**{who}**{step} · `{r['run_id']}` — {label_line(r['grade'], lab)}")
        if len(same) > 1:
            older = ", ".join(f"`{o['run_id']}`" for o in same[1:])
            st.caption(f"×{len(same)} runs with this same answer and grades (also {older})")
        cols = st.columns([3, 2])
        with cols[0]:
            text_block(r["output"])
        with cols[1]:
            st.html(criteria_html(r["criteria"]))
        if st.toggle("Human grade", key=f"case-review-{r['run_id']}-{case_id}"):
            review_form(db, r["run_id"], case_id, lab, key=f"case-{r['run_id']}-{case_id}")
