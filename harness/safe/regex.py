"""Regular expressions written by users, matched under a time limit.

With Python's `re`, a pattern such as `(a+)+$` backtracks exponentially: each character more in
the output doubles the time, and grading hangs. Every pattern that comes from a suite (the
`regex` criterion, lm-eval filter pipelines, JSON Schema `pattern` keywords) is compiled here with
the `regex` module in its `re`-compatible mode (VERSION0: the same syntax and matches), and every
match runs with a timeout. Running out raises `RegexTimeout`; criteria report it as a failed
check that names the pattern, and grading goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import regex

IGNORECASE, MULTILINE, DOTALL = regex.IGNORECASE, regex.MULTILINE, regex.DOTALL
Pattern = Any  # regex.Pattern, which the module does not export as a type


def seconds() -> float:
    """The time one match may take (TUNEVAL_REGEX_SECONDS, default 1)."""
    try:
        return max(0.01, float(os.environ.get("TUNEVAL_REGEX_SECONDS", "1")))
    except ValueError:
        return 1.0


class RegexTimeout(Exception):
    def __init__(self, pattern: str):
        shown = pattern if len(pattern) <= 60 else pattern[:59] + "…"
        super().__init__(
            f"/{shown}/ gave up after {seconds():g}s on this text (a pattern that backtracks "
            "exponentially, such as (a+)+$?)"
        )


def compile(pattern: str, flags: int = 0) -> Pattern:
    """Compile as `re` would; a malformed pattern raises ValueError with regex's reason."""
    try:
        return regex.compile(pattern, flags | regex.VERSION0)
    except regex.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None
    except (OverflowError, RecursionError, MemoryError):  # a{99999999999}, (((((... deep
        raise ValueError(f"regular expression {pattern[:60]!r}… is too large") from None


def _timed(call: Callable[..., Any], rx: Pattern, *args: Any) -> Any:
    try:
        return call(*args, timeout=seconds())
    except TimeoutError:
        raise RegexTimeout(rx.pattern) from None


def search(rx: Pattern, text: str) -> Any:
    return _timed(rx.search, rx, text)


def fullmatch(rx: Pattern, text: str) -> Any:
    return _timed(rx.fullmatch, rx, text)


def findall(rx: Pattern, text: str) -> list[Any]:
    return list(_timed(rx.findall, rx, text))


def sub(rx: Pattern, replacement: str, text: str) -> str:
    return str(_timed(rx.sub, rx, replacement, text))


def template_replace(text: Any, pattern: str, replacement: str, count: int = 0) -> str:
    """The `regex_replace` filter of lm-eval's prompt templates, under the same time limit."""
    from harness.errors import UserError

    rx = compile(pattern)
    try:
        return str(rx.sub(replacement, str(text), count=count, timeout=seconds()))
    except TimeoutError:
        raise UserError(f"a prompt template's regex_replace: {RegexTimeout(pattern)}") from None
