"""Human grading: a queue that shows one case at a time (A and B side by side, graded with the
keyboard), then agreement between human and automatic grades, and corrected pairs as data."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from harness.comparison.agreement import human_agreement
from harness.grading.grader import GRADES
from reports import data, suites, urlstate
from reports.caseview import leak_badge, leak_warning, prompt_and_reference
from reports.labels import agreement, confusion, corrected_pairs, labelled_results, to_jsonl
from reports.queue import SCOPES, build, grade_buttons, graded, navigation, next_ungraded
from reports.render import badge, change_badge, criteria_html, diff_html, md, plural, text_block
from reports.widgets import (
    label_line,
    model_label,
    review_form,
    reviewer_box,
    run_label,
    suite_picker,
)

db = data.db_path()
all_runs = [r for r in data.runs(db, data.stamp(db)) if r["n_results"]]
by_id = {r["id"]: r for r in all_runs}
st.title("Human grading")
reviewer_box()
if not all_runs:
    st.info("No runs with results yet: evaluate a model first (`tuneval eval SUITE`).")
    st.stop()

# --- what to grade ---------------------------------------------------------------------------
pick = st.columns([1, 3, 3])
suite = suite_picker(pick[0], all_runs, "grading-suite")
options = [r["id"] for r in all_runs if r["suite"] == suite]
defaults = dict(zip("ab", data.default_pair(all_runs, suite), strict=True))
urlstate.seed("grading-a", "a", defaults["a"], options=options)
urlstate.keep("grading-a", options, defaults["a"])
urlstate.seed("grading-b", "b", defaults["b"], options=options)
urlstate.keep("grading-b", [None, *options], defaults["b"])
urlstate.seed("grading-scope", "queue", "changed-first", options=SCOPES)


def label(run_id: str | None) -> str:
    return "none: grade A alone" if run_id is None else run_label(by_id[run_id])


run_a = pick[1].selectbox("A (left)", options, format_func=label, key="grading-a")
run_b = pick[2].selectbox("B (right)", [None, *options], format_func=label, key="grading-b")
scope = st.columns([2, 3])[0].selectbox(
    "Queue", list(SCOPES), format_func=SCOPES.get, key="grading-scope", disabled=run_b is None
)
if run_b == run_a:
    run_b = None
sides = {"A": by_id[run_a]} | ({"B": by_id[run_b]} if run_b else {})
queue = build(db, sides, scope if run_b else "suite")
labels = data.labels(db)
done = graded(queue, labels)
urlstate.seed("grading-case", "case", next_ungraded(queue, labels, None), options=queue.ids)
urlstate.keep("grading-case", queue.ids, next_ungraded(queue, labels, None))
pair_key = [suite, run_a, run_b, scope]
if st.session_state.get("grading-pair") not in (None, pair_key):
    # Another pair or queue: start at its first case to grade, not at the old position.
    st.session_state["grading-case"] = next_ungraded(queue, labels, None)
st.session_state["grading-pair"] = pair_key
case_id = st.session_state["grading-case"] or (queue.ids[0] if queue.ids else None)
urlstate.seed("grading-blind", "blind", False, parse=lambda v: v == "1")
blind = st.columns([2, 3])[1].toggle(
    "Blind: hide names and automatic grades until a case is graded",
    key="grading-blind",
    help="so that the model's name and the automatic grade do not lead the human grade",
)
urlstate.publish(
    {
        "suite": suite, "a": run_a, "b": run_b, "queue": scope if run_b else None,
        "case": case_id, "blind": "1" if blind else None,
    }
)  # fmt: skip

# --- one case at a time ----------------------------------------------------------------------
if case_id is None:
    st.info("No case in this queue.")
else:
    hidden = blind and case_id not in done  # names and automatic grades, until graded
    per_side = {
        side: sum((run, cid) in labels for cid in queue.ids) for side, run in queue.runs.items()
    }
    counts = " · ".join(f"{side}: {n} labelled" for side, n in per_side.items())
    both = " on every side" if run_b else ""
    st.progress(
        len(done) / len(queue.ids),
        text=f"{len(done)} of {plural(len(queue.ids), 'case')} graded{both} · {counts}",
    )
    navigation(db, queue, case_id)
    view = suites.for_run(by_id[run_a])
    leak = suites.leaks(view).get(case_id)
    head = f"### case {md(case_id)} · {queue.position(case_id) + 1} of {len(queue.ids)}"
    if case_id in queue.changes and not hidden:
        head += f" {change_badge(queue.changes[case_id])}"
    if suites.must_pass(view, case_id):
        head += " :violet-badge[must pass]"
    st.markdown(head + (f" {leak_badge(leak)}" if leak else ""))
    rows = queue.rows[case_id]

    def who(side: str) -> str:
        return side if hidden else f"{side} · {md(model_label(by_id[queue.runs[side]]))}"

    # The grade buttons come first, under the case's name: in view without scrolling.
    cols = st.columns(len(rows))
    for col, (side, row) in zip(cols, rows.items(), strict=True):
        with col:
            lab = labels.get((queue.runs[side], case_id))
            line = (
                f"human {badge(lab['grade'])}" if lab else "not graded"
            ) if hidden else label_line(row["grade"], lab)  # fmt: skip
            st.markdown(f"**{who(side)}** — {line}")
            grade_buttons(db, queue, side, case_id, lab["grade"] if lab else None)
    message = st.session_state.pop("grading-msg", None)
    st.caption(
        (f"{message} " if message else "")
        + "Keys: 1 2 3 grade A bad / good / better"
        + (", 7 8 9 grade B" if run_b else "")
        + " · J next · K previous · N next ungraded."
    )
    leak_warning(leak)
    prompt_and_reference(view, case_id, rows["A"].get("prompt") or "", rows["A"])
    cols = st.columns(len(rows))
    for col, (side, row) in zip(cols, rows.items(), strict=True):
        with col:
            st.markdown(f"**{who(side)}**")
            text_block(row.get("output", ""))
    st.checkbox("Go to the next ungraded case when this one is graded", True, key="grading-advance")
    if run_b:
        st.html(diff_html(rows["A"].get("output", ""), rows["B"].get("output", "")))
    if hidden:
        st.caption("Automatic criteria hidden until this case is graded (blind mode).")
    else:
        st.html(criteria_html(rows["A"]["criteria"], rows["B"]["criteria"] if run_b else None))
    with st.expander("Note or corrected output"):
        for side, run_id in queue.runs.items():
            st.caption(who(side))
            lab = labels.get((run_id, case_id))
            review_form(db, run_id, case_id, lab, key=f"lab-{side}-{run_id}-{case_id}")

# --- agreement and export --------------------------------------------------------------------
st.divider()
st.subheader("Human against automatic grades")
with data.reader(db) as store:
    rows_all = labelled_results(store)
if not rows_all:
    st.info("No human labels yet: grade cases in the queue above.")
    st.stop()
label_runs = sorted({r["run_id"] for r in rows_all})
# A run labelled since the last rerun (the B side's first label) joins the selection at once.
known = st.session_state.get("grading-runs-known", [])
if "grading-runs" in st.session_state:
    kept = [r for r in st.session_state["grading-runs"] if r in label_runs]
    st.session_state["grading-runs"] = kept + [r for r in label_runs if r not in known]
else:
    st.session_state["grading-runs"] = label_runs
st.session_state["grading-runs-known"] = label_runs
chosen = st.multiselect("Runs", label_runs, key="grading-runs")
rows_all = [r for r in rows_all if r["run_id"] in chosen]
pairs = [(r["human"], r["auto"]) for r in rows_all]
ag = agreement(pairs)
cols = st.columns(3)
cols[0].metric("Labelled cases", ag["n"])
cols[1].metric("Agreement", "—" if ag["share"] is None else f"{ag['share']:.1%}")
cols[2].metric(
    "Cohen's kappa",
    "—" if ag["kappa"] is None else f"{ag['kappa']:.2f}",
    help="agreement beyond chance between human and automatic grades; — below two labels or "
    "when both always gave one grade",
)
judged = human_agreement(rows_all)
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
            for r in rows_all
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
export_suites = sorted({e["source"]["suite"] for e in examples})
st.caption(
    f'{plural(len(examples), "chat-format example")} ({{"messages": [...]}} per line): '
    "corrected outputs replace the model's answer."
)
if examples:
    st.warning(
        f"These examples are test cases of {', '.join(map(md, export_suites))}. Training on them "
        "puts the test set into the training data: later evaluations on these cases measure "
        "memory, not skill (`tuneval data check` will report them as exact leakage). Move the "
        "cases out of the suite's test split, or evaluate on other cases, before training on them."
    )
st.download_button(
    "Download JSONL",
    to_jsonl(examples),
    file_name="corrected_pairs.jsonl",
    mime="application/jsonl",
    disabled=not examples,
    key="grading-download",
)
