"""How a judge agrees with the humans who labelled the same cases (the Grading page's agreement
table): per judge criterion, the share agreeing and Cohen's kappa, counted only where that
criterion decided the grade."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.comparison import stats
from harness.grading.grader import RANK


def human_agreement(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per judge criterion, how its verdicts agree with human labels (the rows of
    `Store.labelled_results`): share agreeing and Cohen's kappa on pass/fail.

    A criterion's pass/fail and a human's grade of the whole case speak of the same thing only
    where that criterion decided the grade, so only those cases count:

    - a `bad` or `good` criterion decides whether the case is at least `good` when every other
      bad and good criterion passed; its verdict is compared with "the human grade is at least
      good";
    - a `better` criterion decides whether the case is `better` when every other criterion
      passed; its verdict is compared with "the human graded it better".

    Cases where another criterion had already fixed the grade are counted in `left_out`."""
    pairs: dict[str, list[tuple[bool, bool]]] = {}
    judges: dict[str, str] = {}
    left_out: dict[str, int] = {}
    for row in rows:
        results = row.get("criteria") or {}
        for cid, c in results.items():
            info = c.get("info") or {}
            if "judge" not in info or info.get("choice") is None:
                continue
            judges[cid] = str(info["judge"])
            pairs.setdefault(cid, [])
            better = c.get("section") == "better"
            others = [
                o["passed"]
                for oid, o in results.items()
                if oid != cid and (better or o.get("section") != "better")
            ]
            if not all(others):
                left_out[cid] = left_out.get(cid, 0) + 1
                continue
            need = "better" if better else "good"
            pairs[cid].append((bool(c["passed"]), RANK[row["human"]] >= RANK[need]))
    return [
        {
            "criterion": cid,
            "judge": judges[cid],
            "labelled": len(p),
            "left_out": left_out.get(cid, 0),
            "agreement": sum(1 for j, h in p if j == h) / len(p) if p else None,
            "kappa": stats.cohen_kappa(p),
        }
        for cid, p in pairs.items()
    ]
