"""Interactive pieces shared by pages: the human-grade form and the label line."""

from __future__ import annotations

from typing import Any

import streamlit as st

from harness.grading import GRADES
from reports import labels as label_store
from reports.render import badge, md


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
