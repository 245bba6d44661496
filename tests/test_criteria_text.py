"""The text criteria and the grade rule, on hand-made outputs."""

from __future__ import annotations

import pytest

from harness import criteria
from harness.criteria.text import repeated_share
from harness.grading.grader import grade, summarize


def run(type_: str, output: str, case: dict | None = None, **params) -> criteria.Result:
    scorer = criteria.get(type_)(**params)
    return scorer([output], [case or {}])[0]


def test_registry_lists_text_family() -> None:
    assert {"exact", "contains", "regex", "empty", "length", "repetition", "json", "choice"} <= set(
        criteria.registered()
    )
    with pytest.raises(KeyError, match="unknown criterion type 'nope'"):
        criteria.get("nope")


def test_exact_with_template() -> None:
    assert run("exact", " json \n", {"m": "json"}, value="{m}").passed
    r = run("exact", "The json module", {"m": "json"}, value="{m}")
    assert not r.passed and r.detail == "expected 'json', got 'The json module'"
    assert run("exact", "JSON", {"m": "json"}, value="{m}", case_sensitive=False).passed


def test_contains_any_all_and_case() -> None:
    assert run("contains", "Use textwrap.Dedent here", value="dedent").passed
    assert not run("contains", "Use textwrap.Dedent", value="dedent", case_sensitive=True).passed
    r = run("contains", "only a", value=["a", "b"], mode="all")
    assert not r.passed and r.detail == "missing 'b'"
    assert run("contains", "only a", value=["a", "b"], mode="any").passed


def test_regex_escapes_fields_and_flags() -> None:
    assert run("regex", "call os.path.join()", {"f": "os.path.join"}, pattern=r"{f}\(\)").passed
    assert not run("regex", "call osXpathXjoin()", {"f": "os.path.join"}, pattern=r"{f}\(\)").passed
    assert run("regex", "ABC", pattern="abc", flags=["ignorecase"]).passed
    assert not run("regex", "ABC", pattern="^a$", match="fullmatch").passed


def test_empty_detects_whitespace() -> None:
    assert not run("empty", "  \n ").passed
    assert run("empty", "x").passed


def test_length_absolute_and_relative() -> None:
    r = run("length", "one two three four", max_words=3)
    assert not r.passed and r.detail == "4 words > 3"
    assert run("length", "one two", min_words=2).passed
    r = run("length", "a b c d e f g h", {"ref": "a b"}, reference="{ref}", max_ratio=3)
    assert not r.passed and r.detail == "4.0x longer than the reference"
    assert run("length", "a b c", {"ref": "a b"}, reference="{ref}", max_ratio=3).passed
    assert not run("length", "x" * 50, unit="chars", max_chars=10).passed
    with pytest.raises(ValueError):
        criteria.get("length")(max_ratio=2)


def test_repetition_share() -> None:
    looped = "the cat sat " * 10
    r = run("repetition", looped, n=3, max_ratio=0.3)
    assert not r.passed and "repeated" in r.detail
    assert run("repetition", "a quick brown fox jumps over the lazy dog", n=3).passed


def test_repetition_counts_words_inside_dotted_names() -> None:
    """A real python-docs answer: whitespace splitting saw one word and 0% repeated."""
    looped = "The module is " + ".".join(["asyncio"] * 30)
    assert not run("repetition", looped, n=3, max_ratio=0.3).passed
    assert repeated_share(looped, 3) > 0.8  # the word count alone catches it, loops aside
    assert run("repetition", "Use os.path.join to join paths.", n=3).passed


def test_repetition_catches_character_loops() -> None:
    for looped in ("hahahahahahahahahahahahahaha", "Answer: " + "!" * 40, "=-" * 30):
        r = run("repetition", looped, n=3, max_ratio=0.3)
        assert not r.passed and "of characters loop" in r.detail, looped
    # ordinary digits and ellipses are not loops worth flagging
    assert run("repetition", "It returns 1000000 items... quickly.", n=3, max_ratio=0.3).passed


def test_repetition_leaves_numbers_and_short_runs_alone() -> None:
    for fine in ("It is 100000.", "x = [0, 0, 0, 0, 0]", "The mask is 0xffffffff.", "Title\n=====",
                 "Use 1.1.1.1 as the resolver.", "ha ha"):  # fmt: skip
        r = run("repetition", fine, n=3, max_ratio=0.3)
        assert r.passed and "loop" not in r.detail, (fine, r.detail)
    looped = "import asyncio.asyncio.asyncio.asyncio.asyncio"
    r = run("repetition", looped, n=3, max_ratio=0.3)
    assert not r.passed, r.detail


def test_json_keys_and_equality() -> None:
    assert run("json", 'Sure: {"a": 1, "b": "x"} done', required_keys=["a"]).passed
    assert run("json", '```json\n{"a": 1}\n```', equals={"a": 1}).passed
    r = run("json", '{"a": 2}', {"want": "2"}, equals={"a": "{want}"})
    assert not r.passed and "expected '2'" in r.detail
    r = run("json", "no json here")
    assert not r.passed and r.detail.startswith("not JSON")
    assert not run("json", '{"a": 1}', required_keys=["b"]).passed


def test_choice_by_label_or_text() -> None:
    case = {"gold": "B", "opts": ["France", "Spain", "Chile", "Peru"]}
    assert run("choice", "B", case, answer="{gold}", options="opts").passed
    assert run("choice", "The answer is (B).", case, answer="{gold}").passed
    assert run("choice", "It is in Spain", case, answer="{gold}", options="opts").passed
    r = run("choice", "C", case, answer="{gold}")
    assert not r.passed and r.detail == "picked C, expected B"
    assert run("choice", "B or C", case, answer="{gold}").detail.startswith("several options")
    assert run("choice", "no idea", case, answer="{gold}").detail == "no option picked"


def test_unknown_parameter_is_rejected() -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError):
        criteria.get("contains")(value="x", bogus=1)


@pytest.mark.parametrize(
    ("bad", "good", "better", "expected"),
    [
        ([True], [True], [True], "better"),
        ([True], [True], [False], "good"),
        ([False], [True], [True], "bad"),
        ([True], [False], [True], "bad"),
        ([], [], [], "better"),
    ],
)
def test_grade_rule(bad, good, better, expected) -> None:
    results = {}
    for section, values in (("bad", bad), ("good", good), ("better", better)):
        for i, v in enumerate(values):
            results[f"{section}{i}"] = {"section": section, "passed": v}
    assert grade(results) == expected


def test_summarize() -> None:
    rows = [
        {"grade": "bad", "criteria": {"x": {"section": "bad", "passed": False}}},
        {"grade": "good", "criteria": {"x": {"section": "bad", "passed": True}}},
        {"grade": "better", "criteria": {"x": {"section": "bad", "passed": True}}},
        {"grade": "better", "criteria": {"x": {"section": "bad", "passed": True}}},
    ]
    s = summarize(rows)
    assert s["grades"] == {"bad": 1, "good": 1, "better": 2}
    assert s["pass_rate"] == 0.75 and s["criteria"] == {"x": 0.75}
