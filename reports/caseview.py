"""One compared case: its compact row (a line of chips and both outputs, cut short) and what the
row shows when opened (prompt, reference, both outputs, the word diff, every criterion, links).
Compare lists cases with it; the grading queue shows one case at a time with it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from harness.comparison.sampling import sample_grades
from reports import suites
from reports.render import (
    badge,
    change_badge,
    changed_criteria,
    criteria_html,
    diff_html,
    md,
    prompt_block,
    snippet,
    text_block,
)
from reports.widgets import label_line

CASES_PAGE = "views/cases.py"
GRADING_PAGE = "views/grading.py"


def leak_badge(leak: dict[str, Any] | None) -> str:
    """'in train' (exact) or '≈ train 0.86' (near, its Jaccard similarity), or ''."""
    if not leak:
        return ""
    if leak["kind"] == "exact":
        return ":red-badge[in train]"
    return f":orange-badge[≈ train {leak['jaccard']:.2f}]"


def row_label(pair: Any, *, must_pass: bool, leak: dict[str, Any] | None) -> str:
    """The compact row: case, change, grades, changed criteria, flags, both outputs cut short."""
    a, b = pair.a, pair.b
    parts = [
        f"**{md(str(pair.case_id))}**",
        change_badge(pair.change),
        f"{badge(a['grade'])} → {badge(b['grade'])}",
    ]
    if a.get("samples") or b.get("samples"):  # k samples per case: passes out of k, flaky
        parts.append(f"{passes(a)} → {passes(b)} passed")
        if any(
            0 < sum(g != "bad" for g in sample_grades(r)) < len(sample_grades(r)) for r in (a, b)
        ):
            parts.append(":orange-badge[flaky]")
    moved = changed_criteria(a.get("criteria", {}), b.get("criteria", {}))
    if moved:
        parts.append(md(moved))
    if must_pass:
        parts.append(":violet-badge[must pass]")
    if leak:
        parts.append(leak_badge(leak))
    parts.append(f"A: {snippet(a.get('output', ''), 45)}")
    parts.append(f"B: {snippet(b.get('output', ''), 45)}")
    return " · ".join(parts)


def leak_warning(leak: dict[str, Any] | None) -> None:
    if not leak:
        return
    how = "exactly" if leak["kind"] == "exact" else f"nearly (Jaccard {leak['jaccard']:.2f})"
    st.warning(
        f"This test prompt is in the training data {how}: its grades say how well the model "
        "remembers, not how well it generalises. The training prompt:"
    )
    text_block(leak["train"], empty="(empty)")


def choices(row: dict[str, Any] | None) -> tuple[list[str], list[str]] | None:
    """(choices, gold answers) of a multiple-choice item (an lm-eval task), from its result."""
    for criterion in ((row or {}).get("criteria") or {}).values():
        if isinstance(criterion, dict) and isinstance(criterion.get("choices"), list):
            return [str(c) for c in criterion["choices"]], [str(g) for g in criterion["gold"]]
    return None


def prompt_and_reference(
    view: suites.SuiteView, case_id: str, prompt: str, row: dict[str, Any] | None = None
) -> Any:
    """The prompt on the left, the reference answer on the right (a multiple-choice item's
    choices with the gold one marked); returns the right column, for what a page adds under it."""
    left, right = st.columns(2)
    with left:
        st.markdown("**Prompt**")
        prompt_block(prompt or "[]")
    with right:
        st.markdown("**Reference**")
        ref = suites.reference(view, case_id)
        options = choices(row)
        if options is not None:
            listed, gold = options
            st.markdown(
                "\n".join(
                    f"{i}. " + (f"**{md(c)}** ✓ gold" if c in gold else md(c))
                    for i, c in enumerate(listed, start=1)
                )
            )
        elif ref is None:
            st.caption(view.problem or "no reference answer for this case")
        else:
            text_block(ref, empty="(empty reference)")
    return right


def outputs(
    pair: Any, names: dict[str, str], labels: dict[tuple[str, str], dict[str, Any]],
    runs: dict[str, str],
) -> None:  # fmt: skip
    """A and B side by side, each with its automatic grade and human label."""
    sides = st.columns(2)
    for col, tag, row in ((sides[0], "A", pair.a), (sides[1], "B", pair.b)):
        with col:
            lab = labels.get((runs[tag], str(pair.case_id)))
            st.markdown(f"**{tag} · {md(names[tag])}** — {label_line(row['grade'], lab)}")
            samples = row.get("samples")
            if not samples:
                text_block(row.get("output", ""))
                continue
            st.caption(f"{passes(row)} samples passed; the grade is the majority")
            for s in samples:  # every sample with its own grade and what it failed
                failed = ", ".join(cid for cid, c in s["criteria"].items() if not c["passed"])
                st.markdown(
                    f"sample {s['j'] + 1} · {badge(s['grade'])}"
                    + (f" · {md(failed)}" if failed else "")
                )
                text_block(s["output"])


def passes(row: dict[str, Any]) -> str:
    """'3/5': how many of a case's samples passed."""
    grades = sample_grades(row)
    return f"{sum(g != 'bad' for g in grades)}/{len(grades)}"


def details(
    pair: Any,
    *,
    view: suites.SuiteView,
    suite: str,
    runs: dict[str, str],
    names: dict[str, str],
    labels: dict[tuple[str, str], dict[str, Any]],
    leak: dict[str, Any] | None,
    links: bool = True,
) -> None:
    """Everything about one compared case, as an opened row shows it."""
    case_id = str(pair.case_id)
    leak_warning(leak)
    prompt = pair.a.get("prompt") or pair.b.get("prompt") or ""
    prompt_and_reference(view, case_id, prompt, pair.a)
    outputs(pair, names, labels, runs)
    st.html(diff_html(pair.a.get("output", ""), pair.b.get("output", "")))
    st.html(criteria_html(pair.a.get("criteria", {}), pair.b.get("criteria", {})))
    if links:
        row = st.columns([1, 1, 3])
        row[0].page_link(
            CASES_PAGE,
            label="Case explorer",
            icon=":material/search:",
            query_params={"suite": suite, "case": case_id},
        )
        row[1].page_link(
            GRADING_PAGE,
            label="Grade this case",
            icon=":material/rate_review:",
            query_params={"suite": suite, "a": runs["A"], "b": runs["B"], "case": case_id},
        )
