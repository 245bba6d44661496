"""The part of promptfoo's Nunjucks templating an import can reproduce: `{{ name }}` variables.

A prompt becomes a tuneval template (`{name}` placeholders, other braces escaped); a check's
value is rendered at import time with its case's variables, as promptfoo renders it at test
time. Values print as JavaScript's String() prints them (1.0 is "1", true is "true"); an
undefined variable renders as nothing, as Nunjucks does by default. Anything else Nunjucks
can do (`{% %}` tags, filters, expressions) is refused with ValueError.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from harness.importers import literal

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_OTHER = re.compile(r"\{[{%#]")


def _parts(template: str) -> list[tuple[str, str]]:
    """("text", literal) and ("var", name) pieces; ValueError on any other Nunjucks syntax."""
    parts, pos = [], 0
    for m in _VAR.finditer(template):
        parts.append(("text", template[pos : m.start()]))
        parts.append(("var", m.group(1)))
        pos = m.end()
    parts.append(("text", template[pos:]))
    for kind, text in parts:
        if kind == "text" and _OTHER.search(text):
            snippet = text[_OTHER.search(text).start() :][:30]  # type: ignore[union-attr]
            raise ValueError(f"Nunjucks syntax beyond {{{{ variable }}}}: '{snippet}'")
    return parts


def variables(template: str) -> list[str]:
    return [name for kind, name in _parts(template) if kind == "var"]


def to_template(template: str) -> str:
    """A prompt as a tuneval template: `{{ name }}` -> `{name}`, every other brace literal."""
    return "".join(literal(t) if k == "text" else "{" + t + "}" for k, t in _parts(template))


def render(template: str, values: dict[str, Any]) -> str:
    return "".join(t if k == "text" else js_string(values.get(t, "")) for k, t in _parts(template))


def js_string(value: Any) -> str:
    """String(value) as JavaScript writes it, for the values YAML and CSV give."""
    if value is None:
        return ""  # Nunjucks prints null and undefined as nothing
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, list):
        return ",".join(js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def js_number(x: float) -> str:
    """Number.prototype.toString(): shortest round-trip digits, exponent past 1e21 / 1e-7."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k, n = len(digits), len(digits) + int(exp)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        e = n - 1
        body = (
            digits[0] + ("." + digits[1:] if k > 1 else "") + f"e{'+' if e >= 0 else '-'}{abs(e)}"
        )
    return sign + body
