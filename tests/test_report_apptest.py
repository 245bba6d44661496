"""Every report page through Streamlit's AppTest, on a store with a base, a checkpoint and a
candidate run; human labels written from the Compare page and exported as training data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report_store import CANDIDATE, SCRIPT, ReportStore, build

APP = Path(__file__).resolve().parents[1] / "reports" / "app.py"
PAGES = ["runs", "compare", "cases", "training", "suite", "grading"]


@pytest.fixture
def rstore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReportStore:
    rs = build(tmp_path)
    monkeypatch.setenv("TUNEVAL_DB", str(rs.db))
    return rs


def open_page(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    if page != "runs":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(rstore: ReportStore, page: str) -> None:
    at = open_page(page)
    assert at.title, "each page has a title"
    assert not at.error, texts(at, "error")


def test_runs_page_lists_runs_and_lineage(rstore: ReportStore) -> None:
    at = open_page("runs")
    runs = at.dataframe[0].value
    assert set(runs["run"]) == {rstore.base_run, rstore.checkpoint_run, rstore.candidate_run}
    cand = runs[runs["run"] == rstore.candidate_run].iloc[0]
    assert cand["candidate"] and cand["step"] == 10 and cand["bad"] == pytest.approx(1 / 6)
    assert "base-model  →  mini-sft — sft (train-test-1)" in texts(at, "text")


def test_compare_defaults_headline_and_cards(rstore: ReportStore) -> None:
    at = open_page("compare")
    assert at.selectbox(key="compare-a").value == rstore.base_run
    assert at.selectbox(key="compare-b").value == rstore.candidate_run
    assert any(
        "Verdict" in t for t in texts(at, "info") + texts(at, "success") + texts(at, "error")
    )
    labels = [m.label for m in at.metric]
    assert "Pass rate" in labels and "Better rate" in labels
    assert len(at.get("vega_lite_chart")) == 2  # transitions heatmap, criteria deltas
    # default filter: regressed and improved cases, regressions first
    headers = [t for t in texts(at, "markdown") if t.startswith("#### case")]
    assert [h.split()[2] for h in headers] == ["d", "e", "b", "c"]


def test_filter_to_regressed_shows_both_outputs(rstore: ReportStore) -> None:
    at = open_page("compare")
    at.pills(key="compare-changes").set_value(["regressed"]).run()
    headers = [t for t in texts(at, "markdown") if t.startswith("#### case")]
    assert [h.split()[2] for h in headers] == ["d", "e"]
    codes = texts(at, "code")
    for out in ("math", CANDIDATE["sqrt"], "The random module has choice.", SCRIPT):
        assert out in codes
    # criterion filter and text search narrow further
    at.selectbox(key="compare-criterion").set_value("names-module").run()
    headers = [t for t in texts(at, "markdown") if t.startswith("#### case")]
    assert [h.split()[2] for h in headers] == ["e"]
    at.selectbox(key="compare-criterion").set_value(None)
    at.text_input(key="compare-search").input("library").run()
    headers = [t for t in texts(at, "markdown") if t.startswith("#### case")]
    assert [h.split()[2] for h in headers] == ["d"]


def test_model_output_is_never_markup(rstore: ReportStore) -> None:
    at = open_page("compare")
    assert SCRIPT in texts(at, "code")  # literal text in a code block
    htmls = texts(at, "html")
    assert htmls and not any("<script" in h or "<b>not sure" in h for h in htmls)
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in h for h in htmls)  # the diff
    assert not any("<script" in t for t in texts(at, "markdown"))


def test_case_explorer_shows_a_case_across_runs(rstore: ReportStore) -> None:
    at = open_page("cases")
    at.selectbox(key="cases-case").set_value("e").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == ["base-model", "mini-sft/checkpoint-5", "mini-sft"]
    assert list(table["grade"]) == ["good", "good", "bad"]
    assert SCRIPT in texts(at, "code") and "random" in texts(at, "code")  # output, reference


def test_training_page_curves_and_checkpoints(rstore: ReportStore) -> None:
    at = open_page("training")
    assert len(at.get("vega_lite_chart")) == 2  # loss, grade shares
    grades = at.dataframe[0].value
    assert list(grades["step"]) == [5, 10]
    assert list(grades["pass rate"]) == pytest.approx([5 / 6, 5 / 6])


def test_suite_page_shows_rubric_and_cases(rstore: ReportStore) -> None:
    at = open_page("suite")
    rubric = [df.value for df in at.dataframe]
    ids = [i for df in rubric[:3] for i in df["id"]]
    assert ids == ["empty", "repetitive", "names-module", "bare"]
    assert len(rubric[3]) == 6  # the cases
    assert "{module}" in texts(at, "code")  # the assistant template: the reference


def test_suite_page_survives_a_missing_folder(rstore: ReportStore) -> None:
    import shutil

    shutil.rmtree(rstore.suite)
    at = open_page("suite")
    assert any("no longer exists" in w for w in texts(at, "warning"))
    at = open_page("compare")
    assert any("no longer exists" in t for t in texts(at, "caption"))  # no reference


def test_human_label_from_compare_is_stored_shown_and_exported(rstore: ReportStore) -> None:
    from harness.store import Store
    from reports.labels import corrected_pairs

    at = open_page("compare")
    key = f"lab-B-{rstore.candidate_run}-e"
    at.toggle(key=f"review-{rstore.base_run}-{rstore.candidate_run}-e").set_value(True).run()
    at.radio(key=f"{key}-grade").set_value("bad")
    at.text_input(key=f"{key}-note").input("script tag instead of an answer")
    at.text_area(key=f"{key}-corrected").input("random")
    save = [b for b in at.button if b.label == "Save label" and b.form_id == f"{key}-form"]
    save[0].click().run()
    assert not at.exception
    with Store(rstore.db, readonly=True) as s:
        rows = [dict(r) for r in s.labels()]
    assert len(rows) == 1
    assert rows[0]["run_id"] == rstore.candidate_run and rows[0]["grade"] == "bad"
    assert rows[0]["corrected_output"] == "random"
    assert any("human :red-badge[bad] ✓" in t for t in texts(at, "markdown"))

    # agreement and export on the grading page
    at.switch_page("views/grading.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Labelled cases"] == "1" and metrics["Agreement"] == "100%"
    assert at.get("download_button")
    with Store(rstore.db, readonly=True) as s:
        (example,) = corrected_pairs(s)
    assert example["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Which module holds choice?"},
        {"role": "assistant", "content": "random"},
    ]


def test_agreement_and_export_rules(rstore: ReportStore) -> None:
    from harness.store import Store
    from reports.labels import agreement, corrected_pairs, save_label, to_jsonl

    assert agreement([]) == {"n": 0, "agree": 0, "share": None, "kappa": None}
    ag = agreement([("bad", "bad"), ("good", "good"), ("better", "good"), ("better", "better")])
    assert ag["share"] == 0.75
    # po = .75, pe = (.25*.25 + .25*.5 + .5*.25) = .3125 -> kappa = .4375 / .6875
    assert ag["kappa"] == pytest.approx(0.4375 / 0.6875)
    assert agreement([("good", "good"), ("good", "good")])["kappa"] is None

    db = str(rstore.db)
    save_label(db, rstore.base_run, "a", "better", note="fine")  # accepted as is
    save_label(db, rstore.base_run, "c", "bad")  # nothing to learn from
    save_label(db, rstore.base_run, "b", "good", corrected_output="json")  # corrected
    with pytest.raises(ValueError):
        save_label(db, rstore.base_run, "d", "excellent")
    with Store(rstore.db, readonly=True) as s:
        got = {e["id"]: e for e in corrected_pairs(s)}
        only_corrected = corrected_pairs(s, accept=None)
    assert set(got) == {"a", "b"}
    assert got["a"]["messages"][-1]["content"] == "textwrap"
    assert got["b"]["messages"][-1]["content"] == "json"
    assert got["b"]["source"]["kind"] == "corrected"
    assert [e["id"] for e in only_corrected] == ["b"]
    lines = to_jsonl(got.values()).splitlines()
    assert all(json.loads(line)["messages"][-1]["role"] == "assistant" for line in lines)


def test_pages_handle_an_empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.store import Store

    Store(tmp_path / "empty.db").close()
    monkeypatch.setenv("TUNEVAL_DB", str(tmp_path / "empty.db"))
    for page in PAGES:
        at = open_page(page)
        assert not at.error, texts(at, "error")


def test_diff_escapes_and_marks_changes() -> None:
    from reports.render import criteria_html, diff_html

    out = diff_html("use <b>os</b> module", "use <b>os</b> <script>x</script>")
    assert "<b>" not in out and "<script" not in out
    assert "&lt;b&gt;os&lt;/b&gt;" in out and "&lt;script&gt;x&lt;/script&gt;" in out
    assert '<del style="' in out and '<ins style="' in out
    table = criteria_html({"x": {"section": "good", "passed": False, "detail": "<img src=x>"}})
    assert "<img" not in table and "&lt;img src=x&gt;" in table


def test_default_pair_without_a_candidate_takes_the_two_newest() -> None:
    from reports.data import default_pair

    runs = [
        {
            "id": i,
            "suite": "s",
            "n_results": 3,
            "created_at": t,
            "is_candidate": False,
            "model": m,
            "model_base": None,
        }
        for i, t, m in (("r1", 1.0, "x"), ("r2", 2.0, "y"), ("r3", 3.0, "z"))
    ]
    assert default_pair(runs, "s") == ("r2", "r3")
    assert default_pair(runs, "other") == (None, None)


def test_report_command_fails_cleanly_without_a_store(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from harness.cli import main; main()",
            "report",
            "--db",
            str(tmp_path / "missing.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no store at" in proc.stderr


def test_help_does_not_import_streamlit() -> None:
    code = (
        "import sys\nfrom harness.cli import app, main\n"
        "sys.argv = ['tuneval', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'streamlit' not in sys.modules, 'streamlit imported by --help'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "report" in proc.stdout


def test_report_command_line() -> None:
    from harness.cli.report import app_file, streamlit_command

    cmd = streamlit_command(app_file(), Path("/x/t.db"), 9000)
    assert app_file() == APP
    joined = " ".join(cmd)
    assert "--server.address 127.0.0.1" in joined and "--server.port 9000" in joined
    assert "--server.headless true" in joined and "--browser.gatherUsageStats false" in joined
    assert cmd[-2:] == ["--db", "/x/t.db"]


def test_agreement_kappa_is_the_stats_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """One Cohen's kappa in the code base: the report's agreement calls harness.stats."""
    from harness import stats
    from reports.labels import agreement

    monkeypatch.setattr(stats, "cohen_kappa", lambda pairs: 0.123)
    assert agreement([("bad", "bad"), ("good", "bad")])["kappa"] == 0.123
