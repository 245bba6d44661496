"""A JavaScript regular expression rewritten as a Python one that matches the same strings.

promptfoo tests `new RegExp(value).test(output)`; Ajv checks JSON Schema patterns with the `u`
flag. Where the two dialects differ, the translation spells out JavaScript's meaning:

- `\\d \\w \\b` (and their negations) are ASCII in JavaScript: the pattern runs with `(?a)`;
- `\\s` is JavaScript's own set (it includes U+FEFF and excludes U+001C-U+001F, U+0085);
- `.` excludes the four JavaScript line terminators (\\n, \\r, U+2028, U+2029);
- `$` without the m flag is the very end of the text (`\\Z`), not also before a final \\n;
- `[^]` matches anything, `[]` nothing; `{,n}` is literal text in JavaScript;
- `(?<name>` and `\\k<name>` become `(?P<name>` and `(?P=name)`;
- an escaped letter JavaScript does not define is that letter (`\\a` is "a", not a bell).

What Python's `re` cannot express the same way (inline flags, which JavaScript rejects; `\\p{..}`
classes under `u`) raises `ValueError`, and the importer refuses the check.
Residual difference: without `u`, JavaScript's `.` matches half of a character outside the
Basic Multilingual Plane (an emoji is two code units); Python's matches the whole character.
"""

from __future__ import annotations

import re

JS_SPACE = (
    "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
)
_LINE_TERMINATORS = "\\n\\r\\u2028\\u2029"
_JS_LETTER_ESCAPES = set("bBcdDfknrsStuvwWx") | {"p", "P"}


def translate(pattern: str, unicode: bool = False) -> str:
    """The Python pattern (to compile without flags) for a JavaScript pattern."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            text, i = _escape(pattern, i, in_class, unicode)
            out.append(text)
            continue
        if in_class:
            if ch == "]":
                in_class = False
                out.append("]")
            else:
                out.append("\\" + ch if ch in "[&~|" else ch)
            i += 1
            continue
        if ch == "[":
            if pattern.startswith("[^]", i):
                out.append("[\\s\\S]")
                i += 3
            elif pattern.startswith("[]", i):
                out.append("(?!)")
                i += 2
            else:
                in_class = True
                out.append("[^" if pattern.startswith("[^", i) else "[")
                i += 2 if pattern.startswith("[^", i) else 1
            continue
        if ch == "(" and pattern.startswith("(?", i):
            text, i = _group(pattern, i)
            out.append(text)
            continue
        if ch == ".":
            out.append(f"[^{_LINE_TERMINATORS}]")
        elif ch == "$":
            out.append("\\Z")
        elif ch == "{" and pattern.startswith("{,", i):
            out.append("\\{")
        else:
            out.append(ch)
        i += 1
    result = "(?a)" + "".join(out)
    re.compile(result)  # what Python rejects is refused by the caller
    return result


def _group(pattern: str, i: int) -> tuple[str, int]:
    rest = pattern[i + 2 :]
    if rest.startswith("<") and not rest.startswith(("<=", "<!")):
        return "(?P<", i + 3
    if rest[:1] in (":", "=", "!") or rest.startswith(("<=", "<!")):
        return "(?", i + 2
    raise ValueError(f"JavaScript rejects the group '(?{rest[:3]}' (inline flags and the like)")


def _escape(pattern: str, i: int, in_class: bool, unicode: bool) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise ValueError("the pattern ends with a lone backslash")
    c = pattern[i + 1]
    if c == "s":
        return (JS_SPACE if in_class else f"[{JS_SPACE}]"), i + 2
    if c == "S":
        if in_class:
            raise ValueError("\\S inside a character class has no Python spelling")
        return f"[^{JS_SPACE}]", i + 2
    if c == "k" and pattern.startswith("<", i + 2):
        end = pattern.index(">", i)
        return f"(?P={pattern[i + 3 : end]})", end + 1
    if c == "c" and i + 2 < len(pattern) and pattern[i + 2].isascii() and pattern[i + 2].isalpha():
        return f"\\x{ord(pattern[i + 2]) % 32:02x}", i + 3
    if c == "u" and pattern.startswith("{", i + 2):
        if not unicode:
            raise ValueError("\\u{...} is a code point only with the u flag")
        end = pattern.index("}", i)
        return f"\\U{int(pattern[i + 3 : end], 16):08x}", end + 1
    if c in "pP":
        if unicode:
            raise ValueError("\\p{...} property classes are not supported by Python's re")
        return c, i + 2
    if c.isascii() and c.isalpha() and c not in _JS_LETTER_ESCAPES:
        if unicode:
            raise ValueError(f"\\{c} is not an escape JavaScript allows under the u flag")
        return c, i + 2
    return "\\" + c, i + 2
