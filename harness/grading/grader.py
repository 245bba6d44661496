"""Bad < good < better, exactly as the rubric says.

A case is `bad` if any bad detector fires or any good requirement fails; `good` if no detector
fires and every good requirement passes; `better` if it is good and every better requirement passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import criteria
from harness.criteria import Result
from harness.suite.loader import Suite

GRADES = ("bad", "good", "better")
RANK = {g: i for i, g in enumerate(GRADES)}


def grade(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Grade from {criterion id: {section, passed, ...}}."""
    sections: dict[str, list[bool]] = {"bad": [], "good": [], "better": []}
    for r in results.values():
        sections[r["section"]].append(bool(r["passed"]))
    if not all(sections["bad"]) or not all(sections["good"]):
        return "bad"
    return "better" if all(sections["better"]) else "good"


class Grader:
    """Grades batches of outputs with the scorers the suite built when it loaded.

    `store` is handed to model-based criteria through `criteria.context()`: a judge resolves
    registered model names and caches its verdicts there."""

    def __init__(self, suite: Suite, store: Any = None, progress: bool = False):
        self.context = criteria.Context(
            store=store, suite_path=suite.path, progress=progress, suite=suite, judges=self._judge
        )
        self.scorers = [
            (section, spec.id, suite.scorers[spec.id]) for section, spec in suite.criteria()
        ]

    def _judge(self, spec: str) -> Any:
        from harness.grading import judges  # the module, so a test's stand-in judge_for is seen

        return judges.judge_for(spec, self.context.store, self.context.progress)

    def __call__(
        self, outputs: Sequence[str], cases: Sequence[Mapping[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        per_case: list[dict[str, Any]] = [{} for _ in outputs]
        with criteria.using(self.context):
            for section, cid, scorer in self.scorers:
                results: list[Result] = scorer(outputs, cases)
                for slot, r in zip(per_case, results, strict=True):
                    slot[cid] = {"section": section, **r.to_dict()}
        return [(grade(c), c) for c in per_case]


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Suite-level figures: grade counts and shares, pass rate, per-criterion pass rates."""
    n = len(rows)
    counts = {g: sum(1 for r in rows if r["grade"] == g) for g in GRADES}
    per: dict[str, list[bool]] = {}
    sections: dict[str, str] = {}
    for r in rows:
        for cid, c in r["criteria"].items():
            per.setdefault(cid, []).append(bool(c["passed"]))
            sections[cid] = c.get("section", "good")
    return {
        "n": n,
        "grades": counts,
        "shares": {g: (counts[g] / n if n else 0.0) for g in GRADES},
        "pass_rate": (counts["good"] + counts["better"]) / n if n else 0.0,
        "criteria": {cid: sum(v) / len(v) for cid, v in per.items()},
        "sections": sections,
    }
