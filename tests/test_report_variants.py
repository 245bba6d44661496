"""The report with three arms on one suite (base, base + few-shot, candidate): every run is
labelled with its prompt variant, and the Compare page pairs any two of the three."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compare_helpers import answers, fake_run
from tests.conftest import write_suite
from tests.test_prompts import VARIANTS
from tests.test_report_apptest import open_row, rows

APP = Path(__file__).resolve().parents[1] / "reports" / "app.py"


@pytest.fixture
def arms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from harness.store import Store

    suite = write_suite(tmp_path / "mini", VARIANTS)
    db = tmp_path / "tuneval.db"
    with Store(db) as store:
        runs = {
            "base": fake_run(store, suite, "base-model", answers({"a": "", "b": ""})),
            "few-shot": fake_run(store, suite, "base-model", answers({"a": ""}), prompt="few-shot"),
            "candidate": fake_run(store, suite, "mini-sft", answers()),
        }
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    return runs


def compare_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_compare_page_pairs_any_two_of_three_arms(arms: dict[str, str]) -> None:
    at = compare_page()
    a, b = at.selectbox(key="compare-a"), at.selectbox(key="compare-b")
    assert any(o.startswith("base-model + few-shot · ") for o in a.options), a.options
    assert a.value == arms["base"]  # the base prompt's run is the default baseline
    a.set_value(arms["few-shot"]).run()
    assert not at.exception, [e.value for e in at.exception]
    b = at.selectbox(key="compare-b")
    b.set_value(arms["candidate"]).run()
    assert not at.exception and not at.error
    assert rows(at) == ["a"]  # case a: bad with few-shot, better with the candidate
    at = open_row(at, "a")
    shown = " ".join(str(t.value) for t in at.markdown)
    assert r"A · base\-model \+ few\-shot" in shown  # Markdown-escaped


def test_runs_page_shows_the_prompt_beside_the_model(arms: dict[str, str]) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page("views/runs.py").run()
    runs = at.dataframe[0].value
    models = dict(zip(runs["run"], runs["model"], strict=True))
    assert models[arms["few-shot"]] == "base-model + few-shot"  # the variant beside the model
    assert models[arms["base"]] == "base-model" and models[arms["candidate"]] == "mini-sft"
