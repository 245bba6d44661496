"""The grading queue: the cases of one run, or of two runs side by side, one at a time, in an
order worth a reviewer's time (regressions, then improvements, then the rest), with the position,
what is graded and what to grade next. Keys: 1 2 3 grade the left output bad/good/better, 7 8 9
the right one; J and K move on and back, N jumps to the next ungraded case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from harness.grading.grader import GRADES
from reports import data
from reports import labels as label_store
from reports.comparison import CHANGES, compared

SCOPES = {
    "changed-first": "every case, regressions and improvements first",
    "changed": "only regressed and improved cases",
    "suite": "every case, in suite order",
}
KEYS = {"A": ("1", "2", "3"), "B": ("7", "8", "9")}  # left hand grades the left output


@dataclass
class Queue:
    ids: list[str]  # in grading order
    rows: dict[str, dict[str, dict[str, Any]]]  # case id -> side ("A", "B") -> result row
    changes: dict[str, str]  # case id -> improved | regressed | unchanged (two runs only)
    runs: dict[str, str]  # side -> run id
    pairs: dict[str, Any]  # case id -> the comparison's pair (two runs only)

    def position(self, case_id: str | None) -> int:
        return self.ids.index(case_id) if case_id in self.ids else 0


def build(db: str, runs: dict[str, dict[str, Any]], scope: str) -> Queue:
    """The queue over run A, or over the pairs of runs A and B (cached comparison)."""
    run_ids = {side: r["id"] for side, r in runs.items()}
    if "B" not in runs:
        rows = data.results(db, run_ids["A"], data.run_version(runs["A"], db))
        by_case = {str(r["case_id"]): {"A": r} for r in rows}
        return Queue(list(by_case), by_case, {}, run_ids, {})
    c = compared(
        db, run_ids["A"], run_ids["B"], False,
        data.run_version(runs["A"], db), data.run_version(runs["B"], db),
    )  # fmt: skip
    pairs = {str(p.case_id): p for p in c.cmp.pairs}
    ids = list(pairs)
    changes = {cid: p.change for cid, p in pairs.items()}
    if scope != "suite":
        rank = {ch: i for i, ch in enumerate(CHANGES)}
        ids.sort(key=lambda cid: rank[changes[cid]])  # stable: suite order inside a change
    if scope == "changed":
        ids = [cid for cid in ids if changes[cid] != "unchanged"]
    rows = {cid: {"A": p.a, "B": p.b} for cid, p in pairs.items()}
    return Queue(ids, rows, changes, run_ids, pairs)


def graded(queue: Queue, labels: dict[tuple[str, str], dict[str, Any]]) -> set[str]:
    """Cases with a human grade on every side of the queue."""
    return {cid for cid in queue.ids if all((run, cid) in labels for run in queue.runs.values())}


def next_ungraded(
    queue: Queue, labels: dict[tuple[str, str], dict[str, Any]], after: str | None
) -> str | None:
    """The first ungraded case after `after` (wrapping round), or None when all are graded."""
    done = graded(queue, labels)
    start = queue.position(after) + (1 if after in queue.ids else 0)
    order = queue.ids[start:] + queue.ids[:start]
    return next((cid for cid in order if cid not in done), None)


def _grade(db: str, queue: Queue, side: str, case_id: str, grade: str) -> None:
    before = graded(queue, data.labels(db))
    old = data.labels(db).get((queue.runs[side], case_id)) or {}
    label_store.save_label(
        db, queue.runs[side], case_id, grade,
        note=old.get("note", ""), corrected_output=old.get("corrected_output"),
        reviewer=st.session_state.get("reviewer", ""),
    )  # fmt: skip
    labels = data.labels(db)
    st.session_state["grading-msg"] = f"{side}: {grade} saved for case {case_id}."
    finished = case_id in graded(queue, labels) and case_id not in before
    if finished and st.session_state.get("grading-advance", True):
        following = next_ungraded(queue, labels, case_id)
        if following is not None:
            st.session_state["grading-case"] = following


def grade_buttons(db: str, queue: Queue, side: str, case_id: str, current: str | None) -> None:
    """bad / good / better for one output; the human grade it has now is the filled button."""
    cols = st.columns(3)
    for col, grade, key in zip(cols, GRADES, KEYS[side], strict=True):
        col.button(
            grade,  # Streamlit shows the key beside the label
            key=f"grade-{side}-{grade}",
            type="primary" if grade == current else "secondary",
            shortcut=key,
            on_click=_grade,
            args=(db, queue, side, case_id, grade),
            width="stretch",
        )


def move(queue: Queue, to: str | None) -> None:
    if to is not None:
        st.session_state["grading-case"] = to


def navigation(db: str, queue: Queue, case_id: str) -> None:
    """Back, on, and on to the next case without a grade."""
    i = queue.position(case_id)
    labels = data.labels(db)
    cols = st.columns(3)
    cols[0].button(
        "← Previous", key="grading-prev", shortcut="K", width="stretch",
        on_click=move, args=(queue, queue.ids[i - 1] if i > 0 else None), disabled=i == 0,
    )  # fmt: skip
    last = i + 1 >= len(queue.ids)
    cols[1].button(
        "Next →", key="grading-next", shortcut="J", width="stretch",
        on_click=move, args=(queue, None if last else queue.ids[i + 1]), disabled=last,
    )  # fmt: skip
    following = next_ungraded(queue, labels, case_id)
    cols[2].button(
        "Next ungraded", key="grading-next-ungraded", shortcut="N", width="stretch",
        on_click=move, args=(queue, following), disabled=following in (None, case_id),
    )  # fmt: skip
