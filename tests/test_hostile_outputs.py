"""What a model writes cannot take a run down: deeply nested JSON in the JSON criteria, and a
suite's JSON Schema cannot reach files or the network through `$ref`; a prompt template's
`regex_replace` runs under the regex time limit."""

from __future__ import annotations

import pytest

from harness import criteria
from harness.errors import UserError


@pytest.mark.parametrize(
    "output",
    ["[" * 100_000, "{a: " + "[" * 3000 + "]" * 3000 + "}", '{"a": ' + "[" * 50_000 + "}"],
)
@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("json", {}),
        ("json", {"extract": False}),
        ("json-match", {"mode": "whole"}),
        ("json-match", {"mode": "contains"}),
    ],
)
def test_deeply_nested_output_is_a_failed_check(kind: str, params: dict, output: str) -> None:
    scorer = criteria.get(kind)(**params)
    [result] = scorer([output], [{}])
    assert result.passed is False and "JSON" in result.detail


def test_schema_refs_stay_inside_the_schema(tmp_path) -> None:
    factory = criteria.get("json-match")
    target = tmp_path / "x.json"
    target.write_text('{"type": "string"}')
    for ref in (f"file://{target}", "https://example.com/s.json", "other.json#/a"):
        with pytest.raises(ValueError, match="only references inside the schema"):
            factory(schema={"$ref": ref})
    with pytest.raises(ValueError, match="points at nothing"):
        factory(schema={"properties": {"a": {"$ref": "#/definitions/missing"}}})
    scorer = factory(
        schema={
            "definitions": {"word": {"type": "string", "pattern": "^[a-z]+$"}},
            "properties": {"a": {"$ref": "#/definitions/word"}},
            "required": ["a"],
        }
    )
    good, bad = scorer(['{"a": "abc"}', '{"a": "ABC"}'], [{}, {}])
    assert good.passed and not bad.passed  # a local reference still works


def test_template_regex_replace_has_a_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.safe.regex import template_replace

    assert template_replace("a-b-c", "-", "+") == "a+b+c"
    assert template_replace("a-b-c", "-", "+", count=1) == "a+b-c"
    monkeypatch.setenv("TUNEVAL_REGEX_SECONDS", "0.05")
    with pytest.raises(UserError, match="regex_replace"):
        template_replace("x" * 5000, r"(x+x+)+y", "z")
