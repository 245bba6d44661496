"""`json-match`: JSON in the output, read as JavaScript reads it (promptfoo's is-json,
contains-json and equals with an object value).

- `mode: whole`: the whole output is one JSON text by JSON.parse's rules (NaN and Infinity are
  not JSON; surrounding white space is allowed).
- `mode: contains`: objects found in the text as promptfoo finds them: from each `{`, the
  shortest balanced `{...}` (or the rest of the text, closed with the missing braces) that
  parses as a YAML flow mapping once `//` comments become `#` comments; scanning resumes after
  each object found. Read with YAML 1.2 core scalars, as js-yaml does (yes/no stay strings).
- `schema`: a JSON Schema (draft-07, what promptfoo's Ajv defaults to) one parsed value must
  satisfy; patterns in it are Python regular expressions.
- `equals`: the parsed whole output must deep-equal this value, JavaScript-style (1 equals
  1.0, but true is not 1).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import yaml

from harness.criteria import Case, Result, Scorer, criterion, per_output
from harness.safe import regex as saferegex
from harness.safe import yamlsafe

MAX_OBJECT = 100_000  # characters scanned from each "{", as promptfoo limits it


def load_yaml12(text: str) -> Any:
    """YAML read as js-yaml reads it (core schema, duplicate keys refused), e.g. a schema
    written as a YAML string; bounded in depth and size, since model output reaches it."""
    return yamlsafe.load(text)[1]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """JSON.parse: strict JSON, so NaN and Infinity are errors; nesting deeper than Python's
    recursion allows is an error too, as it is for JavaScript's parser at some depth."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deep") from None


_JS_SPACE = re.compile(r"[\s\ufeff]")


def _slash_comments(line: str) -> str:
    """`// comment` outside quotes becomes `# comment` (one # per two slashes), unless the
    slashes belong to a URL; promptfoo's rule, quirks included."""
    state, out, i = "normal", "", 0

    def alpha(ch: str) -> bool:  # JavaScript's /[a-zA-Z]/.test(undefined) is true
        return bool(re.match(r"[a-zA-Z]", ch)) or ch == "undefined"

    while i < len(line):
        ch = line[i]
        nxt = line[i + 1] if i + 1 < len(line) else "undefined"
        prev = line[i - 1] if i > 0 else ""
        if state != "normal":
            out += ch
            quote = "'" if state == "single" else '"'
            if ch == quote and prev != "\\" and (state == "double" or not alpha(nxt)):
                state = "normal"
            i += 1
            continue
        if ch == "'" and not alpha(prev):
            state = "single"
        elif ch == '"':
            state = "double"
        elif ch == "/" and nxt == "/":
            start = i
            while start > 0 and not _JS_SPACE.match(line[start - 1]):
                start -= 1
            if "://" not in line[start : i + 2]:
                slashes = 2
                while i + slashes < len(line) and line[i + slashes] == "/":
                    slashes += 1
                return out + "#" * (slashes // 2) + line[i + slashes :]
        out += ch
        i += 1
    return out


def _try_object(text: str, start: int, end: int, opened: int, closed: int) -> Any:
    candidate = text[start:end] + "}" * max(opened - closed, 0)
    try:
        source = "\n".join(_slash_comments(line) for line in candidate.split("\n"))
        value = load_yaml12(source)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


def extract_objects(text: str) -> list[Any]:
    """The JSON-like objects promptfoo's contains-json finds in a text, left to right."""
    found, index = [], 0
    while index < len(text):
        if text[index] != "{":
            index += 1
            continue
        opened, closed, cursor = 1, 0, index + 1
        limit = min(index + MAX_OBJECT, len(text))
        hit = None
        while cursor < limit and opened > closed:
            opened += text[cursor] == "{"
            closed += text[cursor] == "}"
            cursor += 1
            if not (opened == closed or cursor == len(text) or cursor == limit):
                continue
            hit = _try_object(text, index, cursor, opened, closed)
            if hit is not None or opened == closed:
                break
        if hit is not None:
            found.append(hit)
            index = cursor
        else:
            index += 1
    return found


def same_json(a: Any, b: Any) -> bool:
    """Deep equality as JavaScript's isDeepStrictEqual sees parsed JSON."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@criterion("json-match")
def json_match(
    mode: Literal["whole", "contains"] = "whole",
    schema: dict[str, Any] | bool | None = None,
    equals: dict[str, Any] | list[Any] | None = None,
) -> Scorer:
    """The output is JSON (or contains JSON objects) matching a schema or a value."""
    validator = None
    if schema is not None:
        from jsonschema import Draft7Validator
        from referencing import Registry

        if isinstance(schema, dict):
            Draft7Validator.check_schema(schema)
            check_refs(schema)
        # an empty registry: a `$ref` is never fetched from a file or the network
        validator = timed_validator()(schema, registry=Registry())
    if equals is not None and mode != "whole":
        raise ValueError("equals compares the whole output: use mode: whole")

    def check(output: str, case: Case) -> Result:
        if mode == "whole":
            try:
                values = [parse_json(output)]
            except ValueError as e:
                return Result(False, 0.0, f"not JSON ({str(e)[:60]})")
        else:
            values = extract_objects(output)
            if not values:
                return Result(False, 0.0, "no JSON object in the output")
        if validator is not None:
            try:
                if not any(validator.is_valid(v) for v in values):
                    error = next(iter(validator.iter_errors(values[0])), None)
                    shown = error.message[:80] if error else "invalid"
                    return Result(False, 0.0, f"schema: {shown}")
            except saferegex.RegexTimeout as e:
                return Result(False, 0.0, f"schema: {e}")
        if equals is not None and not same_json(equals, values[0]):
            return Result(False, 0.0, "JSON differs from the expected value")
        return Result(True, 1.0, "valid JSON" if mode == "whole" else "contains JSON")

    return per_output(check)


def check_refs(schema: dict[str, Any]) -> None:
    """Every `$ref` points inside the schema itself (`#/...`) at something that is there: a suite
    reads no file outside its folder and nothing from the network."""

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    for ref in refs(schema):
        if not ref.startswith("#"):
            raise ValueError(f"$ref {ref!r}: only references inside the schema ('#/...') are read")
        target: Any = schema
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise ValueError(f"$ref {ref!r} points at nothing in the schema")


def timed_validator() -> Any:
    """Draft 7 with its three regex keywords matched by `saferegex` (a time limit per match):
    jsonschema's own call `re.search`, which a backtracking pattern keeps busy for hours."""
    from jsonschema import Draft7Validator, ValidationError, validators

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        rx = saferegex.compile(patrn)
        if validator.is_type(instance, "string") and not saferegex.search(rx, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, _: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            rx = saferegex.compile(patrn)
            for key, value in instance.items():
                if saferegex.search(rx, key):
                    yield from validator.descend(value, subschema, path=key, schema_path=patrn)

    def additional_properties(validator: Any, allowed: Any, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        known, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
        compiled = [saferegex.compile(p) for p in patterns]
        extras = sorted(
            (k for k in instance
             if k not in known and not any(saferegex.search(rx, k) for rx in compiled)),
            key=str,
        )  # fmt: skip
        if validator.is_type(allowed, "object"):
            for extra in extras:
                yield from validator.descend(instance[extra], allowed, path=extra)
        elif not allowed and extras:
            joined = ", ".join(repr(k) for k in extras)
            if patterns:
                verb = "does" if len(extras) == 1 else "do"
                names = ", ".join(repr(p) for p in sorted(patterns))
                yield ValidationError(f"{joined} {verb} not match any of the regexes: {names}")
            else:
                verb = "was" if len(extras) == 1 else "were"
                yield ValidationError(
                    f"Additional properties are not allowed ({joined} {verb} unexpected)"
                )

    return validators.extend(
        Draft7Validator,
        {"pattern": pattern, "patternProperties": pattern_properties,
         "additionalProperties": additional_properties},
    )  # fmt: skip
