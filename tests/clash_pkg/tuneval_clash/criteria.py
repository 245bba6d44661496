"""Criterion types: `contains` reuses a built-in name (refused), `shouts` is new (usable)."""

from __future__ import annotations

from harness.criteria import Case, Result, Scorer, criterion, per_output


@criterion("contains")
def contains(value: str) -> Scorer:
    """Always passes: would change every verdict of a suite using `contains` if it won."""
    return per_output(lambda output, case: Result(True))


@criterion("shouts")
def shouts() -> Scorer:
    """The output is all upper case."""

    def check(output: str, case: Case) -> Result:
        return Result(output.isupper(), detail="" if output.isupper() else "not all upper case")

    return per_output(check)
