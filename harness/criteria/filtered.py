"""`filtered-match`: an lm-eval filter pipeline, then lm-eval's exact_match, as lm-eval does both.

The pipeline's steps run in order on the output (lm-eval's `regex`, `take_first`, `lowercase`,
`uppercase`, `remove_whitespace`, `map`). exact_match then applies its options in lm-eval's
order: every `regexes_to_ignore` pattern is removed from both sides, then `ignore_case`
lower-cases, `ignore_punctuation` deletes ASCII punctuation, `ignore_numbers` deletes digits.
Those three go through numpy's string functions, as lm-eval's do: numpy lower-cases into the
array's fixed width, so "İstanbul" (whose lower case, "i̇stanbul", is one character longer)
becomes "i̇stanbu". With several references (lm-eval's multiple targets) any one equal answer
passes.
"""

from __future__ import annotations

import string
from typing import Any

from harness.criteria import Case, Result, Scorer, criterion, per_output
from harness.safe import regex as saferegex
from harness.safe.templating import fill_values

_DEFAULT = r"#### (\-?[0-9\.\,]+)"  # lm-eval's default regex_pattern
STEPS = ("regex", "take_first", "lowercase", "uppercase", "remove_whitespace", "map")


def _check_steps(filters: list[dict[str, Any]]) -> None:
    for i, step in enumerate(filters):
        name = step.get("function")
        if name not in STEPS:
            raise ValueError(f"filter step {i}: '{name}' is not one of {', '.join(STEPS)}")
        if name == "take_first" and i != len(filters) - 1:
            raise ValueError("take_first must be the last step of a pipeline")
        if name == "regex":
            saferegex.compile(step.get("regex_pattern", _DEFAULT))
        if name == "map":
            mapping = step.get("mapping_dict") or {}
            default = step.get("default_value")
            values = [*mapping.values(), default]
            if not all(isinstance(v, str) for v in values):
                raise ValueError("map: mapping_dict values and default_value must be strings")


def _regex(text: str, step: dict[str, Any]) -> str:
    pattern = step.get("regex_pattern", _DEFAULT)
    fallback = step.get("fallback", "[invalid]")
    found = saferegex.findall(saferegex.compile(pattern), text)
    if not found:
        return str(fallback)
    match = found[int(step.get("group_select", 0))]
    if isinstance(match, tuple):
        groups = [m for m in match if m]
        match = groups[0] if groups else fallback
    return str(match).strip()


def apply_pipeline(output: str, filters: list[dict[str, Any]]) -> str:
    """One response through lm-eval's filter steps (take_first keeps the only response)."""
    text = output
    for step in filters:
        name = step["function"]
        if name == "regex":
            text = _regex(text, step)
        elif name == "lowercase":
            text = text.lower()
        elif name == "uppercase":
            text = text.upper()
        elif name == "remove_whitespace":
            text = text.strip()
        elif name == "map":
            text = str((step.get("mapping_dict") or {}).get(text, step.get("default_value")))
    return text


def exact_match(
    prediction: str,
    references: list[str],
    regexes_to_ignore: list[str] | None = None,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
) -> bool:
    """lm-eval's exact_match for one prediction: true when it equals any reference."""
    import numpy as np

    preds = [prediction] * len(references)
    refs = list(references)
    for pattern in regexes_to_ignore or []:
        rx = saferegex.compile(pattern)
        preds = [saferegex.sub(rx, "", x) for x in preds]
        refs = [saferegex.sub(rx, "", x) for x in refs]
    p, r = np.asarray(preds), np.asarray(refs)
    if ignore_case:
        p, r = np.char.lower(p), np.char.lower(r)
    if ignore_punctuation:
        table: Any = str.maketrans("", "", string.punctuation)  # numpy applies a dict table
        p, r = np.char.translate(p, table), np.char.translate(r, table)
    if ignore_numbers:
        table = str.maketrans("", "", string.digits)
        p, r = np.char.translate(p, table), np.char.translate(r, table)
    return bool(len(references)) and bool(np.any(p == r))


@criterion("filtered-match")
def filtered_match(
    reference: str | list[str],
    filters: list[dict[str, Any]] = [],  # noqa: B006 - pydantic copies defaults
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
    regexes_to_ignore: list[str] | None = None,
) -> Scorer:
    """An lm-eval filter pipeline extracts the answer; lm-eval's exact_match compares it."""
    _check_steps(filters)
    for pattern in regexes_to_ignore or []:
        saferegex.compile(pattern)

    def check(output: str, case: Case) -> Result:
        refs = fill_values(reference, case)
        try:
            answer = apply_pipeline(output, filters)
            ok = exact_match(
                answer, refs, regexes_to_ignore, ignore_case, ignore_punctuation, ignore_numbers
            )
        except saferegex.RegexTimeout as e:
            return Result(False, 0.0, str(e))
        if ok:
            return Result(True, 1.0, f"answer '{answer}'")
        expected = refs[0] if len(refs) == 1 else " or ".join(refs)
        return Result(False, 0.0, f"answer '{answer}', expected '{expected}'")

    return per_output(check)
