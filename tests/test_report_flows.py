"""The report's flows through AppTest: the URL holds every selection and gives it back, the
transition grid filters cases, leaked test prompts are flagged on cases and in the verdict, the
grading queue grades case after case, the first screen, and a bad store in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.comparison import with_cell_change
from tests.report_store import BASE, ReportStore, build
from tests.test_report_apptest import PAGES, open_page, open_row, rows, texts


@pytest.fixture
def rstore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReportStore:
    rs = build(tmp_path)
    monkeypatch.setenv("TUNEVAL_DB", str(rs.db))
    return rs


def test_compare_state_round_trips_through_the_url(rstore: ReportStore) -> None:
    at = open_page("compare")
    assert at.query_params == {
        "suite": "mini", "a": rstore.base_run, "b": rstore.candidate_run,
    }  # fmt: skip
    at.pills(key="compare-changes").set_value(["regressed"]).run()
    at.selectbox(key="compare-criterion").set_value("names-module").run()
    open_row(at, "e")
    at.session_state["compare-open"] = "e"  # what the row's callback records on a click
    at.text_input(key="compare-search").input("random").run()
    link = dict(at.query_params)
    assert link["change"] == "regressed" and link["criterion"] == "names-module"
    assert link["q"] == "random" and link["case"] == "e"

    # the link, opened in a new session, shows the same view: filters, rows, the open case
    again = open_page("compare", **link)
    assert again.pills(key="compare-changes").value == ["regressed"]
    assert again.selectbox(key="compare-criterion").value == "names-module"
    assert again.text_input(key="compare-search").value == "random"
    assert rows(again) == ["e"]
    assert BASE["choice"] in texts(again, "code")  # the row opened itself
    assert dict(again.query_params) == link


def test_a_link_picks_the_runs_and_ignores_what_no_longer_exists(rstore: ReportStore) -> None:
    at = open_page("compare", a=rstore.checkpoint_run, b="run-deleted-long-ago", cell="x→y")
    assert at.selectbox(key="compare-a").value == rstore.checkpoint_run
    assert at.selectbox(key="compare-b").value == rstore.candidate_run  # the default
    assert at.selectbox(key="compare-cell").value == ""
    assert not at.error, texts(at, "error")


def test_transition_cell_filters_the_cases(rstore: ReportStore) -> None:
    at = open_page("compare")
    at.selectbox(key="compare-cell").set_value("bad→better").run()
    assert rows(at) == ["c"]
    # from a link: the cell and the change filter combine
    at = open_page("compare", cell="better→better", change="regressed")
    assert rows(at) == []
    at = open_page("compare", cell="better→better", change="")
    assert rows(at) == ["a", "f"]
    assert at.query_params["cell"] == "better→better"
    spec = next(c.proto.spec for c in at.get("vega_lite_chart") if "grade in B" in c.proto.spec)
    assert '"cell"' in spec and '"#b2182b"' in spec  # clickable, diverging red to green


def grid(at) -> dict:
    return next(
        json.loads(c.proto.spec) for c in at.get("vega_lite_chart") if "grade in B" in c.proto.spec
    )


def test_grid_highlight_follows_the_cell_filter(rstore: ReportStore) -> None:
    at = open_page("compare", cell="bad→better")
    assert grid(at)["params"][0]["value"] == [{"A": "bad", "B": "better"}]
    # the filter reset to "any": the grid is drawn anew, its last click no longer highlighted
    at.selectbox(key="compare-cell").set_value("").run()
    assert "value" not in grid(at)["params"][0]
    assert "chart-transitions-any" in at.session_state  # a new grid, not the clicked one


def test_a_grid_click_keeps_the_change_pills() -> None:
    assert with_cell_change(["regressed"], "bad→better") == ["regressed", "improved"]
    assert with_cell_change(["improved"], "bad→better") == ["improved"]
    assert with_cell_change([], "good→good") == []  # no pills: any change
    assert with_cell_change(["regressed"], "") == ["regressed"]


def test_a_link_to_an_open_case_scrolls_to_it_once(rstore: ReportStore) -> None:
    at = open_page("compare", change="regressed", case="e")
    scripts = [h.proto.body for h in at.get("html")]
    assert any("st-key-row-e" in b and "scrollIntoView" in b for b in scripts), scripts
    at.text_input(key="compare-search").input("random").run()  # later reruns leave the scroll be
    assert not any("scrollIntoView" in h.proto.body for h in at.get("html"))


def test_leaked_prompts_are_flagged_on_cases_and_in_the_verdict(rstore: ReportStore) -> None:
    at = open_page("compare")
    verdict = next(t for t in texts(at, "info") if t.startswith("Verdict"))
    assert "2 of 6 paired cases have prompts in the training data" in verdict
    assert "(1 exactly, 1 nearly); 2 of 2 regressed and 0 of 2 improved" in verdict
    assert "Without them (4 cases)" in verdict
    labels = {e.label.split("**")[1]: e.label for e in at.expander}
    assert ":red-badge[in train]" in labels["e"] and ":orange-badge[≈ train 0.95]" in labels["d"]
    assert "train" not in labels["b"]
    at.selectbox(key="compare-leak").set_value("clean").run()
    assert rows(at) == ["b", "c"]
    at = open_page("compare", case="d")
    assert any("in the training data nearly (Jaccard 0.95)" in w for w in texts(at, "warning"))
    assert "Which module holds sqrts?" in texts(at, "code")
    at = open_page("cases", case="e")
    assert any("in the training data exactly" in w for w in texts(at, "warning"))


def test_grading_queue_grades_case_after_case(rstore: ReportStore) -> None:
    from harness.store import Store
    from reports.labels import corrected_pairs

    at = open_page("grading")
    assert at.query_params["case"] == "d"  # regressions first
    assert any("0 of 6 cases graded" in str(p.proto.text) for p in at.get("progress"))
    at.button(key="grade-A-better").click().run()
    assert at.query_params["case"] == "d"  # one side graded: stay
    at.button(key="grade-B-good").click().run()
    assert at.query_params["case"] == "e"  # both graded: on to the next ungraded case
    at.button(key="grade-A-good").click().run()
    at.button(key="grade-B-bad").click().run()
    assert at.query_params["case"] == "b"
    with Store(rstore.db, readonly=True) as s:
        got = {(r["run_id"], r["case_id"]): r["grade"] for r in s.labels()}
    assert got == {
        (rstore.base_run, "d"): "better", (rstore.candidate_run, "d"): "good",
        (rstore.base_run, "e"): "good", (rstore.candidate_run, "e"): "bad",
    }  # fmt: skip
    assert any("2 of 6 cases graded" in str(p.proto.text) for p in at.get("progress"))
    # back, and straight to the next case without a grade
    at.button(key="grading-prev").click().run()
    assert at.query_params["case"] == "e"
    at.button(key="grading-next-ungraded").click().run()
    assert at.query_params["case"] == "b"
    # the graded button is the filled one; keys are on the buttons
    at = open_page("grading", case="e")
    assert at.button(key="grade-B-bad").proto.type == "primary"
    assert at.button(key="grade-B-good").proto.shortcut.lower() == "8"

    # a note and a corrected output, then agreement and the export with its warning
    key = f"lab-B-{rstore.candidate_run}-e"
    at.text_input(key=f"{key}-note").input("script tag instead of an answer")
    at.text_area(key=f"{key}-corrected").input("random")
    at.radio(key=f"{key}-grade").set_value("bad")
    next(b for b in at.button if b.label == "Save label" and b.form_id == f"{key}-form").click()
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Labelled cases"] == "4" and metrics["Agreement"] == "100.0%"
    assert any("test cases of mini" in w for w in texts(at, "warning"))
    assert any("chat-format example" in c for c in texts(at, "caption"))
    with Store(rstore.db, readonly=True) as s:
        examples = {e["id"]: e for e in corrected_pairs(s)}
    assert examples["e"]["messages"][-1] == {"role": "assistant", "content": "random"}


def test_overview_answers_is_the_candidate_better(rstore: ReportStore) -> None:
    at = open_page("overview")
    lines = texts(at, "markdown")
    assert any("insufficient evidence" in t and "83.3% → **83.3%**" in t for t in lines)
    assert any("2 with prompts in the training data" in t for t in lines)
    matrix = at.dataframe[0].value
    assert list(matrix["model"]) == ["base-model", "mini-sft"]  # no checkpoint rows
    assert list(matrix["mini"]) == [83.3, 83.3]  # 5/6, as shown
    pages = {link.proto.page for link in at.get("page_link")}
    assert {"compare", "training"} <= pages


def test_a_file_that_is_not_a_store_is_one_line_on_every_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "typo.db"
    bad.write_text("not a database, just text\n" * 10)
    monkeypatch.setenv("TUNEVAL_DB", str(bad))
    for page in PAGES:
        at = open_page(page)
        assert [e.value for e in at.error] and "is not a tuneval store" in at.error[0].value
        assert not at.exception


def test_pages_of_rows_above_and_below_follow_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.store import Store
    from tests.compare_helpers import fake_run
    from tests.conftest import write_suite

    cases = [{"id": f"c{i:02d}", "function": f"fn{i}", "module": "mod"} for i in range(60)]
    suite = write_suite(tmp_path / "many", cases=cases)
    with Store(tmp_path / "many.db") as store:
        fake_run(store, suite, "base", lambda p: "no idea")
        fake_run(store, suite, "cand", lambda p: "mod")
    monkeypatch.setenv("TUNEVAL_DB", str(tmp_path / "many.db"))
    at = open_page("compare")
    assert len(rows(at)) == 25 and rows(at)[0] == "c00"
    top, bottom = at.get("pagination")
    bottom.select(3).run()  # the bottom pager turns the page, and the top one follows
    assert rows(at) == [f"c{i}" for i in range(50, 60)]
    assert [p.value for p in at.get("pagination")] == [3, 3]
    assert at.query_params["page"] == "3"
    at.text_input(key="compare-search").input("fn1").run()  # a new filter starts at page 1
    assert "page" not in at.query_params and rows(at)[0] == "c01"
    again = open_page("compare", page="2")
    assert rows(again)[0] == "c25"
