"""The Compare page's slices and probes (AppTest): the slice table equals `compare --by`, picking a
slice lists its cases, a probe shows its shares, filters to the cases where it differs, and a
backtracking probe is a message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.compare_helpers import fake_run
from tests.conftest import run_cli, write_suite
from tests.test_report_apptest import open_page, rows
from tests.test_slices import _answer, _cases


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, str]:
    from harness.store import Store

    db = tmp_path / "tuneval.db"
    suite = write_suite(tmp_path / "planted", cases=_cases())
    with Store(db) as store:
        a = fake_run(store, suite, "base", _answer({"down", "same"}))
        b = fake_run(store, suite, "cand", _answer({"up", "same"}))
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    return db, a, b


def test_slice_table_equals_the_cli_and_filters_the_cases(planted, capsys) -> None:
    db, a, b = planted
    code, out, _ = run_cli("compare", a, b, "--by", "area", "--json", capsys=capsys)
    cli = {s["value"]: s for s in json.loads(out)["slices"]}
    at = open_page("compare", a=a, b=b, by="area", change=["regressed", "improved", "unchanged"])
    assert at.selectbox(key="compare-by").value == "area"
    table = next(
        d.value for d in at.dataframe if "slice" in d.value.columns
    )  # after the cost table
    assert list(table["slice"]) == list(cli)
    for _, row in table.iterrows():
        s = cli[row["slice"]]
        assert row["n"] == s["n"] and row["verdict"] == s["verdict"]
        assert row["Δ points"] == pytest.approx(round(s["pass_rate"]["delta"] * 100, 1))
    assert len(rows(at)) == 25  # a page of all 60 cases
    # Pick the "down" row, as a click on it would.
    at.session_state["compare-slice-table-area"] = {
        "selection": {"rows": [list(cli).index("down")], "columns": [], "cells": []}
    }
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert sorted(rows(at)) == sorted(f"down{i}" for i in range(20))


def test_probe_shares_filter_and_yaml(planted) -> None:
    db, a, b = planted
    at = open_page(
        "compare", a=a, b=b, probe="^Sure", change=["regressed", "improved", "unchanged"]
    )
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "A 33.3%, B 33.3%" in shown  # one area of three answers "Sure…" on each side
    assert "20 cases match only in B, 20 only in A" in shown
    assert any("type: regex" in str(c.value) for c in at.code)
    at.radio(key="compare-probe-filter").set_value("differs").run()
    assert len(rows(at)) == 25 and all(not r.startswith("same") for r in rows(at))
    assert at.query_params.get("pf") == "differs"


def test_backtracking_and_malformed_probes_are_errors_on_the_page(tmp_path, monkeypatch) -> None:
    from harness.store import Store

    monkeypatch.setenv("TUNEVAL_REGEX_SECONDS", "0.05")
    monkeypatch.setenv("TUNEVAL_DB", str(tmp_path / "t.db"))
    suite = write_suite(tmp_path / "s")
    with Store(tmp_path / "t.db") as store:
        a = fake_run(store, suite, "x", lambda _: "x" * 5000)
        b = fake_run(store, suite, "y", lambda _: "b")
    at = open_page("compare", a=a, b=b, probe="(x+x+)+y")  # backtracks exponentially
    assert any("gave up after" in str(e.value) for e in at.error)
    at.text_input(key="compare-probe").set_value("(unclosed").run()
    assert any("invalid regular expression" in str(e.value) for e in at.error)


def test_declared_slices_are_offered_first(tmp_path, monkeypatch) -> None:
    from harness.store import Store
    from tests.conftest import SUITE_YAML

    monkeypatch.setenv("TUNEVAL_DB", str(tmp_path / "t.db"))
    yaml_text = SUITE_YAML.replace("version: 1\n", "version: 1\nslices: [origin, area]\n")
    suite = write_suite(tmp_path / "declared", yaml_text, cases=_cases())
    with Store(tmp_path / "t.db") as store:
        a = fake_run(store, suite, "base", _answer({"down", "same"}))
        b = fake_run(store, suite, "cand", _answer({"up", "same"}))
    at = open_page("compare", a=a, b=b, by="area")
    options = at.selectbox(key="compare-by").options
    assert options[:3] == ["(no slicing)", "origin", "area"]
