"""Pieces shared by pages: run and model names, percentage columns, the human-grade form and the
label line."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pandas as pd
import streamlit as st

from harness.comparison.format import percent
from harness.grading.grader import GRADES
from harness.suite.prompts import arm
from reports import data, urlstate
from reports import labels as label_store
from reports.render import badge, md

# One way to show a share in a table: a percentage with one decimal ("53.1%"), from a 0-100
# column (`as_percent`); bars are blue, since a pass rate of 75% is not an alarm.
PERCENT = st.column_config.NumberColumn(format="%.1f%%")
RATE_BAR = st.column_config.ProgressColumn(
    format="%.1f%%", min_value=0.0, max_value=100.0, color="blue"
)


def as_percent(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Shares (0-1) as percentages (0-100) for PERCENT and RATE_BAR columns, rounded as the
    text rounds them (`render.percent`)."""
    out = frame.copy()
    for c in columns:
        shares = pd.to_numeric(out[c], errors="coerce")
        out[c] = shares.map(lambda x: percent(float(x)) if pd.notna(x) else x)
    return out


def model_label(run: dict[str, Any]) -> str:
    """The arm of a run as every page names it: the model with its prompt variant when it has
    one (and its sampling settings where they tell arms apart, `arms.label_all`), marked when it
    is served (its fingerprint is only the endpoint's word)."""
    name = run.get("arm_label") or arm(str(run["model"]), run.get("prompt_variant") or None)
    if run.get("model_kind") == "served":
        name += " (served, not verified)"
    return name


def run_label(run: dict[str, Any]) -> str:
    """A short, whole name for a run picker: model, step, when, cases, the end of its id."""
    step = f" @ step {run['step']}" if run.get("step") is not None else ""
    when = dt.datetime.fromtimestamp(run["created_at"]).strftime("%m-%d %H:%M")
    return f"{model_label(run)}{step} · {when} · {run['n_results']} cases · …{run['id'][-6:]}"


def label_line(auto: str, label: dict[str, Any] | None) -> str:
    """'auto good · human bad — note' as markdown (the note is escaped)."""
    line = f"auto {badge(auto)}"
    if label:
        agree = "✓" if label["grade"] == auto else "≠"
        line += f" · human {badge(label['grade'])} {agree}"
        if label.get("note"):
            line += f" — _{md(label['note'])}_"
    return line


def _save(db: str, run_id: str, case_id: str, key: str) -> None:
    grade = st.session_state.get(f"{key}-grade")
    if grade is None:
        st.session_state[f"{key}-msg"] = "Pick a grade first."
        return
    label_store.save_label(
        db,
        run_id,
        case_id,
        grade,
        note=st.session_state.get(f"{key}-note", ""),
        corrected_output=st.session_state.get(f"{key}-corrected") or None,
        reviewer=st.session_state.get("reviewer", ""),
    )
    st.session_state[f"{key}-msg"] = f"Saved: {grade}."


def _clear(db: str, run_id: str, case_id: str, key: str) -> None:
    label_store.delete_label(db, run_id, case_id)
    for part in ("grade", "note", "corrected"):
        st.session_state.pop(f"{key}-{part}", None)
    st.session_state[f"{key}-msg"] = "Label removed."


def review_form(db: str, run_id: str, case_id: str, label: dict[str, Any] | None, key: str) -> None:
    """Set the human grade, a note and optionally a corrected output for one case of one run."""
    with st.container(border=True):
        with st.form(f"{key}-form", border=False):
            current = GRADES.index(label["grade"]) if label else None
            st.radio("Grade", GRADES, index=current, horizontal=True, key=f"{key}-grade")
            st.text_input("Note", value=(label or {}).get("note", ""), key=f"{key}-note")
            st.text_area(
                "Corrected output (optional; exported as the training answer)",
                value=(label or {}).get("corrected_output") or "",
                key=f"{key}-corrected",
                height=80,
            )
            st.form_submit_button("Save label", on_click=_save, args=(db, run_id, case_id, key))
        if label:
            st.button(
                "Remove label",
                key=f"{key}-clear",
                on_click=_clear,
                args=(db, run_id, case_id, key),
            )
        msg = st.session_state.pop(f"{key}-msg", None)
        if msg:
            st.caption(msg)


def reviewer_box() -> None:
    st.sidebar.text_input("Reviewer name (for labels)", key="reviewer")


def suite_picker(where: Any, runs: list[dict[str, Any]], key: str) -> str:
    """A page's suite select box over the suites of `runs`: the URL's `suite` when it names one,
    else the suite of the newest candidate run (`data.default_suite`)."""
    names = sorted({r["suite"] for r in runs})
    first = data.default_suite(runs)
    urlstate.seed(key, "suite", first, options=names)
    urlstate.keep(key, names, first)
    return str(where.selectbox("Suite", names, key=key))


def scroll_to(key: str) -> None:
    """Scroll the element with widget or container key `key` into view once it is on the page
    (it may be drawn after this script element; give up after ten seconds). Streamlit writes a
    key as the class `st-key-<key>`, other characters than letters, digits, - and _ as -."""
    name = "st-key-" + re.sub(r"[^A-Za-z0-9_-]", "-", key)
    st.html(
        f"""<script>
        (() => {{
          const started = Date.now();
          const look = () => {{
            const el = document.getElementsByClassName({json.dumps(name)})[0];
            if (el) el.scrollIntoView({{block: "start"}});
            else if (Date.now() - started < 10000) setTimeout(look, 100);
          }};
          look();
        }})();
        </script>""",
        unsafe_allow_javascript=True,
    )
