"""Human grades: the report's only writes, agreement with the automatic grades, and export of
corrected pairs as chat-format JSONL training data."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from harness.comparison import stats
from harness.grading.grader import GRADES, RANK
from harness.store import Store


def save_label(
    db: str,
    run_id: str,
    case_id: str,
    grade: str,
    note: str = "",
    corrected_output: str | None = None,
    reviewer: str = "",
) -> None:
    """Set (or replace) the human grade of one case of one run."""
    if grade not in GRADES:
        raise ValueError(f"grade must be one of {', '.join(GRADES)}, not {grade!r}")
    corrected = corrected_output if corrected_output and corrected_output.strip() else None
    with Store(db) as store:
        store.save_label(
            {
                "run_id": run_id,
                "case_id": case_id,
                "grade": grade,
                "note": note,
                "corrected_output": corrected,
                "reviewer": reviewer,
                "created_at": time.time(),
            }
        )


def delete_label(db: str, run_id: str, case_id: str) -> None:
    with Store(db) as store:
        store.delete_label(run_id, case_id)


def labelled_results(store: Store, run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every label with the result it judges (automatic grade, prompt, output)."""
    return store.labelled_results(run_ids)


def agreement(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Agreement between (human, automatic) grades: share agreeing and Cohen's kappa.

    Kappa is None where it is undefined (fewer than two labels, or both raters always gave the
    same single grade)."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return {"n": 0, "agree": 0, "share": None, "kappa": None}
    agree = sum(1 for h, a in pairs if h == a)
    return {"n": n, "agree": agree, "share": agree / n, "kappa": stats.cohen_kappa(pairs)}


def confusion(pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """counts[human][automatic]."""
    table = {h: dict.fromkeys(GRADES, 0) for h in GRADES}
    for h, a in pairs:
        table[h][a] += 1
    return table


def corrected_pairs(
    store: Store, run_ids: Sequence[str] | None = None, accept: str | None = "better"
) -> list[dict[str, Any]]:
    """Chat-format training examples from the labels.

    A label gives an example when the reviewer wrote a corrected output (used as the answer), or
    when the human grade is at least `accept` (the model's own output is kept as the answer).
    Labels graded below `accept` without a correction give nothing; `accept=None` keeps only
    corrections.
    """
    examples = []
    for row in labelled_results(store, run_ids):
        if row["corrected_output"]:
            answer, source = row["corrected_output"], "corrected"
        elif accept is not None and RANK[row["human"]] >= RANK[accept]:
            answer, source = row["output"], "accepted"
        else:
            continue
        messages = [{"role": m["role"], "content": m["content"]} for m in json.loads(row["prompt"])]
        messages.append({"role": "assistant", "content": answer})
        examples.append(
            {
                "id": row["case_id"],
                "messages": messages,
                "source": {
                    "run_id": row["run_id"],
                    "suite": row["suite"],
                    "model": row["model"],
                    "human_grade": row["human"],
                    "auto_grade": row["auto"],
                    "kind": source,
                },
            }
        )
    return examples


def to_jsonl(examples: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
