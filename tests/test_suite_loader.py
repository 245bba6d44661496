"""The suite loader: valid suites load, every kind of bad input becomes located problems."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import UserError
from harness.suite.loader import load_suite
from tests.conftest import SUITE_YAML, write_suite


def problems(folder: Path) -> list[str]:
    with pytest.raises(UserError) as e:
        load_suite(folder)
    return e.value.lines()


def test_loads_cases_train_and_fingerprint(mini_suite: Path) -> None:
    s = load_suite(mini_suite)
    assert s.name == "mini" and len(s.cases) == 6 and len(s.train or []) == 4
    assert [c["id"] for c in s.cases] == list("abcdef")
    assert s.cases[5]["must_pass"] is True
    assert set(s.files) == {"suite.yaml", "test.jsonl", "train.jsonl"}
    assert len(s.fingerprint) == 64


def test_fingerprint_changes_with_data(mini_suite: Path) -> None:
    before = load_suite(mini_suite).fingerprint
    with open(mini_suite / "test.jsonl", "a") as f:
        f.write(json.dumps({"id": "z", "function": "x", "module": "y"}) + "\n")
    assert load_suite(mini_suite).fingerprint != before


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", SUITE_YAML.replace("data:\n", "data: [\n"))
    [msg] = problems(folder)
    assert "suite.yaml:line" in msg and "broken YAML" in msg


def test_unknown_criterion_type_names_yaml_path(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", SUITE_YAML.replace("type: empty", "type: emptyy"))
    [msg] = problems(folder)
    assert "rubric.bad[0].type" in msg and "unknown criterion type 'emptyy'" in msg
    assert "line 14" in msg


def test_bad_criterion_parameter(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", SUITE_YAML.replace("max_ratio: 0.5", "max_ratio: lots"))
    [msg] = problems(folder)
    assert "rubric.bad[1]" in msg and "max_ratio" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", SUITE_YAML + "rubrik: {}\n")
    [msg] = problems(folder)
    assert "rubrik" in msg


def test_missing_and_duplicate_ids_and_bad_json(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s")
    (folder / "test.jsonl").write_text(
        '{"id": "a", "function": "f", "module": "m"}\n'
        '{"function": "f", "module": "m"}\n'
        '{"id": "a", "function": "f", "module": "m"}\n'
        "{not json\n"
        "[1, 2]\n"
    )
    msgs = problems(folder)
    assert any("test.jsonl:line 2: missing field 'id'" in m for m in msgs)
    assert any("test.jsonl:line 3: duplicate id 'a' (first on line 1)" in m for m in msgs)
    assert any("test.jsonl:line 4: invalid JSON" in m for m in msgs)
    assert any("test.jsonl:line 5: each line must be a JSON object" in m for m in msgs)


def test_placeholder_no_case_has(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", SUITE_YAML.replace("{function}?", "{funktion}?"))
    msgs = problems(folder)
    assert any("prompt.user" in m and "{funktion}" in m and "test.jsonl line 1" in m for m in msgs)


def test_missing_data_file(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s")
    (folder / "train.jsonl").unlink()
    [msg] = problems(folder)
    assert "data.train" in msg and "'train.jsonl' not found" in msg


def test_not_a_suite_folder(tmp_path: Path) -> None:
    [msg] = problems(tmp_path)
    assert "no suite.yaml" in msg


def test_regex_quantifiers_are_not_placeholders(tmp_path: Path) -> None:
    text = SUITE_YAML.replace(
        "  better:\n", "  better:\n    - {id: short, type: regex, pattern: '^\\w{1,20}$'}\n"
    )
    assert load_suite(write_suite(tmp_path / "s", text)).spec.rubric.better[0].id == "short"


# --- property-based -------------------------------------------------------------------------

field_values = st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.none())
case_ids = st.one_of(
    st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=12),
    st.integers(min_value=0, max_value=10**9),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "id": case_ids,
                "function": st.text(max_size=20),
                "module": st.text(max_size=20),
                "x": field_values,
            }
        ),
        min_size=1,
        max_size=25,
    )
)
def test_any_well_formed_cases_round_trip(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict]
) -> None:
    folder = write_suite(tmp_path_factory.mktemp("p"), cases=rows)
    ids = [str(r["id"]) for r in rows]
    if len(set(ids)) == len(ids):
        s = load_suite(folder)
        assert [c["id"] for c in s.cases] == ids
        assert [c["function"] for c in s.cases] == [r["function"] for r in rows]
    else:
        assert all("duplicate id" in m for m in problems(folder))


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.text(max_size=200))
def test_arbitrary_test_file_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, garbage: str
) -> None:
    folder = write_suite(tmp_path_factory.mktemp("g"))
    (folder / "test.jsonl").write_text(garbage, encoding="utf-8")
    try:
        load_suite(folder)
    except UserError as e:
        assert e.problems and all(p.file for p in e.problems)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.text(max_size=300))
def test_arbitrary_suite_yaml_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, garbage: str
) -> None:
    folder = write_suite(tmp_path_factory.mktemp("y"), garbage)
    with pytest.raises(UserError):
        load_suite(folder)
