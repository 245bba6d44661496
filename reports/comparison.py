"""The comparison behind the Compare page: computed once per pair of runs, then filtered.

`harness.comparison.compare.compare_runs` does the statistics; this module caches it and flattens
its pairs into a table that filters in milliseconds on thousands of cases."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from harness.grading.grader import GRADES
from reports.data import Stamp, reader

CHANGES = ("regressed", "improved", "unchanged")
CRITERION_STATES = {
    "changed": "changed between A and B",
    "fails_b": "fails in B",
    "fails_a": "fails in A",
}
LEAK_FILTERS = {
    "all": "all cases",
    "leaked": "only prompts in the training data",
    "clean": "only prompts not in the training data",
}
CELLS = [f"{a}→{b}" for a in GRADES for b in GRADES]  # transition cells, "grade A→grade B"


@dataclass
class Compared:
    """A comparison and its pairs as a flat table (row i describes cmp.pairs[i])."""

    cmp: Any
    table: pd.DataFrame
    criteria: list[str]
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def charts(self) -> dict[str, dict[str, Any]]:
        """Vega-Lite specs, built once on first use: altair and its validation take a second,
        which the Overview, needing no chart, does not pay."""
        if not self.specs:
            from reports import charts

            self.specs.update(
                transitions=charts.transitions(self.cmp.transitions).to_dict(),
                criteria=charts.criteria(self.cmp.criteria, self.cmp.sections).to_dict(),
            )
        return self.specs


@st.cache_resource(show_spinner="Comparing the two runs…", max_entries=8)
def compared(
    db: str, run_a: str, run_b: str, force: bool, version_a: Stamp, version_b: Stamp
) -> Compared:
    from harness.comparison.compare import compare_runs

    with reader(db) as store:
        cmp = compare_runs(store, run_a, run_b, force=force)
    return Compared(cmp, pair_table(cmp.pairs), criterion_ids(cmp.pairs))


@st.cache_resource(show_spinner=False, max_entries=8)
def without(
    db: str, run_a: str, run_b: str, force: bool, versions: tuple[Stamp, Stamp],
    leaked: frozenset[str],
) -> Any:  # fmt: skip
    """The same comparison on the cases whose prompts are not in the training data: how much of
    the verdict the leaked cases carry. None when no case is left."""
    from harness.comparison.compare import compare_rows

    c = compared(db, run_a, run_b, force, *versions)
    kept = [p for p in c.cmp.pairs if str(p.case_id) not in leaked]
    if not kept:
        return None
    return compare_rows(c.cmp.run_a, c.cmp.run_b, [p.a for p in kept], [p.b for p in kept])


def criterion_ids(pairs: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for p in pairs:
        for side in (p.a, p.b):
            for cid in side.get("criteria", {}):
                seen.setdefault(cid, None)
    return list(seen)


def pair_table(pairs: list[Any]) -> pd.DataFrame:
    rows = []
    for i, p in enumerate(pairs):
        ca, cb = p.a.get("criteria", {}), p.b.get("criteria", {})
        ids = set(ca) | set(cb)
        rows.append(
            {
                "i": i,
                "case_id": str(p.case_id),
                "change": p.change,
                **share_columns(p),
                "grade_a": p.a.get("grade"),
                "grade_b": p.b.get("grade"),
                "fails_a": {c for c in ids if not ca.get(c, {}).get("passed", True)},
                "fails_b": {c for c in ids if not cb.get(c, {}).get("passed", True)},
                "changed": {
                    c for c in ids if ca.get(c, {}).get("passed") != cb.get(c, {}).get("passed")
                },
                # What search looks in: the case's own question and both outputs, never the
                # few-shot examples or system text a prompt variant puts before the question.
                "text": "\n".join(
                    (
                        str(p.case_id),
                        own_question(p.a.get("prompt", "")),
                        p.a.get("output", ""),
                        p.b.get("output", ""),
                    )
                ),
            }
        )
    return pd.DataFrame(rows)


def own_question(prompt: str) -> str:
    """The last user message of a stored prompt (JSON chat messages): the case's own."""
    import json

    try:
        messages = json.loads(prompt)
        return next(
            str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"
        )
    except (ValueError, TypeError, AttributeError, StopIteration):
        return str(prompt)


def searcher(search: str, regex: bool = False) -> Callable[[str], bool]:
    """A test for one row's text: a case-insensitive substring, or a regular expression
    (any case, ^ and $ at each line, matched under a time limit: `harness.safe.regex`). Raises
    ValueError for a bad pattern."""
    from harness.safe import regex as saferegex

    needle = search.strip()
    if not regex:
        folded = needle.casefold()
        return lambda text: folded in text.casefold()
    rx = saferegex.compile(needle, saferegex.IGNORECASE | saferegex.MULTILINE)

    def found(text: str) -> bool:
        try:
            return saferegex.search(rx, text) is not None
        except saferegex.RegexTimeout:
            return False

    return found


def filter_pairs(
    table: pd.DataFrame,
    changes: list[str] | None = None,
    criterion: str | None = None,
    state: str = "changed",
    search: str = "",
    *,
    cell: str | None = None,
    leaked: Collection[str] = (),
    leak: str = "all",
    regex: bool = False,
    fields: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Rows matching every given filter; `changes` None or empty keeps all changes. `cell` is a
    transition 'good→bad'; `leak` keeps all cases, only the `leaked` ones, or only the others.
    `search` looks in the case id, the case's own question and `fields` (its suite fields, by
    case id), and both outputs; with `regex` it is a regular expression."""
    if table.empty:
        return table
    mask = pd.Series(True, index=table.index)
    if changes:
        mask &= table["change"].isin(changes)
    if cell:
        a, b = cell.split("→")
        mask &= (table["grade_a"] == a) & (table["grade_b"] == b)
    if criterion:
        mask &= table[state].map(lambda s: criterion in s)
    if leak != "all":
        inside = table["case_id"].isin(set(leaked))
        mask &= inside if leak == "leaked" else ~inside
    if search.strip():
        found = searcher(search, regex)
        own = fields or {}
        hits = [
            found(text + "\n" + own.get(cid, ""))
            for text, cid in zip(table["text"], table["case_id"], strict=True)
        ]
        mask &= pd.Series(hits, index=table.index, dtype=bool)
    return table[mask]


def share_columns(pair: Any) -> dict[str, Any]:
    """k samples per case: the change in pass share and whether either side is flaky."""
    from harness.comparison.sampling import case_outcome, sample_grades

    a, b = case_outcome(sample_grades(pair.a)), case_outcome(sample_grades(pair.b))
    return {
        "share_change": b["pass_share"] - a["pass_share"],
        "flaky": bool(a["flaky"] or b["flaky"]),
    }


def ordered(shown: pd.DataFrame, by_share: bool = False) -> pd.DataFrame:
    """Regressions first, then improvements, then the rest; suite order inside each. `by_share`:
    by the change in pass share instead, the largest fall first."""
    if shown.empty:
        return shown
    if by_share:
        return shown.sort_values(by=["share_change", "i"])
    order = {ch: i for i, ch in enumerate(CHANGES)}
    return shown.sort_values(
        by=["change", "i"], key=lambda s: s.map(order) if s.name == "change" else s
    )


def with_cell_change(picked: list[str], cell: str) -> list[str]:
    """The Change pills after a click on the grid's `cell`: kept as they are, and widened by the
    cell's own change when they leave it out, so a click never lists nothing and the pills say
    what filters the list. No pills means any change; no cell changes nothing."""
    if not cell or not picked:
        return picked
    a, b = (GRADES.index(g) for g in cell.split("→"))
    change = "improved" if b > a else "regressed" if b < a else "unchanged"
    return [ch for ch in CHANGES if ch in picked or ch == change]
