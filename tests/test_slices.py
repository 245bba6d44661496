"""compare --by and --probe: slices of a planted store (one slice regressed, one improved, one
unchanged) checked against hand computation, Holm's adjustment, and probes against pandas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from harness.comparison.slices import holm, values_of
from tests.compare_helpers import fake_run
from tests.conftest import run_cli, write_suite

AREAS = {"up": 20, "down": 20, "same": 20}


def _cases() -> list[dict]:
    cases = []
    for area, count in AREAS.items():
        for i in range(count):
            case = {"id": f"{area}{i}", "function": f"fn_{area}{i}", "module": f"mod{area}{i}"}
            case["area"] = area
            case["tags"] = ["rare"] if i < 3 else ["common", area]
            case["metadata"] = {"origin": "seed" if i % 2 else "web"}
            cases.append(case)
    return cases


def _answer(good: set[str]):
    """Right for the areas in `good`, a wrong module otherwise; outputs that probes can tell."""

    def answer(prompt: str) -> str:
        fn = prompt.removeprefix("Which module holds ").removesuffix("?")
        area = re.sub(r"^fn_|\d+$", "", fn)
        if area in good:
            return f"mod{fn.removeprefix('fn_')}"
        return f"Sure! it is in nowhere{fn[-1]}"

    return answer


@pytest.fixture
def planted(tmp_path: Path, store) -> tuple[Path, str, str]:
    suite = write_suite(tmp_path / "planted", cases=_cases())
    a = fake_run(store, suite, "base", _answer({"down", "same"}))
    b = fake_run(store, suite, "cand", _answer({"up", "same"}))
    return store.path, a, b


def _compare(db: Path, a: str, b: str, *args: str, capsys) -> tuple[int, str, str]:
    return run_cli("compare", a, b, "--db", str(db), *args, capsys=capsys)


def test_slices_by_field_match_hand_computation(planted, capsys):
    from harness.comparison import stats

    db, a, b = planted
    code, out, err = _compare(db, a, b, "--by", "area", "--json", capsys=capsys)
    assert code == 0, err
    rows = {s["value"]: s for s in json.loads(out)["slices"]}
    assert set(rows) == {"up", "down", "same"}
    assert (rows["up"]["b01"], rows["up"]["b10"]) == (20, 0)
    assert (rows["down"]["b01"], rows["down"]["b10"]) == (0, 20)
    assert (rows["same"]["b01"], rows["same"]["b10"]) == (0, 0)
    p = 2 * 0.5**20  # exact McNemar with 20 discordant pairs all one way
    assert rows["up"]["p_value"] == pytest.approx(p)
    assert rows["up"]["p_value"] == pytest.approx(float(stats.mcnemar(20, 0)))
    # Holm over three tests: the two smallest p-values times 3 and times 2 (then the running
    # maximum), the largest (1.0) times 1.
    assert rows["up"]["p_adjusted"] == pytest.approx(3 * p)
    assert rows["down"]["p_adjusted"] == pytest.approx(3 * p)
    assert rows["same"]["p_adjusted"] == 1.0
    assert rows["up"]["verdict"] == "improved"
    assert rows["down"]["verdict"] == "regressed"
    assert rows["same"]["verdict"] == "no significant change"
    assert rows["up"]["pass_rate"]["a"] == 0.0 and rows["up"]["pass_rate"]["b"] == 1.0
    assert rows["down"]["pass_rate"]["delta"] == -1.0
    assert sorted(rows["up"]["case_ids"]) == sorted(f"up{i}" for i in range(20))


def test_tags_metadata_and_too_few_cases(planted, capsys):
    db, a, b = planted
    code, out, err = _compare(db, a, b, "--by", "tags", "--by", "origin", "--json", capsys=capsys)
    assert code == 0, err
    rows = {(s["field"], s["value"]): s for s in json.loads(out)["slices"]}
    assert rows[("tags", "rare")]["n"] == 9  # three per area, below the 10-case floor
    assert rows[("tags", "rare")]["verdict"] == "too few cases"
    assert rows[("tags", "rare")]["p_value"] is None
    assert rows[("tags", "common")]["n"] == 51
    assert rows[("tags", "up")]["n"] == 17  # a case with two tags is in both slices
    assert rows[("origin", "seed")]["n"] + rows[("origin", "web")]["n"] == 60
    tested = [s for s in rows.values() if s["p_value"] is not None]
    assert [s["p_adjusted"] for s in tested] == pytest.approx(holm([s["p_value"] for s in tested]))


def test_holm_against_hand_computation():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_lm_eval_items_slice_by_task():
    assert values_of("arith/3", None, "task") == ["arith"]
    assert values_of("a", {"id": "a"}, "task") == ["(cases)"]
    assert values_of("x", {"id": "x", "source": {"file": "t.jsonl", "line": 3}}, "source") == [
        "t.jsonl"
    ]
    assert values_of("x", {"id": "x"}, "kind") == ["(none)"]


def test_terminal_and_markdown_tables(planted, tmp_path, capsys):
    db, a, b = planted
    md = tmp_path / "summary.md"
    code, out, err = _compare(
        db, a, b, "--by", "area", "--markdown", str(md), "--probe", "^Sure", capsys=capsys
    )
    assert code == 0, err
    assert "per slice" in out and "area=up" in out and "regressed" in out
    assert "probe ^Sure (regex)" in out
    text = md.read_text()
    assert "### Per slice" in text and "| area=down | 20 |" in text
    assert "### Probes" in text


def test_probe_shares_against_pandas(planted, capsys):
    db, a, b = planted
    code, out, err = _compare(
        db, a, b, "--probe", "^Sure", "--probe", "words > 2", "--json", capsys=capsys
    )
    assert code == 0, err
    doc = json.loads(out)
    frame = pd.DataFrame(
        {"a": [p["output_a"] for p in doc["pairs"]], "b": [p["output_b"] for p in doc["pairs"]]}
    )
    regex, length = doc["probes"]
    hit_a, hit_b = frame["a"].str.contains("^Sure"), frame["b"].str.contains("^Sure")
    assert regex["share"]["a"] == pytest.approx(hit_a.mean())
    assert regex["share"]["b"] == pytest.approx(hit_b.mean())
    assert regex["share"]["delta"] == pytest.approx(hit_b.mean() - hit_a.mean())
    assert regex["share"]["low"] <= regex["share"]["delta"] <= regex["share"]["high"]
    ids = pd.Series([p["case_id"] for p in doc["pairs"]])
    assert sorted(regex["only_b"]) == sorted(ids[hit_b & ~hit_a])
    assert sorted(regex["only_a"]) == sorted(ids[hit_a & ~hit_b])
    words_a = frame["a"].str.split().str.len() > 2
    assert length["kind"] == "length"
    assert length["share"]["a"] == pytest.approx(words_a.mean())


@pytest.mark.timeout(120)
def test_backtracking_probe_is_a_message_not_a_hang(tmp_path, store, capsys, monkeypatch):
    monkeypatch.setenv("TUNEVAL_REGEX_SECONDS", "0.05")
    suite = write_suite(tmp_path / "s")
    a = fake_run(store, suite, "x", lambda _: "x" * 5000)
    b = fake_run(store, suite, "y", lambda _: "b")
    # backtracks exponentially in `re` and in `regex` alike
    code, out, err = _compare(store.path, a, b, "--probe", r"(x+x+)+y", capsys=capsys)
    assert code == 2
    assert "gave up after" in err and "Traceback" not in err


def test_bad_input_is_one_line_exit_2(planted, capsys):
    db, a, b = planted
    code, _, err = _compare(db, a, b, "--probe", "(unclosed", capsys=capsys)
    assert code == 2 and "invalid regular expression" in err
    code, _, err = _compare(db, a, b, "--by", "colour", capsys=capsys)
    assert code == 2 and "no case has a field 'colour'" in err


def test_changed_suite_is_refused_unless_forced(planted, capsys):
    db, a, b = planted
    from harness.store import Store

    with Store(db) as s:
        folder = Path(s.run(a)["suite_path"])
    (folder / "test.jsonl").write_text((folder / "test.jsonl").read_text().replace("web", "w3b"))
    code, _, err = _compare(db, a, b, "--by", "origin", capsys=capsys)
    assert code == 2 and "has changed since run" in err
    code, out, err = _compare(db, a, b, "--by", "origin", "--force", "--json", capsys=capsys)
    assert code == 0, err
    assert {s["value"] for s in json.loads(out)["slices"]} == {"seed", "w3b"}


def test_probe_becomes_a_criterion(planted, tmp_path):
    import yaml

    from harness.comparison.compare import compare_runs
    from harness.comparison.slices import as_criterion_yaml, probe
    from harness.store import Store

    db, a, b = planted
    with Store(db) as s:
        c = compare_runs(s, a, b)
    snippet = as_criterion_yaml(probe(c, r"^Sure\b.{0,3}"))
    parsed = yaml.safe_load(snippet.split("# or")[0])
    assert parsed["good"][0] == {"id": "probe", "type": "regex", "pattern": r"^Sure\b.{{0,3}}"}
    assert yaml.safe_load(as_criterion_yaml(probe(c, "words > 60"))) == {
        "bad": [{"id": "probe", "type": "length", "max_words": 60}]
    }
