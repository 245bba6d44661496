"""promptfoo assertions as tuneval checks (the entries of a `weighted` criterion).

Semantics pinned to promptfoo's source (src/assertions/*.ts): `equals` compares the whole output
exactly (no trimming; an object value is compared as parsed JSON), `contains` and `starts-with`
are case-sensitive, `icontains*` lower-case both sides (JavaScript's toLowerCase), `regex` is
`new RegExp(value).test(output)` (translated, see `jsregex`), `is-json` is JSON.parse of the
whole output and `contains-json` promptfoo's object scan, both with an optional draft-07 schema.
A `not-` prefix negates; a weight 0 check only reports; values are rendered with the case's
variables first. What needs a model or runs code is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.importers import jsregex, literal
from harness.importers.nunjucks import js_string, render

NEEDS_MODEL = {
    "llm-rubric", "model-graded-closedqa", "model-graded-factuality", "factuality", "g-eval",
    "answer-relevance", "context-faithfulness", "context-recall", "context-relevance",
    "conversation-relevance", "similar", "similar:cosine", "similar:dot", "similar:euclidean",
    "classifier", "moderation", "select-best", "max-score", "search-rubric", "agent-rubric",
    "pi", "guardrails", "is-refusal", "perplexity", "perplexity-score",
}  # fmt: skip
RUNS_CODE = {"javascript", "python", "ruby", "webhook"}
_KNOWN_KEYS = {"type", "value", "weight", "metric", "threshold", "provider", "config"}
_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema"
# Draft-07 keywords; Ajv's strict mode (promptfoo's default) fails a schema with any other.
SCHEMA_KEYWORDS = {
    "$schema", "$id", "$ref", "$comment", "$defs", "title", "description", "default", "readOnly",
    "writeOnly", "examples", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "additionalItems", "items",
    "maxItems", "minItems", "uniqueItems", "contains", "maxProperties", "minProperties",
    "required", "additionalProperties", "definitions", "properties", "patternProperties",
    "dependencies", "propertyNames", "const", "enum", "type", "format", "contentMediaType",
    "contentEncoding", "if", "then", "else", "allOf", "anyOf", "oneOf", "not",
}  # fmt: skip
_DATA_KEYWORDS = {"enum", "const", "default", "examples", "required", "type"}
_SCHEMA_MAPS = {"properties", "definitions", "$defs", "dependencies", "patternProperties"}


class Refused(ValueError):
    """This assertion cannot be imported (the message says why)."""


def check(assertion: Any, values: dict[str, Any], base: Path, counts: Any) -> dict[str, Any]:
    """One promptfoo assertion, rendered with one case's variables, as a weighted-check spec."""
    if not isinstance(assertion, dict) or not isinstance(assertion.get("type"), str):
        raise Refused("an assertion needs a 'type'")
    kind: str = assertion["type"]
    if kind == "assert-set":
        return _assert_set(assertion, values, base, counts)
    negate = kind.startswith("not-")
    base_kind = kind[4:] if negate else kind
    extra = set(assertion) - _KNOWN_KEYS
    if extra & {"transform", "contextTransform"}:
        raise Refused(f"{kind}: 'transform' runs JavaScript on the output")
    if extra:
        raise Refused(f"{kind}: unsupported key(s) {', '.join(sorted(extra))}")
    if base_kind in NEEDS_MODEL:
        raise Refused(f"{kind} needs a model to grade (a judge or an embedder)")
    if base_kind in RUNS_CODE:
        raise Refused(f"{kind} runs code")
    value = assertion.get("value")
    if isinstance(value, str) and value.startswith("file://"):
        target = value[len("file://") :]
        if target.endswith((".js", ".ts", ".mjs", ".cjs", ".py", ".rb")) or ":" in target:
            raise Refused(f"{kind}: the value comes from running {target}")
    try:
        spec = _map(base_kind, value, values, base)
    except Refused as e:
        text = str(e)
        raise Refused(text if text.startswith(base_kind) else f"{kind}: {text}") from None
    counts[f"{kind} -> {spec['type']}"] += 1
    weight = assertion.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        raise Refused(f"{kind}: weight must be a number >= 0")
    label = f"{kind}" + (
        f" '{js_string(value)[:40]}'" if isinstance(value, str | int | float) else ""
    )
    return {**spec, "weight": weight, "negate": negate, "label": literal(label)}


def _assert_set(assertion: dict[str, Any], values: dict[str, Any], base: Path, counts: Any) -> dict:
    children = assertion.get("assert")
    if not isinstance(children, list):
        raise Refused("assert-set needs an 'assert' list")
    counts["assert-set -> weighted"] += 1
    spec: dict[str, Any] = {
        "type": "weighted",
        "checks": [check(c, values, base, counts) for c in children],
        "weight": assertion.get("weight", 1),
        "label": "assert-set",
    }
    if isinstance(assertion.get("threshold"), int | float):
        spec["threshold"] = assertion["threshold"]
    return spec


def _rendered(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        try:
            return render(value, values)
        except ValueError as e:
            raise Refused(str(e)) from None
    if isinstance(value, list):
        return [_rendered(v, values) for v in value]
    return value


def _map(kind: str, value: Any, values: dict[str, Any], base: Path) -> dict[str, Any]:
    value = _rendered(value, values)
    if kind == "equals":
        if isinstance(value, dict | list):
            return {"type": "json-match", "mode": "whole", "equals": value}
        return {"type": "exact", "value": literal(js_string(value)), "strip": False,
                "case_sensitive": True}  # fmt: skip
    if kind in ("contains", "icontains"):
        if not isinstance(value, str | int | float) or value == "" or isinstance(value, bool):
            raise Refused(f"{kind} needs a non-empty string or number value")
        return _contains(kind, [js_string(value)], "any")
    if kind in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        items = parse_comma_separated(value) if isinstance(value, str) else value
        if not isinstance(items, list) or not items and not isinstance(value, list):
            raise Refused(f"{kind} needs a list (or comma-separated) value")
        return _contains(kind, [js_string(v) for v in items], kind.rsplit("-", 1)[1])
    if kind == "starts-with":
        if not isinstance(value, str) or not value:
            raise Refused("starts-with needs a non-empty string value")
        return {"type": "starts-with", "value": literal(value), "case_sensitive": True}
    if kind == "regex":
        if not isinstance(value, str) or not value:
            raise Refused("regex needs a non-empty string value")
        try:
            return {"type": "regex", "pattern": literal(jsregex.translate(value))}
        except Exception as e:  # ValueError from the translation, re.error from Python
            raise Refused(f"regex /{value}/: {e}") from None
    if kind in ("is-json", "contains-json"):
        spec: dict[str, Any] = {"type": "json-match"}
        spec["mode"] = "whole" if kind == "is-json" else "contains"
        if value not in (None, ""):
            spec["schema"] = _schema(value, base)
        return spec
    raise Refused(f"{kind} is not supported by tuneval's importer")


def _contains(kind: str, values: list[str], mode: str) -> dict[str, Any]:
    insensitive = kind.startswith("i")
    spec: dict[str, Any] = {"type": "contains", "value": [literal(v) for v in values],
                            "mode": mode, "case_sensitive": not insensitive}  # fmt: skip
    if insensitive:
        spec["fold"] = "lower"  # JavaScript's toLowerCase: "ß" stays "ß"
    return spec


def parse_comma_separated(text: str) -> list[str]:
    """promptfoo's parseCommaSeparatedValues: commas split, quotes keep commas, blanks skipped."""
    out, i = [], 0
    while i < len(text):
        while i < len(text) and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= len(text):
            break
        if text[i] != '"':
            end = text.find(",", i)
            end = len(text) if end < 0 else end
            out.append(text[i:end].strip())
            i = end
            continue
        field, i, closed = "", i + 1, False
        while i < len(text):
            if text[i] == "\\" and text[i + 1 : i + 2] in ('"', "\\"):
                field, i = field + text[i + 1], i + 2
            elif text.startswith('""', i):
                field, i = field + '"', i + 2
            elif text[i] == '"':
                i, closed = i + 1, True
                break
            else:
                field, i = field + text[i], i + 1
        if not closed:
            raise Refused("unterminated quoted field in a contains value")
        out.append(field)
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] != ",":
            raise Refused("expected a comma after a quoted field in a contains value")
    return out


def _schema(value: Any, base: Path) -> Any:
    """A JSON schema value: inline, a YAML/JSON string, or file:// (JSON or YAML)."""
    from harness.criteria.jsonmatch import load_yaml12

    if isinstance(value, str):
        if value.startswith("file://"):
            from harness.importers import source as files

            try:
                value = files.load_yaml(files.inside(base, value, base))
            except UserError as e:
                raise Refused(f"schema: {e}") from None
        else:
            value = load_yaml12(value)
    if not isinstance(value, dict | bool):
        raise Refused("a JSON schema must be an object or a boolean")
    return _python_patterns(value)


def _python_patterns(schema: Any) -> Any:
    """Ajv (strict, draft-07) semantics: no other draft, no `format`, patterns as JavaScript."""
    if isinstance(schema, list):
        return [_python_patterns(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    draft = schema.get("$schema")
    if draft is not None and not str(draft).rstrip("#").startswith(_SCHEMA_DRAFT):
        raise Refused(f"schema {draft}: promptfoo's Ajv reads draft-07 only")
    if "format" in schema:
        raise Refused("schema 'format' is checked differently by Ajv and jsonschema")
    unknown = sorted(set(schema) - SCHEMA_KEYWORDS)
    if unknown:
        raise Refused(f"schema keyword '{unknown[0]}': Ajv's strict mode rejects it")
    out: dict[str, Any] = {}
    for key, sub in schema.items():
        if key in _DATA_KEYWORDS:
            out[key] = sub
        elif key == "pattern" and isinstance(sub, str):
            out[key] = _pattern(sub)
        elif key in _SCHEMA_MAPS and isinstance(sub, dict):
            rename = _pattern if key == "patternProperties" else str
            out[key] = {rename(k): _python_patterns(v) for k, v in sub.items()}
        else:
            out[key] = _python_patterns(sub)
    return out


def _pattern(js: str) -> str:
    try:
        return jsregex.translate(js, unicode=True)
    except Exception as e:  # ValueError from the translation, re.error from Python
        raise Refused(f"schema pattern /{js}/: {e}") from None
