"""The pieces behind imported checks: JavaScript regexes and numbers, promptfoo's comma lists and
object scan, weighted groups, and per-case checks validated when the suite loads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import write_suite


@pytest.mark.parametrize(
    ("js", "text", "matches"),
    [
        (r"^\d+$", "42", True),
        (r"^\d+$", "٤٢", False),  # JavaScript's \d is ASCII
        (r"^ok$", "ok\n", False),  # $ is the very end, not also before a final newline
        (r"^a.b$", "a\u2028b", False),  # . stops at JavaScript's line terminators
        (r"^a.b$", "a\x1cb", True),
        (r"a\sb", "a\ufeffb", True),  # \s includes U+FEFF in JavaScript ...
        (r"a\sb", "a\x1cb", False),  # ... and not U+001C
        (r"^[^]+$", "x\ny", True),  # [^] matches anything
        (r"a[]", "a", False),  # [] matches nothing
        (r"(?<n>\d)\k<n>", "77", True),
        (r"^\a$", "a", True),  # an undefined escape is the letter
        (r"^x{,2}$", "x{,2}", True),  # {,n} is literal text in JavaScript
        (r"f\b", "café", True),  # \b is ASCII: é is not a word character, so f|é is a boundary
        (r"[\d.]+", "1.5", True),
    ],
)
def test_javascript_regex(js: str, text: str, matches: bool) -> None:
    from harness.importers.jsregex import translate

    assert bool(re.search(translate(js), text)) is matches


def test_regex_python_cannot_express_is_refused() -> None:
    from harness.importers.jsregex import translate

    with pytest.raises(ValueError, match="inline flags"):
        translate("(?i)abc")
    with pytest.raises(ValueError, match="property classes"):
        translate(r"\p{L}", unicode=True)


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.0, "2"), (1.5, "1.5"), (-0.5, "-0.5"), (1e21, "1e+21"), (1e-7, "1e-7"),
     (0.000001, "0.000001"), (123456789012345680000.0, "123456789012345680000"),
     (1.23e-10, "1.23e-10"), (True, "true"), (None, ""), (["a", 1], "a,1")],
)  # fmt: skip
def test_javascript_strings(value: object, text: str) -> None:
    from harness.importers.nunjucks import js_string

    assert js_string(value) == text


def test_nunjucks_variables_only() -> None:
    from harness.importers.nunjucks import render, to_template

    assert to_template("Hi {{ name }}, {json}") == "Hi {name}, {{json}}"
    assert render("{{a}}-{{missing}}", {"a": 1.0}) == "1-"
    with pytest.raises(ValueError, match="beyond"):
        to_template("{% if x %}y{% endif %}")
    with pytest.raises(ValueError, match="beyond"):
        to_template("{{ name | upper }}")


def test_comma_separated_values() -> None:
    from harness.importers.promptfoo_checks import Refused, parse_comma_separated

    assert parse_comma_separated('a, "b, c",, d ') == ["a", "b, c", "d"]
    assert parse_comma_separated(r'"say \"hi\"", x') == ['say "hi"', "x"]
    with pytest.raises(Refused):
        parse_comma_separated('"open')


def test_object_scan() -> None:
    from harness.criteria.jsonmatch import extract_objects

    assert extract_objects('x {"a": 1} y {"b": [2]}') == [{"a": 1}, {"b": [2]}]
    assert extract_objects('{"a": 1 // note\n}') == [{"a": 1}]
    assert extract_objects('{"url": "http://x.org/a"}') == [{"url": "http://x.org/a"}]
    assert extract_objects("{ok: yes}") == [{"ok": "yes"}]  # YAML 1.2: yes is a string
    assert extract_objects("{") == []


def _weighted(checks: list[dict], threshold: float | None = None) -> object:
    from harness import criteria

    return criteria.get("weighted")(checks=checks, threshold=threshold)


def test_weighted_rules() -> None:
    always = {"type": "contains", "value": "zzz", "negate": True}
    never = {"type": "contains", "value": "zzz"}
    (r,) = _weighted([never], threshold=0)(["x"], [{}])
    assert r.passed and r.score == 0.0  # a threshold of 0 is honoured: it passes everything
    (r,) = _weighted([{**never, "weight": 0}])(["x"], [{}])
    assert r.passed and r.score == 0.0  # weight 0 never fails; no weight at all scores 0
    (r,) = _weighted([])(["x"], [{}])
    assert r.passed and r.score == 1.0
    nested = {"type": "weighted", "checks": [always, never], "threshold": 0.5}
    (r,) = _weighted([nested, never])(["x"], [{}])
    assert not r.passed and r.score == pytest.approx(0.25)


def test_case_checks_are_validated_at_load(tmp_path: Path) -> None:
    from harness.errors import UserError
    from harness.suite.loader import load_suite

    yaml_text = (
        "name: w\nversion: 1\nprompt: {user: '{q}'}\ndata: {test: test.jsonl}\n"
        "rubric:\n  good:\n    - {id: all, type: weighted, checks_from: checks}\n"
    )
    cases = [
        {"id": "a", "q": "x", "checks": [{"type": "contains", "value": "x"}]},
        {"id": "b", "q": "x", "checks": [{"type": "nope"}]},
        {"id": "c", "q": "x", "checks": [{"type": "regex", "pattern": "("}]},
        {"id": "d", "q": "x", "checks": [{"type": "contains", "weight": -1, "value": "x"}]},
    ]
    folder = write_suite(tmp_path / "w", yaml_text, cases, [])
    with pytest.raises(UserError) as e:
        load_suite(folder)
    lines = e.value.lines()
    assert any("test.jsonl:line 2: all: check 0: unknown criterion type 'nope'" in x for x in lines)
    assert any("test.jsonl:line 3: all: check 0 (regex)" in x for x in lines)
    assert any("test.jsonl:line 4: all: check 0" in x and "weight" in x for x in lines)
    assert len(lines) == 3


def test_prompt_messages_field(tmp_path: Path) -> None:
    from harness.errors import UserError
    from harness.evaluation.runner import conversation
    from harness.suite.loader import load_suite

    yaml_text = (
        "name: m\nversion: 1\nprompt: {messages: chat}\ndata: {test: test.jsonl}\n"
        "rubric:\n  good:\n    - {id: c, type: contains, value: x}\n"
    )
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    folder = write_suite(tmp_path / "m", yaml_text, [{"id": "a", "chat": chat}], [])
    suite = load_suite(folder)
    assert conversation(suite, suite.cases[0]) == chat
    bad = [{"id": "a", "chat": chat[:1]}, {"id": "b", "chat": "text"}]
    (folder / "test.jsonl").write_text("".join(json.dumps(c) + "\n" for c in bad))
    with pytest.raises(UserError) as e:
        load_suite(folder)
    lines = e.value.lines()
    assert len(lines) == 2
    assert "test.jsonl:line 1: field 'chat' must end with a user message" in lines[0]
    assert "test.jsonl:line 2: field 'chat' must be a list of messages" in lines[1]
    (folder / "suite.yaml").write_text(yaml_text.replace("{messages: chat}", "{messages: chat, "
                                                         "user: x}"))  # fmt: skip
    with pytest.raises(UserError, match="either messages"):
        load_suite(folder)
