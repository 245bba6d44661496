"""Every report page through Streamlit's AppTest, on a store with a base, a checkpoint and a
candidate run. The flows across pages (URL state, the grading queue, leakage flags) are in
test_report_flows.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report_store import BASE, CANDIDATE, JAVASCRIPT, ONERROR, SCRIPT, ReportStore, build

APP = Path(__file__).resolve().parents[1] / "reports" / "app.py"
PAGES = ["overview", "runs", "compare", "cases", "training", "suite", "grading", "leaderboard"]


@pytest.fixture
def rstore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReportStore:
    rs = build(tmp_path)
    monkeypatch.setenv("TUNEVAL_DB", str(rs.db))
    return rs


def open_page(page: str, /, **query: str | list[str]):
    """The app on `page`, the URL's query string holding `query`."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    at.query_params.update(query)
    if page != "overview" or query:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def rows(at) -> list[str]:
    """Case ids of the compact rows on Compare, top to bottom."""
    return [e.label.split("**")[1] for e in at.expander if e.label.startswith("**")]


def open_row(at, case_id: str):
    """Open a compact row as a click would (AppTest cannot click an expander)."""
    at.session_state[f"row-{case_id}"] = True
    return at.run()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(rstore: ReportStore, page: str) -> None:
    at = open_page(page)
    assert at.title, "each page has a title"
    assert not at.error, texts(at, "error")


def test_runs_page_lists_runs_and_lineage(rstore: ReportStore) -> None:
    at = open_page("runs")
    runs = at.dataframe[0].value
    assert list(runs.columns[:3]) == ["suite", "model", "pass rate"]  # run ids come last
    assert set(runs["run"]) == {rstore.base_run, rstore.checkpoint_run, rstore.candidate_run}
    cand = runs[runs["run"] == rstore.candidate_run].iloc[0]
    assert cand["candidate"] and cand["step"] == "10" and cand["bad"] == 16.7  # 1/6, as shown
    assert list(runs[runs["run"] == rstore.base_run]["step"]) == ["—"]  # no "None" cells
    assert "base-model  →  mini-sft — sft (train-test-1)" in texts(at, "text")
    models = at.dataframe[1].value
    assert "settings" not in models.columns


def test_compare_defaults_headline_and_rows(rstore: ReportStore) -> None:
    at = open_page("compare")
    assert at.selectbox(key="compare-a").value == rstore.base_run
    assert at.selectbox(key="compare-b").value == rstore.candidate_run
    assert any(
        "Verdict" in t for t in texts(at, "info") + texts(at, "success") + texts(at, "error")
    )
    labels = [m.label for m in at.metric]
    assert "Pass rate" in labels and "Better rate" in labels
    assert len(at.get("vega_lite_chart")) == 2  # transitions grid, criteria deltas
    # default filter: regressed and improved cases, regressions first, one compact row each
    assert rows(at) == ["d", "e", "b", "c"]
    d = at.expander[0].label
    assert ":red-badge[▼ regressed]" in d and "✗ bare" in d and "A: math" in d
    assert not at.code  # closed rows render nothing but their line


def test_filter_to_regressed_shows_both_outputs(rstore: ReportStore) -> None:
    at = open_page("compare")
    at.pills(key="compare-changes").set_value(["regressed"]).run()
    assert rows(at) == ["d", "e"]
    open_row(at, "d")
    open_row(at, "e")
    codes = texts(at, "code")
    for out in ("math", CANDIDATE["sqrt"], BASE["choice"], SCRIPT):
        assert out in codes
    # criterion filter and text search narrow further
    at.selectbox(key="compare-criterion").set_value("names-module").run()
    assert rows(at) == ["e"]
    at.selectbox(key="compare-criterion").set_value("")
    at.text_input(key="compare-search").input("library").run()
    assert rows(at) == ["d"]


@pytest.mark.parametrize(
    ("case", "payload", "escaped"),
    [
        ("e", SCRIPT, "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("c", ONERROR, "&lt;img src=x onerror=alert(1)&gt;"),
        ("e", JAVASCRIPT, "[the docs](javascript:"),  # the diff splits it at "alert(1)"
    ],
    ids=["script", "onerror", "javascript-link"],
)
def test_model_output_is_never_markup(
    rstore: ReportStore, case: str, payload: str, escaped: str
) -> None:
    at = open_page("compare", case=case)
    assert any(payload in c for c in texts(at, "code"))  # literal text in a code block
    # the page's own script, which scrolls a linked case into view, is the one script allowed
    own = re.compile(
        r"<script>\s*\(\(\) => \{\s*const started = Date\.now\(\);.*?</script>\s*$", re.S
    )
    htmls = [own.sub("", h) for h in texts(at, "html")]
    assert htmls and not any(re.search(r"<(script|img|a)\b", h) for h in htmls)
    assert any(escaped in h for h in htmls)  # the word diff shows it as text
    assert not any(re.search(r"<(script|img)|\]\(javascript", t) for t in texts(at, "markdown"))
    # row labels are markdown: every "<", "[" and "(" of an output is escaped there
    labels = [e.label for e in at.expander]
    assert not any(re.search(r"(?<!\\)<|(?<!\\)\]\(", label) for label in labels), labels
    assert any("\\<script\\>" in label for label in labels)
    assert any("\\[the docs\\]\\(jav" in label for label in labels)


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
    assert len(at.get("vega_lite_chart")) == 3  # loss, grade shares, the checkpoint curve
    grades = at.dataframe[0].value
    assert list(grades["step"]) == [5, 10]
    assert list(grades["pass rate"]) == [83.3, 83.3]  # 5/6, as shown
    metrics = {m.label: m.value for m in at.metric}
    # the last log line is a validation loss: lr and tokens/s come from the last line with them
    assert metrics == {"Learning rate (last)": "2.00e-04", "Tokens/s (last)": "900",
                       "Steps trained": "10"}  # fmt: skip
    assert any("validation loss at 1 step" in t for t in texts(at, "caption"))
    checkpoints = at.dataframe[1].value
    assert list(checkpoints["on disk"]) == ["deleted", "deleted"]
    links = at.get("page_link")
    assert any(link.proto.page == "compare" for link in links)


def test_suite_page_shows_rubric_and_cases(rstore: ReportStore) -> None:
    at = open_page("suite")
    rubric = [t.value for t in at.table]
    ids = [i for frame in rubric for i in frame.index]
    assert ids == ["empty", "repetitive", "names-module", "bare"]
    assert rubric[0].loc["repetitive", "parameters"] == "max_ratio: 0.5"
    assert len(at.dataframe[0].value) == 6  # the cases
    assert "{module}" in texts(at, "code")  # the assistant template: the reference


def test_suite_page_survives_a_missing_folder(rstore: ReportStore) -> None:
    import shutil

    shutil.rmtree(rstore.suite)
    at = open_page("suite")
    assert any("no longer exists" in w for w in texts(at, "warning"))
    at = open_page("compare", case="e")
    assert any("no longer exists" in t for t in texts(at, "caption"))  # no reference, no leaks


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
    # a replaced word and its replacement never run together
    words = diff_html("sqrt is in the math module", "sqrt is defines the math module")
    assert ">in</del> <ins" in words and ">defines</ins>" in words
    assert ">.</del> <ins" in diff_html("Python.", "Python the")
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
    (tmp_path / "notes.db").write_text("not a database\n")
    proc = subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", "report", "--db",
         str(tmp_path / "notes.db")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "is not a tuneval store" in proc.stderr
    assert "Traceback" not in proc.stderr


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
    assert "--client.toolbarMode minimal" in joined  # no Deploy button
    assert cmd[-2:] == ["--db", "/x/t.db"]


def test_agreement_kappa_is_the_stats_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """One Cohen's kappa in the code base: the report's agreement calls harness.comparison.stats."""
    from harness.comparison import stats
    from reports.labels import agreement

    monkeypatch.setattr(stats, "cohen_kappa", lambda pairs: 0.123)
    assert agreement([("bad", "bad"), ("good", "bad")])["kappa"] == 0.123
