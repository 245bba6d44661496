"""`{field}` placeholders filled from a case. Only `{identifier}` counts, so regex quantifiers
such as `{2,3}` and literal JSON braces pass through; `{{` and `}}` escape a brace."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def fill(template: str, case: Mapping[str, Any], escape: Callable[[str], str] | None = None) -> str:
    """Replace each `{field}` with the case's value (lists joined by ", ")."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        value = case[m.group(1)]
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        return escape(text) if escape else text

    return _PLACEHOLDER.sub(sub, template)


Loc = tuple[int | str, ...]


def walk_strings(value: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every string inside nested dicts/lists, with the key path to it."""
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from walk_strings(v, (*loc, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, (*loc, i))


def fill_values(value: str | list[str], case: Mapping[str, Any]) -> list[str]:
    """The values a criterion compares against: a list as written, or one template. A template
    that is exactly one `{field}` holding a list gives that list (several accepted answers)."""
    if isinstance(value, list):
        return [fill(v, case) for v in value]
    names = placeholders(value)
    if len(names) == 1 and value == "{" + names[0] + "}":
        held = case[names[0]]
        if isinstance(held, list):
            return [str(v) for v in held]
    return [fill(value, case)]
