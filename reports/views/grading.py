"""Human grading: agreement between human and automatic grades, and corrected pairs as data."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from harness.criteria.judge import human_agreement
from harness.grading import GRADES
from reports import data
from reports.labels import agreement, confusion, corrected_pairs, labelled_results, to_jsonl

db = data.db_path()
st.title("Human grading")
st.caption("Set grades on the Compare and Case explorer pages; they are gathered here.")

with data.reader(db) as store:
    rows = labelled_results(store)
if not rows:
    st.info("No human labels yet. Open a case on Compare or Case explorer and set a grade.")
    st.stop()

runs = sorted({r["run_id"] for r in rows})
chosen = st.multiselect("Runs", runs, default=runs, key="grading-runs")
rows = [r for r in rows if r["run_id"] in chosen]
pairs = [(r["human"], r["auto"]) for r in rows]
ag = agreement(pairs)
cols = st.columns(3)
cols[0].metric("Labelled cases", ag["n"])
cols[1].metric("Agreement", "—" if ag["share"] is None else f"{ag['share']:.0%}")
cols[2].metric(
    "Cohen's kappa",
    "—" if ag["kappa"] is None else f"{ag['kappa']:.2f}",
    help="agreement beyond chance between human and automatic grades",
)

judged = human_agreement(rows)
if judged:
    st.markdown(
        "**Judge criteria against the human grades** (pass/fail; Cohen's kappa), on the cases "
        "where the judge decided the grade: every other criterion that could change it passed "
        "(`left_out`: cases another criterion had already decided)"
    )
    st.dataframe(pd.DataFrame(judged), hide_index=True, key="grading-judges")

st.markdown("**Human (rows) against automatic (columns)**")
table = confusion(pairs)
st.dataframe(pd.DataFrame(table).T.reindex(index=GRADES, columns=GRADES).rename_axis("human"))

st.dataframe(
    pd.DataFrame(
        [
            {
                "run": r["run_id"],
                "case": r["case_id"],
                "model": r["model"],
                "automatic": r["auto"],
                "human": r["human"],
                "note": r["note"],
                "corrected": bool(r["corrected_output"]),
                "reviewer": r["reviewer"],
            }
            for r in rows
        ]
    ),
    hide_index=True,
)

st.subheader("Export corrected pairs")
accept = st.selectbox(
    "Also keep the model's own output when the human grade is at least",
    ["better", "good", None],
    format_func=lambda x: "only corrected outputs" if x is None else x,
    key="grading-accept",
)
with data.reader(db) as store:
    examples = corrected_pairs(store, chosen, accept)
st.caption(
    f'{len(examples)} chat-format examples ({{"messages": [...]}} per line): corrected outputs '
    "replace the model's answer."
)
st.download_button(
    "Download JSONL",
    to_jsonl(examples),
    file_name="corrected_pairs.jsonl",
    mime="application/jsonl",
    disabled=not examples,
    key="grading-download",
)
