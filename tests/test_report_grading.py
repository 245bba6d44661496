"""The grading queue as a reviewer uses it: a new pair starts at its first case to grade, both
sides' labels count at once, the grade buttons come before the outputs, blind mode hides names
and automatic grades until a case is graded, and a multiple-choice item shows its choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report_store import ReportStore
from tests.test_report_apptest import open_page, rstore, texts  # noqa: F401  (a fixture)


def progress(at) -> str:
    return " ".join(str(p.proto.text) for p in at.get("progress"))


def test_a_new_pair_restarts_and_both_sides_count(rstore: ReportStore) -> None:  # noqa: F811
    at = open_page("grading", case="f")  # an unchanged case, opened by a link
    assert at.query_params["case"] == "f"
    at.button(key="grade-A-good").click().run()
    assert "A: 1 labelled · B: 0 labelled" in progress(at)
    at.button(key="grade-B-good").click().run()
    assert "A: 1 labelled · B: 1 labelled" in progress(at)
    # both runs of the labelled pair are in the agreement at once, without a reload
    assert set(at.multiselect(key="grading-runs").value) == {rstore.base_run, rstore.candidate_run}
    assert {m.label: m.value for m in at.metric}["Labelled cases"] == "2"
    assert at.query_params["case"] == "d"  # graded: on to the first ungraded case
    at.button(key="grading-next").click().run()
    at.button(key="grading-next").click().run()
    assert at.query_params["case"] == "b"
    at.selectbox(key="grading-a").set_value(rstore.checkpoint_run).run()
    assert at.query_params["case"] == "d"  # the new pair's first regression, not case f


def test_buttons_come_before_the_outputs(rstore: ReportStore) -> None:  # noqa: F811
    at = open_page("grading")
    elements = list(_walk(at.main))
    first_button = next(i for i, e in enumerate(elements) if _is(e, "button", "grade-A-"))
    prompt = next(i for i, e in enumerate(elements) if _is(e, "markdown", "**Prompt**"))
    assert first_button < prompt  # above the prompt and both outputs: in view at 1440x900


def _walk(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _walk(child)


def _is(e, kind: str, text: str) -> bool:
    if kind == "button":
        return type(e).__name__ == "Button" and str(e.key or "").startswith(text)
    return type(e).__name__ == "Markdown" and str(e.value).startswith(text)


def test_blind_mode_hides_names_and_grades_until_graded(rstore: ReportStore) -> None:  # noqa: F811
    at = open_page("grading", blind="1")
    assert at.toggle(key="grading-blind").value
    shown = " ".join(texts(at, "markdown"))
    assert "base\\-model" not in shown and "mini\\-sft" not in shown
    assert "regressed" not in shown and "auto" not in shown
    assert not at.get("html") or all("criterion" not in str(h.proto) for h in at.get("html"))
    at.button(key="grade-A-good").click().run()
    at.button(key="grade-B-good").click().run()  # graded: the queue moves on, still blind
    at = open_page("grading", blind="1", case="d")
    shown = " ".join(texts(at, "markdown"))
    assert "base\\-model" in shown and "auto" in shown  # a graded case shows what it hid


def test_a_multiple_choice_item_shows_its_choices_and_gold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reports.caseview import choices

    row = {
        "criteria": {"correct": {"passed": False, "choices": ["Paris", "Rome"], "gold": ["Rome"]}}
    }
    assert choices(row) == (["Paris", "Rome"], ["Rome"])
    assert choices({"criteria": {"correct": {"passed": True}}}) is None
