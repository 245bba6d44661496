"""Where did it change? A comparison cut into slices by a case field, and ad-hoc probes.

**Slices.** `slice_comparison(c, cases, fields)` groups the paired cases of a comparison by the
value of a field and gives each group its own paired figures: n, the two pass rates, the paired
difference with its bootstrap interval, the exact McNemar p-value, the smallest change detectable
at that n, and a verdict by the comparison's own rule. What a field is, in the order looked up:

- `task`: the lm-eval task of an lm-eval item (its case id is `task/doc`), `(cases)` for the
  suite's own test cases;
- `tags`: each tag of a case is a slice (a case with two tags is in two slices);
- `source`: an imported case's source (its file, or its lm-eval task);
- a field of the case (`module`, `kind`, …), then a key of its `metadata`; `metadata.KEY` names a
  metadata key explicitly. A case without the field is in the slice `(none)`.

Many slices mean many tests, and some will look significant by chance: the McNemar p-values of
all slices in one call (every `--by` field together) are adjusted with Holm's step-down method,
which keeps the chance of any false alarm at alpha without assuming the tests independent, and
the verdicts use the adjusted values. A slice with fewer than `MIN_CASES` paired cases gets no
test (and does not count in the adjustment): its verdict is `too few cases`.

**Probes.** `probe(c, text)` asks one question of every output: a regular expression (searched
under the suite regexes' time limit, `harness.safe.regex`) or a length expression such as
`words > 60`, `chars <= 200`, `lines >= 3`. It reports the share of outputs that match on each
side, the paired difference with its interval and McNemar p-value, and the cases where the two
sides differ. A probe changes no grade; one worth keeping becomes a `regex` criterion
(`as_criterion_yaml`).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.comparison import stats
from harness.comparison.compare import Comparison, Delta, Pair, decide, passed
from harness.errors import UserError
from harness.safe import regex as saferegex

MIN_CASES = 10  # a slice smaller than this gets no test and no verdict
NONE = "(none)"
OWN_CASES = "(cases)"


@dataclass
class Slice:
    field: str
    value: str
    n: int
    pass_rate: Delta
    b01: int  # fail -> pass
    b10: int  # pass -> fail
    p_value: float | None  # exact McNemar; None when too few cases
    p_adjusted: float | None  # Holm over every tested slice of the call
    mde: float  # smallest detectable pass-rate change at this n (inf: none)
    verdict: str
    case_ids: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "value": self.value,
            "n": self.n,
            "pass_rate": self.pass_rate.to_json(),
            "b01": self.b01,
            "b10": self.b10,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "mde": None if math.isinf(self.mde) else self.mde,
            "verdict": self.verdict,
            "case_ids": self.case_ids,
        }


def case_table(suite: Any) -> dict[str, dict[str, Any]]:
    """case id -> the suite's case, for looking up the fields slices are made from."""
    return {str(c["id"]): c for c in suite.cases}


def values_of(case_id: str, case: dict[str, Any] | None, name: str) -> list[str]:
    """The slice values of one case for one field (several for `tags`; `(none)` when absent)."""
    if name == "task":
        if case is None and "/" in case_id:
            return [case_id.split("/", 1)[0]]
        return [OWN_CASES]
    if case is None:
        return [NONE]
    if name == "tags":
        tags = case.get("tags")
        if isinstance(tags, list) and tags:
            return sorted({_text(t) for t in tags})
        return [NONE] if tags in (None, [], "") else [_text(tags)]
    if name == "source":
        source = case.get("source")
        if isinstance(source, dict):
            for key in ("file", "task", "eval"):
                if key in source:
                    return [_text(source[key])]
        return [NONE] if source is None else [_text(source)]
    meta = case.get("metadata")
    metadata: dict[str, Any] = meta if isinstance(meta, dict) else {}
    if name.startswith("metadata."):
        value = metadata.get(name.removeprefix("metadata."))
    else:
        value = case.get(name, metadata.get(name))
    return [NONE] if value is None or value == "" else [_text(value)]


def _text(value: Any) -> str:
    return str(value) if not isinstance(value, float) or not value.is_integer() else str(int(value))


def slice_comparison(
    c: Comparison,
    cases: dict[str, dict[str, Any]],
    fields: Sequence[str],
    *,
    min_cases: int = MIN_CASES,
    n_boot: int = 2000,
) -> list[Slice]:
    """One row per (field, value), sorted by field then by the value's size; Holm-adjusted."""
    known = _known_fields(cases)
    for name in fields:
        if name not in known and not name.startswith("metadata."):
            raise UserError(
                f"no case has a field '{name}' to slice by (fields: {', '.join(sorted(known))})"
            )
    rows: list[Slice] = []
    for name in fields:
        groups: dict[str, list[Pair]] = {}
        for p in c.pairs:
            for value in values_of(p.case_id, cases.get(p.case_id), name):
                groups.setdefault(value, []).append(p)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        rows += [_slice(c, name, value, pairs, min_cases, n_boot) for value, pairs in ordered]
    _adjust(rows, c.alpha, c.meaningful)
    return rows


def _known_fields(cases: dict[str, dict[str, Any]]) -> set[str]:
    names = {"task", "tags", "source"}
    for case in cases.values():
        names |= {k for k in case if not k.startswith("__")}
        if isinstance(case.get("metadata"), dict):
            names |= set(case["metadata"])
    return names


def _slice(
    c: Comparison, name: str, value: str, pairs: list[Pair], min_cases: int, n_boot: int
) -> Slice:
    pa = [passed(p.a["grade"]) for p in pairs]
    pb = [passed(p.b["grade"]) for p in pairs]
    b01 = sum(1 for x, y in zip(pa, pb, strict=True) if not x and y)
    b10 = sum(1 for x, y in zip(pa, pb, strict=True) if x and not y)
    n = len(pairs)
    delta, low, high = stats.paired_bootstrap(pa, pb, n_boot=n_boot, seed=0)
    rate = Delta(sum(pa) / n, sum(pb) / n, delta, low, high)
    tested = n >= min_cases
    return Slice(
        field=name,
        value=value,
        n=n,
        pass_rate=rate,
        b01=b01,
        b10=b10,
        p_value=float(stats.mcnemar(b01, b10)) if tested else None,
        p_adjusted=None,
        mde=stats.mde(n, (b01 + b10) / n, c.alpha),
        verdict="" if tested else "too few cases",
        case_ids=[p.case_id for p in pairs],
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    m, running, out = len(p_values), 0.0, [1.0] * len(p_values)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def _adjust(rows: list[Slice], alpha: float, meaningful: float) -> None:
    tested = [s for s in rows if s.p_value is not None]
    for s, adjusted in zip(tested, holm([s.p_value or 0.0 for s in tested]), strict=True):
        s.p_adjusted = adjusted
        moved = s.b01 + s.b10
        s.verdict, _ = decide(
            adjusted, 1.0, s.b01, s.b10, moved, 0, s.mde, alpha=alpha, meaningful=meaningful
        )


# --- probes ----------------------------------------------------------------------------------

_LENGTH = re.compile(r"^\s*(words|chars|lines)\s*(<=|>=|==|!=|<|>)\s*(\d{1,9})\s*$")
_OPS: dict[str, Callable[[int, int], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip
_MEASURE: dict[str, Callable[[str], int]] = {
    "words": lambda s: len(s.split()),
    "chars": len,
    "lines": lambda s: len(s.splitlines()),
}


@dataclass
class Probe:
    text: str
    kind: str  # regex | length
    n: int
    share: Delta  # share of outputs that match, A and B, paired
    b01: int  # cases matching in B only
    b10: int  # cases matching in A only
    p_value: float
    only_a: list[str]
    only_b: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.text,
            "kind": self.kind,
            "n": self.n,
            "share": self.share.to_json(),
            "b01": self.b01,
            "b10": self.b10,
            "p_value": self.p_value,
            "only_a": self.only_a,
            "only_b": self.only_b,
        }


def matcher(text: str) -> tuple[str, Callable[[str], bool]]:
    """('length' | 'regex', a test of one output). A malformed regex is a UserError."""
    m = _LENGTH.match(text)
    if m:
        measure, op, bound = _MEASURE[m.group(1)], _OPS[m.group(2)], int(m.group(3))
        return "length", lambda s: op(measure(s), bound)
    if not text:
        raise UserError("an empty probe matches every output: give a regex or e.g. 'words > 60'")
    try:
        rx = saferegex.compile(text)
    except ValueError as e:
        raise UserError(f"probe: {e}") from None
    return "regex", lambda s: saferegex.search(rx, s) is not None


def probe(c: Comparison, text: str, *, n_boot: int = 2000) -> Probe:
    """Ask one question of every paired output; a regex that runs out of time is a UserError."""
    kind, test = matcher(text)
    hits_a, hits_b = [], []
    for p in c.pairs:
        try:
            hits_a.append(test(p.a["output"]))
            hits_b.append(test(p.b["output"]))
        except saferegex.RegexTimeout as e:
            raise UserError(f"probe on case '{p.case_id}': {e}") from None
    ids = [p.case_id for p in c.pairs]
    b01 = sum(1 for x, y in zip(hits_a, hits_b, strict=True) if not x and y)
    b10 = sum(1 for x, y in zip(hits_a, hits_b, strict=True) if x and not y)
    n = len(ids)
    delta, low, high = stats.paired_bootstrap(hits_a, hits_b, n_boot=n_boot, seed=0)
    return Probe(
        text=text,
        kind=kind,
        n=n,
        share=Delta(sum(hits_a) / n, sum(hits_b) / n, delta, low, high),
        b01=b01,
        b10=b10,
        p_value=float(stats.mcnemar(b01, b10)),
        only_a=[i for i, x, y in zip(ids, hits_a, hits_b, strict=True) if x and not y],
        only_b=[i for i, x, y in zip(ids, hits_a, hits_b, strict=True) if y and not x],
    )


def as_criterion_yaml(p: Probe, criterion_id: str = "probe") -> str:
    """The rubric lines that keep a probe as a check, to paste into suite.yaml: a regex as a
    `good` requirement (the answer must match) or as a `bad` detector (a match makes the case
    bad); `words > N` as a `bad` length detector. Braces are doubled: in a criterion's pattern
    `{field}` is a case field."""
    import json

    if p.kind == "length":
        m = _LENGTH.match(p.text)
        assert m is not None
        measure, op, bound = m.group(1), m.group(2), int(m.group(3))
        unit = {"words": "max_words", "chars": "max_chars"}.get(measure)
        if unit is None or op not in (">", ">="):
            return f"# '{p.text}' has no one-line criterion: `length` bounds words or chars"
        limit = bound - (op == ">=")
        return f"bad:\n  - {{id: {criterion_id}, type: length, {unit}: {limit}}}"
    pattern = p.text.replace("{", "{{").replace("}", "}}")
    absent = f"^(?![\\s\\S]*(?:{pattern}))"
    return (
        "# the answer must match:\n"
        f"good:\n  - {{id: {criterion_id}, type: regex, pattern: {json.dumps(pattern)}}}\n"
        "# or: a match makes the case bad\n"
        f"bad:\n  - {{id: no-{criterion_id}, type: regex, pattern: {json.dumps(absent)}}}"
    )


def suite_slices(suite: Any) -> list[str]:
    """The fields a suite declares worth slicing by (`slices:` in suite.yaml), first offered."""
    return list(getattr(suite.spec, "slices", []) or [])


def fields_in(cases: Iterable[dict[str, Any]]) -> list[str]:
    """Fields a person might slice by: declared first elsewhere; here every non-unique field."""
    table = {str(c.get("id")): c for c in cases}
    names = sorted(_known_fields(table) - {"id", "metadata"})
    out = []
    for name in names:
        values = {v for cid, case in table.items() for v in values_of(cid, case, name)}
        if 1 < len(values) < max(2, len(table)):
            out.append(name)
    return out
