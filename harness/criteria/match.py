"""Answer matching as other evaluation tools define it, so that suites imported from them give the
verdicts those tools give on the same output.

- `starts-with`: the output starts with one of the values; nothing trimmed (promptfoo's
  starts-with; OpenAI evals' `Match`, which picks the first option the completion starts with).
- `fuzzy-match`: OpenAI evals' `FuzzyMatch` (evals/elsuite/utils.py): both sides lower-cased,
  ASCII punctuation removed, the articles a/an/the dropped, white space collapsed; then either
  contains the other (two empty strings match; one empty string matches nothing).
- `answer-match`: Inspect's `match` scorer: both sides stripped, case-folded, white space and
  ASCII punctuation stripped from the ends, then compared at the end (`location: end`), the
  beginning, anywhere, or exactly. Inspect's `numeric` mode is not reproduced.
- `exact-normalized`: Inspect's `exact` scorer: tokens split on spaces and hyphens, each
  case-folded, its punctuation removed (unless it is a number), numbers written as floats,
  articles removed; the joined tokens must equal a target's.
- `answer-letter`: Inspect's `choice` scorer after its `multiple_choice` solver: the letters in
  the last "ANSWER: X" line must be exactly the target letters.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from typing import Literal

from harness.criteria import Case, Result, Scorer, criterion, per_output
from harness.safe.templating import fill_values


def _short(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _first_hit(values: list[str], test: Callable[[str], bool]) -> str | None:
    return next((v for v in values if test(v)), None)


@criterion("starts-with")
def starts_with(value: str | list[str], case_sensitive: bool = True, strip: bool = False) -> Scorer:
    """The output starts with the value (any of several); nothing is trimmed unless `strip`."""

    def prepare(text: str) -> str:
        text = text.strip() if strip else text
        return text if case_sensitive else text.lower()

    def check(output: str, case: Case) -> Result:
        wanted = fill_values(value, case)
        got = prepare(output)
        hit = _first_hit(wanted, lambda w: got.startswith(prepare(w)))
        if hit is not None:
            return Result(True, 1.0, f"starts with '{_short(hit)}'")
        return Result(False, 0.0, f"does not start with '{_short(wanted[0]) if wanted else ''}'")

    return per_output(check)


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def evals_normalize(text: str) -> str:
    """OpenAI evals' normalize(): lower, no ASCII punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def fuzzy_match(a: str, b: str) -> bool:
    a, b = evals_normalize(a), evals_normalize(b)
    if a == "" or b == "":
        return a == b
    return a in b or b in a


@criterion("fuzzy-match")
def fuzzy_match_criterion(value: str | list[str]) -> Scorer:
    """OpenAI evals' FuzzyMatch: after normalising, the output and a value contain one another."""

    def check(output: str, case: Case) -> Result:
        wanted = fill_values(value, case)
        hit = _first_hit(wanted, lambda w: fuzzy_match(output, w))
        if hit is not None:
            return Result(True, 1.0, f"matches '{_short(hit)}'")
        return Result(False, 0.0, f"matches none of {', '.join(repr(_short(w)) for w in wanted)}")

    return per_output(check)


def _strip_punctuation(text: str) -> str:
    return text.strip(string.whitespace + string.punctuation)


@criterion("answer-match")
def answer_match(
    value: str | list[str],
    location: Literal["begin", "end", "any", "exact"] = "end",
    ignore_case: bool = True,
    ignore_punctuation: bool = True,
) -> Scorer:
    """Inspect's match scorer: the stripped output ends with (or begins with, contains, equals) a
    target; case-folded and with end punctuation ignored by default."""

    def matches(output: str, target: str) -> bool:
        v, t = output.strip(), target.strip()
        if ignore_case:
            v, t = v.casefold(), t.casefold()
        if ignore_punctuation:
            v, t = _strip_punctuation(v), _strip_punctuation(t)
        if location == "begin":
            return v.startswith(t)
        if location == "end":
            return v.endswith(t)
        return v == t if location == "exact" else t in v

    def check(output: str, case: Case) -> Result:
        wanted = fill_values(value, case)
        hit = _first_hit(wanted, lambda w: matches(output, w))
        if hit is not None:
            return Result(True, 1.0, f"{location} matches '{_short(hit)}'")
        first = _short(wanted[0]) if wanted else ""
        return Result(False, 0.0, f"no {location} match for '{first}'")

    return per_output(check)


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _normalize_token(token: str) -> str:
    token = token.casefold()
    if not _finite_number(token):
        bare = _strip_punctuation(token)
        token = bare if _finite_number(bare) else "".join(
            ch for ch in token if ch not in string.punctuation
        )  # fmt: skip
    if _finite_number(token):
        token = str(float(token))
    token = _ARTICLES.sub(" ", token)
    return " ".join(token.split())


def inspect_normalize(text: str) -> str:
    """Inspect's exact-match normalisation, token by token (tokens split on ' ' and '-')."""
    tokens = [_normalize_token(t) for t in re.split(" |-", text)]
    return " ".join(t for t in tokens if t.strip()).strip()


@criterion("exact-normalized")
def exact_normalized(value: str | list[str]) -> Scorer:
    """Inspect's exact scorer: the normalised output equals a normalised, non-blank target."""

    def check(output: str, case: Case) -> Result:
        got = inspect_normalize(output)
        targets = [w for w in fill_values(value, case) if w.strip()]
        hit = _first_hit(targets, lambda w: inspect_normalize(w) == got)
        if hit is not None:
            return Result(True, 1.0, f"equals '{_short(hit)}' once normalised")
        return Result(False, 0.0, f"'{_short(got)}' is none of the targets once normalised")

    return per_output(check)


_ANSWER_LINE = re.compile(r"(?i)^ANSWER\s*:\s*([A-Za-z\d ,]+)\s*(?:$|\n|\.)", re.MULTILINE)
_ANSWER_ANY = re.compile(r"(?i)ANSWER\s*:\s*([A-Za-z\d ,]+)(?:[^\w]|\n|$|\.)")


def letter(index: int) -> str:
    """Inspect's answer_character: A..Z, then 1, 2, ..."""
    return chr(ord("A") + index) if index < 26 else str(index - 25)


def _index(char: str) -> int | None:
    if char.isalpha():
        return ord(char.upper()) - ord("A")
    return 25 + int(char) if char.isnumeric() else None


def parse_letters(output: str, n_choices: int, multiple: bool) -> set[str]:
    """The letters an output answers with, parsed as Inspect's multiple_choice solver does."""
    found = _ANSWER_LINE.findall(output) or _ANSWER_ANY.findall(output)
    if not found:
        return set()
    answer = found[-1].strip().rstrip(".").upper()
    allowed = {letter(i) for i in range(n_choices)}
    if multiple:
        answer = answer.replace(" AND ", ",").replace(" ", "")
        by_comma = {x for x in answer.split(",") if x}
        if by_comma <= allowed:
            return by_comma
        return set(answer) if set(answer) <= allowed else set()
    tokens = [t for t in answer.split(",") if t]
    return {tokens[0]} if len(tokens) == 1 and tokens[0] in allowed else set()


@criterion("answer-letter")
def answer_letter(answer: str | list[str], choices: str, multiple: bool = False) -> Scorer:
    """Inspect's choice scorer: the "ANSWER: X" letters must be exactly the target letters.

    `choices` names the case field with the options (their number bounds the letters);
    `multiple` reads several letters, as Inspect's multiple_correct.
    """

    def check(output: str, case: Case) -> Result:
        n = len(case.get(choices) or [])
        target = "".join(fill_values(answer, case))
        wanted = [_index(ch) for ch in target if ch not in (",", " ")]
        letters = parse_letters(output, n, multiple)
        picked = sorted(i for i in map(_index, letters) if i is not None)
        shown = ", ".join(letter(i) for i in picked) or "nothing"
        if None not in wanted and picked == sorted(w for w in wanted if w is not None):
            return Result(True, 1.0, f"answered {shown}")
        return Result(False, 0.0, f"answered {shown}, expected {target or 'nothing'}")

    return per_output(check)
