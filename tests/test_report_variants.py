"""The report with three arms on one suite (base, base + few-shot, candidate): every run is
labelled with its prompt variant, and the Compare page pairs any two of the three."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.compare_helpers import answers, fake_run
from tests.conftest import CASES, write_suite
from tests.test_prompts import VARIANTS
from tests.test_report_apptest import open_page, open_row, rows

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


# --- a loop's store: base, base + few-shot, two candidates, the base re-run last --------------


@pytest.fixture
def loop_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What `tuneval loop --prompt-baseline few-shot` leaves, twice: the second loop re-creates
    the (cached) base run after the first candidate, then the few-shot run after it."""
    from harness.store import Store

    suite = write_suite(tmp_path / "mini", VARIANTS)
    db = tmp_path / "tuneval.db"
    with Store(db) as store:
        for name in ("mini-sft", "mini-sft-2"):
            store.register_model(
                {"name": name, "spec": name, "kind": "trained", "fingerprint": f"fp-{name}",
                 "path": None, "produced_by": f"train-{name}", "info": {}, "base": "base-model",
                 "created_at": 0.0}
            )  # fmt: skip
            store.insert_train_run(
                {"id": f"train-{name}", "suite": "mini", "trainer": "sft", "base": "base-model",
                 "config": {}, "output_dir": str(tmp_path), "model": name,
                 "status": "complete", "created_at": 0.0, "finished_at": 0.0}
            )  # fmt: skip
        runs = {
            "old-base": fake_run(store, suite, "base-model", answers({"a": "", "b": ""})),
            "cand-1": fake_run(store, suite, "mini-sft", answers({"c": ""})),
            "base": fake_run(store, suite, "base-model", answers({"a": "", "b": ""})),
            "few-shot": fake_run(store, suite, "base-model", answers({"a": ""}), prompt="few-shot"),
            "cand-2": fake_run(store, suite, "mini-sft-2", answers()),
        }
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    return runs


def test_pages_pick_arms_by_lineage(loop_store: dict[str, str]) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    matrix = at.dataframe[0].value
    rates = dict(zip(matrix["model"], matrix["mini"], strict=True))
    n = len(CASES)
    assert rates["base-model"] == round(100 * (n - 2) / n, 1)  # zero-shot, not few-shot
    assert rates["base-model + few-shot"] == round(100 * (n - 1) / n, 1)  # its own row
    verdict = " ".join(str(m.value) for m in at.markdown)
    assert r"**mini\-sft\-2** against base\-model" in verdict

    at.switch_page("views/compare.py").run()
    a, b = at.selectbox(key="compare-a"), at.selectbox(key="compare-b")
    assert (a.value, b.value) == (loop_store["base"], loop_store["cand-2"])
    at.button(key="compare-swap").click().run()
    assert at.selectbox(key="compare-a").value == loop_store["cand-2"]
    assert at.selectbox(key="compare-b").value == loop_store["base"]
    assert at.query_params["a"] == loop_store["cand-2"]

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.query_params["run"] = "train-mini-sft"
    at.switch_page("views/training.py").run()
    links = [link.proto for link in at.get("page_link") if link.proto.page == "compare"]
    assert links and f"a={loop_store['base']}" in links[0].query_string
    assert f"b={loop_store['cand-1']}" in links[0].query_string


def test_runs_to_compare_puts_the_base_in_a(loop_store: dict[str, str]) -> None:
    """Two picked runs go to Compare by lineage: the base first although it is newer."""
    from reports import arms, data

    db = os.environ["TUNEVAL_DB"]
    runs = {r["id"]: r for r in data.runs(db, data.stamp(db))}
    base, cand = runs[loop_store["base"]], runs[loop_store["cand-1"]]
    few = runs[loop_store["few-shot"]]
    assert base["created_at"] > cand["created_at"]
    assert arms.order(cand, base) == (base, cand) == arms.order(base, cand)
    assert arms.order(few, base) == (base, few)  # the base prompt before a variant
    assert arms.order(few, cand)[0] is few  # a non-candidate before a candidate


def test_search_is_scoped_to_the_case_and_takes_a_regex(arms: dict[str, str]) -> None:
    """A few-shot prompt holds training examples before every question: searching a word of
    theirs must not match every case."""
    import json

    from harness.store import Store

    with Store(Path(os.environ["TUNEVAL_DB"]), readonly=True) as store:
        prompt = json.loads(store.results(arms["few-shot"])[0]["prompt"])
    shots = [m["content"] for m in prompt[:-1] if m["role"] == "user"]
    shot_word = next(w for w in ("loads", "listdir", "floor") if any(w in s for s in shots))
    at = open_page(
        "compare", a=arms["few-shot"], b=arms["candidate"],
        change=["regressed", "improved", "unchanged"],
    )  # fmt: skip
    assert len(rows(at)) == len(CASES)
    at.text_input(key="compare-search").input(shot_word).run()
    assert rows(at) == []  # in every prompt, in no case of its own
    at.text_input(key="compare-search").input("dumps").run()
    assert rows(at) == ["b"]  # the case's own question (and its fields)
    at.text_input(key="compare-search").input(r"^(sqrt|choice)$").run()
    at.toggle(key="compare-regex").set_value(True).run()
    assert sorted(rows(at)) == ["d", "e"] and at.query_params["re"] == "1"
    at.text_input(key="compare-search").input("(unclosed").run()
    assert any("invalid regular expression" in str(w.value) for w in at.warning)
    assert len(rows(at)) == len(CASES)  # the other filters still apply
