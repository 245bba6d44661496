"""`weighted`: several checks scored together, as promptfoo scores a test's assertions.

Each check is a criterion spec (`{type: contains, value: Paris, ...}`) with optional `weight`
(default 1), `negate` (the check must fail: promptfoo's `not-` types) and `label` (how the detail
names it). A check's score is 1 when it holds and 0 when not; a nested `weighted` check (an
assertion set) brings its own aggregate score. Then:

- score = sum(score × weight) / sum(weight), or 0 when the weights sum to 0;
- a check with weight 0 never fails (it only reports);
- the group passes when no check fails, or, when a `threshold` is set (0 included), when the
  score reaches it: the threshold overrides the individual verdicts;
- a group without checks passes with score 1.

The checks may be written once (`checks`) or carried by each case in a field (`checks_from`,
likewise `threshold_from`), for suites whose cases each have their own assertions. Such checks
are validated case by case when the suite is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from harness import criteria
from harness.criteria import Case, Result, Scorer, criterion
from harness.safe.templating import Loc

_KEYS = ("type", "weight", "negate", "label")


class _Check:
    def __init__(self, spec: Mapping[str, Any]):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
            raise ValueError(f"a check needs a 'type': {json.dumps(spec, default=str)[:80]}")
        weight = spec.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"weight must be a number >= 0, not {weight!r}")
        self.type = spec["type"]
        self.weight = float(weight)
        self.negate = bool(spec.get("negate", False))
        self.label = str(spec.get("label") or ("not " if self.negate else "") + self.type)
        params = {k: v for k, v in spec.items() if k not in _KEYS}
        self.scorer = criteria.get(self.type)(**params)


def _build(specs: Sequence[Mapping[str, Any]]) -> list[_Check]:
    return [_Check(s) for s in specs]


def _problems(specs: Any) -> list[str]:
    if not isinstance(specs, list):
        return ["checks must be a list of criterion specs"]
    out = []
    for i, spec in enumerate(specs):
        try:
            _Check(spec)
        except KeyError as e:
            out.append(f"check {i}: {e.args[0]}")
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            out.append(f"check {i} ({spec.get('type')}): {where}: {first['msg']}")
        except Exception as e:  # a malformed regex and the like
            out.append(f"check {i} ({spec.get('type')}): {e}")
    return out


def _threshold(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return None if number != number else number  # NaN: no threshold


def score_checks(checks: list[_Check], output: str, case: Case, threshold: float | None) -> Result:
    if not checks:
        return Result(True, 1.0, "no checks")
    total = weights = 0.0
    failed = []
    for c in checks:
        r = c.scorer([output], [case])[0]
        held = r.passed != c.negate
        nested = c.type == "weighted" and not c.negate and r.score is not None
        score = float(r.score) if nested and r.score is not None else float(held)
        if c.weight == 0 and c.type != "weighted":
            held = True
        total += score * c.weight
        weights += c.weight
        if not held:
            failed.append(c.label + (f" ({r.detail})" if r.detail and c.type == "weighted" else ""))
    score = total / weights if weights > 0 else 0.0
    if threshold is not None:
        passed = score >= threshold
        return Result(passed, score, f"score {score:.2f} {'≥' if passed else '<'} {threshold:g}")
    if failed:
        return Result(False, score, "failed: " + "; ".join(failed[:3]))
    return Result(True, score, f"all {len(checks)} checks hold")


def _nested(params: Mapping[str, Any], case: Case | None) -> list[tuple[Loc, Mapping[str, Any]]]:
    """The checks a `weighted` holds: written in `checks`, or (given a case) in its field."""
    if case is None:
        specs, key = params.get("checks"), "checks"
    else:
        field_name = params.get("checks_from")
        specs, key = (case.get(field_name) if isinstance(field_name, str) else None), "checks_from"
    if not isinstance(specs, list):
        return []
    return [((key, i), s) for i, s in enumerate(specs) if isinstance(s, Mapping)]


@criterion("weighted", nested=_nested)
def weighted(
    checks: list[dict[str, Any]] | None = None,
    checks_from: str | None = None,
    threshold: float | None = None,
    threshold_from: str | None = None,
) -> Scorer:
    """Checks scored together with weights and an optional score threshold (promptfoo's test)."""
    if (checks is None) == (checks_from is None):
        raise ValueError("give either checks (a list) or checks_from (a case field)")
    if threshold is not None and threshold_from is not None:
        raise ValueError("give threshold or threshold_from, not both")
    fixed = _build(checks) if checks is not None else None
    built: dict[str, list[_Check]] = {}

    def for_case(case: Case) -> list[_Check]:
        if fixed is not None:
            return fixed
        specs = case.get(checks_from or "") or []
        key = json.dumps(specs, sort_keys=True, default=str)
        if key not in built:
            built[key] = _build(specs)
        return built[key]

    def scorer(outputs: Sequence[str], cases: Sequence[Case]) -> list[Result]:
        out = []
        for output, case in zip(outputs, cases, strict=True):
            limit = threshold if threshold_from is None else _threshold(case.get(threshold_from))
            out.append(score_checks(for_case(case), output, case, limit))
        return out

    def check_case(case: Case) -> list[str]:
        """What is wrong with the checks a case carries (the loader reports it, located)."""
        problems = _problems(case.get(checks_from)) if checks_from else []
        if threshold_from and case.get(threshold_from) is not None:
            try:
                _threshold(case[threshold_from])
            except (TypeError, ValueError):
                problems.append(f"field '{threshold_from}' must be a number")
        return problems

    scorer.check_case = check_case  # type: ignore[attr-defined]
    return scorer
