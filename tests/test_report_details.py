"""Small things a review of the report found, each through Streamlit's AppTest: one rounding for
tables and text, the Suite page's prompt variants, the "good" badge's colour, one card for
identical re-runs in the case explorer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compare_helpers import answers, fake_run, function_in
from tests.conftest import SUITE_YAML, write_suite
from tests.report_store import build
from tests.test_prompts import VARIANTS
from tests.test_report_apptest import open_page, texts


def test_a_pass_rate_reads_the_same_in_the_table_and_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """9 of 16 cases pass: 56.25%, a tie at one decimal that Python's format rounded to 56.2 in
    the verdict card while the table's column format showed 56.3."""
    from harness.store import Store

    cases = [{"id": f"c{i}", "function": f"fn{i}", "module": f"mod{i}"} for i in range(16)]
    suite = write_suite(tmp_path / "mini", SUITE_YAML, cases=cases)
    module = {f"fn{i}": f"mod{i}" for i in range(16)}

    def nine_of_sixteen(prompt: str) -> str:
        fn = function_in(prompt)
        return module[fn] if int(fn[2:]) < 9 else ""

    db = tmp_path / "tuneval.db"
    with Store(db) as store:
        fake_run(store, suite, "base-model", nine_of_sixteen)
        fake_run(store, suite, "other-model", lambda p: module[function_in(p)])
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    at = open_page("overview")
    (matrix,) = [d.value.set_index("model") for d in at.dataframe if "model" in d.value]
    assert matrix.loc["base-model", "mini"] == 56.3
    assert any("pass rate 56.3% → **100.0%**" in t for t in texts(at, "markdown"))


def test_suite_page_lists_the_prompt_variants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.store import Store

    suite = write_suite(tmp_path / "mini", VARIANTS)
    db = tmp_path / "tuneval.db"
    with Store(db) as store:
        fake_run(store, suite, "base-model", answers())
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    at = open_page("suite")
    assert "Prompt variants (2)" in texts(at, "subheader")
    (table,) = [d.value.set_index("variant") for d in at.dataframe if "variant" in d.value]
    assert table.loc["few-shot", "examples"] == "2 from train (seed 0)"
    assert table.loc["terse", "system"] == "One word."
    assert table.loc["terse", "user"] == "(the base prompt's)"


def test_good_is_a_neutral_badge_not_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rs = build(tmp_path)
    monkeypatch.setenv("TUNEVAL_DB", str(rs.db))
    at = open_page("compare")
    labels = [e.label for e in at.expander]
    assert any(":blue-badge[good]" in label for label in labels), labels
    assert not any("orange-badge[good]" in label for label in labels)


def test_case_explorer_shows_identical_reruns_as_one_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three runs of the base (the second and third all from the cache) and a candidate: two
    cards for case a, the base's saying it stands for three runs."""
    from harness.store import Store

    suite = write_suite(tmp_path / "mini")
    db = tmp_path / "tuneval.db"
    with Store(db) as store:
        base = [fake_run(store, suite, "base-model", answers({"a": ""})) for _ in range(3)]
        fake_run(store, suite, "mini-sft", answers())
    assert len(set(base)) == 3
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    at = open_page("cases", suite="mini", case="a")
    heads = [t for t in texts(at, "markdown") if t.startswith("**") and "`run-" in t]
    assert len(heads) == 2 and heads[1].startswith(r"**base\-model**"), heads
    assert f"`{base[-1]}`" in heads[1]  # the newest run's card
    (note,) = [t for t in texts(at, "caption") if t.startswith("×")]
    assert note.startswith("×3 runs") and f"`{base[0]}`" in note and f"`{base[1]}`" in note
    assert len(at.dataframe[0].value) == 4  # the table still lists every run
