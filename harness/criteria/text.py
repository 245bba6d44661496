"""The text family: exact, contains, regex, empty, length, repetition, json, choice."""

from __future__ import annotations

import json as jsonlib
import re
from typing import Any, Literal

from harness.criteria import Case, Result, Scorer, criterion, per_output
from harness.safe import regex as saferegex
from harness.safe.templating import fill, fill_values

_WORD = re.compile(r"\w+(?:['’.-]\w+)*", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def _norm(text: str, case_sensitive: bool, fold: str = "casefold") -> str:
    if case_sensitive:
        return text
    return text.casefold() if fold == "casefold" else text.lower()


def _short(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


@criterion("exact")
def exact(value: str, case_sensitive: bool = True, strip: bool = True) -> Scorer:
    """The output equals the value (after stripping white space)."""

    def check(output: str, case: Case) -> Result:
        want, got = fill(value, case), output
        if strip:
            want, got = want.strip(), got.strip()
        if _norm(got, case_sensitive) == _norm(want, case_sensitive):
            return Result(True, 1.0, "exact match")
        return Result(False, 0.0, f"expected '{_short(want)}', got '{_short(got)}'")

    return per_output(check)


@criterion("contains")
def contains(
    value: str | list[str],
    mode: Literal["any", "all"] = "any",
    case_sensitive: bool = False,
    fold: Literal["casefold", "lower"] = "casefold",
) -> Scorer:
    """The output contains the value (any or all of several values).

    Without case sensitivity both sides are case-folded (`fold: casefold`, so "ß" matches
    "ss"), or lower-cased (`fold: lower`, as JavaScript's toLowerCase and Python's lower do).
    A value that is exactly one `{field}` holding a list stands for that list.
    """

    def check(output: str, case: Case) -> Result:
        wanted = fill_values(value, case)
        hay = _norm(output, case_sensitive, fold)
        found = [w for w in wanted if _norm(w, case_sensitive, fold) in hay]
        missing = [w for w in wanted if w not in found]
        passed = bool(found) if mode == "any" else not missing
        if passed:
            shown = f"contains '{_short(found[0])}'" if found else "no values to look for"
            return Result(True, None, shown)
        shown = ", ".join(f"'{_short(m)}'" for m in missing[:3])
        return Result(False, None, f"missing {shown}")

    return per_output(check)


_FLAGS = {
    "ignorecase": saferegex.IGNORECASE,
    "multiline": saferegex.MULTILINE,
    "dotall": saferegex.DOTALL,
}


@criterion("regex")
def regex(
    pattern: str,
    flags: list[Literal["ignorecase", "multiline", "dotall"]] = [],  # noqa: B006 (pydantic copies)
    match: Literal["search", "fullmatch"] = "search",
) -> Scorer:
    """The output matches a regular expression; `{field}` values are inserted escaped. A match
    that runs past the time limit (a pattern that backtracks exponentially) fails the check."""
    bits = 0
    for f in flags:
        bits |= _FLAGS[f]
    saferegex.compile(fill(pattern, _Blank(), escape=re.escape), bits)  # fail at load time

    def check(output: str, case: Case) -> Result:
        rx = saferegex.compile(fill(pattern, case, escape=re.escape), bits)
        try:
            if match == "search":
                m = saferegex.search(rx, output)
            else:
                m = saferegex.fullmatch(rx, output.strip())
        except saferegex.RegexTimeout as e:
            return Result(False, None, str(e))
        if m:
            return Result(True, None, f"matched '{_short(m.group(0))}'")
        return Result(False, None, f"no match for /{_short(rx.pattern)}/")

    return per_output(check)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "x"


@criterion("empty")
def empty() -> Scorer:
    """Detects an empty (or white-space-only) output."""

    def check(output: str, case: Case) -> Result:
        if output.strip():
            return Result(True, None, "not empty")
        return Result(False, None, "empty output")

    return per_output(check)


@criterion("length")
def length(
    unit: Literal["words", "chars"] = "words",
    min_words: int | None = None,
    max_words: int | None = None,
    min_chars: int | None = None,
    max_chars: int | None = None,
    reference: str | None = None,
    max_ratio: float | None = None,
    min_ratio: float | None = None,
) -> Scorer:
    """Length within bounds: absolute (words/chars) or relative to a reference ("too long")."""
    if (max_ratio or min_ratio) and reference is None:
        raise ValueError("max_ratio/min_ratio need a reference, such as reference: '{answer}'")

    def size(text: str, how: str) -> int:
        return len(words(text)) if how == "words" else len(text.strip())

    def check(output: str, case: Case) -> Result:
        n_words, n_chars = size(output, "words"), size(output, "chars")
        for bound, n, unit_name, is_max in (
            (max_words, n_words, "words", True),
            (min_words, n_words, "words", False),
            (max_chars, n_chars, "chars", True),
            (min_chars, n_chars, "chars", False),
        ):
            if bound is not None and (n > bound if is_max else n < bound):
                op = ">" if is_max else "<"
                return Result(False, None, f"{n} {unit_name} {op} {bound}")
        if reference is not None:
            ref = size(fill(reference, case), unit)
            ratio = size(output, unit) / max(ref, 1)
            if max_ratio is not None and ratio > max_ratio:
                return Result(False, None, f"{ratio:.1f}x longer than the reference")
            if min_ratio is not None and ratio < min_ratio:
                return Result(False, None, f"{ratio:.2f}x the reference's length, too short")
            return Result(True, None, f"{ratio:.1f}x the reference's length")
        return Result(True, None, f"{n_words} words" if unit == "words" else f"{n_chars} chars")

    return per_output(check)


_TOKEN = re.compile(r"\w+", re.UNICODE)
# A unit of 1-32 characters repeated at least four times in a row: "abababab", "!!!!", "=-=-=-=-".
_LOOP = re.compile(r"(.{1,32}?)\1{3,}", re.DOTALL)
# How long a run must be to count as a loop: a unit with a letter ("hahaha", "asyncio.") from 12
# characters (a hex mask "ffffffff" is shorter); a unit of symbols alone from 24 (shorter rules
# and underlines, "----", "====", are layout). A unit with digits and no letter never counts:
# numbers are data ("100000", "[0, 0, 0, 0]").
_MIN_LOOP, _MIN_SYMBOL_LOOP = 12, 24


def _is_loop(unit: str, run: str) -> bool:
    if any(ch.isalpha() for ch in unit):
        return len(run) >= _MIN_LOOP
    if any(ch.isdigit() for ch in unit) or not unit.strip():
        return False
    return len(run) >= _MIN_SYMBOL_LOOP


def repeated_share(text: str, n: int) -> float:
    """Share of word n-grams that repeat an earlier one. Words are runs of letters and digits,
    so `asyncio.asyncio.asyncio` is three words, not one; n-grams of numbers alone are data
    ("[0, 0, 0, 0]"), not counted."""
    toks = [w.casefold() for w in _TOKEN.findall(text)]
    grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    grams = [g for g in grams if not all(w.isdigit() for w in g)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def loop_share(text: str) -> tuple[float, str]:
    """(share of characters that repeat a unit right before them, the longest such unit): catches
    loops with no word structure to count ("hahahahaha…", "!!!!!!!!…"). White space, numbers and
    short runs do not count (see `_is_loop`)."""
    text = text.strip()
    if not text:
        return 0.0, ""
    covered, unit = 0, ""
    for m in _LOOP.finditer(text):
        if not _is_loop(m.group(1), m.group(0)):
            continue
        covered += len(m.group(0)) - len(m.group(1))
        if len(m.group(0)) > len(unit):
            unit = m.group(0)[: len(m.group(1))]
    return covered / len(text), unit


@criterion("repetition")
def repetition(n: int = 3, max_ratio: float = 0.3) -> Scorer:
    """Detects repetitive output: repeated word n-grams, or characters looping in place."""

    def check(output: str, case: Case) -> Result:
        share = repeated_share(output, n)
        loop, unit = loop_share(output)
        if loop > share:
            detail = f"{loop:.0%} of characters loop ('{_short(unit, 12)}' repeated)"
            share = loop
        else:
            detail = f"{share:.0%} of word {n}-grams repeated"
        return Result(share <= max_ratio, round(1.0 - share, 4), detail)

    return per_output(check)


def _extract_json(text: str) -> Any:
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    try:
        return jsonlib.loads(text)
    except ValueError:
        pass
    decoder = jsonlib.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return decoder.raw_decode(text[i:])[0]
            except ValueError:
                continue
    raise ValueError("no JSON value found")


@criterion("json")
def json(
    required_keys: list[str] = [],  # noqa: B006
    equals: dict[str, Any] = {},  # noqa: B006
    extract: bool = True,
) -> Scorer:
    """The output parses as JSON, has the required keys, and fields equal given values."""

    def check(output: str, case: Case) -> Result:
        try:
            value = _extract_json(output) if extract else jsonlib.loads(output)
        except ValueError as e:
            return Result(False, 0.0, f"not JSON ({str(e)[:60]})")
        except RecursionError:  # a model stuck in "[[[[..." must not take the run down
            return Result(False, 0.0, "not JSON (nested too deep)")
        if required_keys or equals:
            if not isinstance(value, dict):
                return Result(False, 0.0, f"JSON is a {type(value).__name__}, not an object")
            missing = [k for k in required_keys if k not in value]
            if missing:
                return Result(False, 0.0, "missing keys: " + ", ".join(missing))
            for key, want in equals.items():
                want = fill(want, case) if isinstance(want, str) else want
                if value.get(key) != want:
                    return Result(False, 0.0, f"{key} is {value.get(key)!r}, expected {want!r}")
        return Result(True, 1.0, "valid JSON")

    return per_output(check)


@criterion("choice")
def choice(
    answer: str,
    options: str | None = None,
    labels: list[str] = ["A", "B", "C", "D"],  # noqa: B006
) -> Scorer:
    """The output picks exactly one labelled option, and it is the answer.

    `options` names a case field holding the option texts (a list, in label order); an output may
    name an option by its label ("B", "(B)", "B.") or by its text.
    """

    def picked(output: str, case: Case) -> set[str]:
        found = set()
        for label in labels:
            rx = rf"(?:^|[\s(\[]){re.escape(label)}(?:$|[\s).\]:,])"
            if re.search(rx, output.strip()):
                found.add(label)
        if options:
            texts = case.get(options) or []
            low = output.casefold()
            for label, text in zip(labels, texts, strict=False):
                if str(text).casefold() in low:
                    found.add(label)
        return found

    def check(output: str, case: Case) -> Result:
        want = fill(answer, case).strip()
        got = picked(output, case)
        if not got:
            return Result(False, 0.0, "no option picked")
        if len(got) > 1:
            return Result(False, 0.0, f"several options named: {', '.join(sorted(got))}")
        pick = got.pop()
        if pick == want:
            return Result(True, 1.0, f"picked {pick}")
        return Result(False, 0.0, f"picked {pick}, expected {want}")

    return per_output(check)
