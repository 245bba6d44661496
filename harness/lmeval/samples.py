"""lm-eval's logged samples as tuneval result rows: one case per document.

Multiple choice: the output is the choice ranked first by log-likelihood; criterion `correct`
(section good) is lm-eval's `acc`, with the gold choice's probability among the choices as the
score. When the task lists `acc_norm`, criterion `correct-norm` (section better) is lm-eval's
`acc_norm` for that document: the choice ranked first by log-likelihood per character. So pass
rate = acc, and a case is `better` when both agree it is right.

generate_until: one criterion per filter pipeline, named after it (`strict-match`,
`flexible-extract`; a task without `filter_list` has lm-eval's single pipeline "none", named
after its metric instead), each holding lm-eval's own per-document metric value for that
pipeline (exact_match: 1 passes). All are in section good: a case passes when every pipeline's
answer scores. The output is the first pipeline's filtered answer.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

from harness.errors import UserError


def rows_for(cfg: dict[str, Any], samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    task = str(cfg["task"])
    if cfg.get("output_type", "generate_until") == "multiple_choice":
        return choice_rows(task, cfg, samples)
    return generation_rows(task, cfg, samples)


def _case_id(task: str, sample: dict[str, Any]) -> str:
    doc = sample["doc"]
    own = doc.get("id") if isinstance(doc, dict) else None
    return f"{task}/{own if own is not None else sample['doc_id']}"


def _prompt(sample: dict[str, Any]) -> str:
    context = sample["arguments"][0][0] if sample.get("arguments") else ""
    return json.dumps([{"role": "user", "content": context}])


def _softmax(logliks: list[float]) -> list[float]:
    top = max(logliks)
    weights = [math.exp(x - top) for x in logliks]
    total = sum(weights)
    return [w / total for w in weights]


def _gold(task: str, target: Any, choices: list[str]) -> list[int]:
    """The gold choice indices, as lm-eval reads doc_to_target for multiple choice."""
    golds = target if isinstance(target, list) else [target]
    out = []
    for g in golds:
        if isinstance(g, str) and g in choices:
            g = choices.index(g)
        if not isinstance(g, int) or isinstance(g, bool) or not 0 <= g < len(choices):
            raise UserError(f"lm-eval task '{task}': gold answer {g!r} is not one of the choices")
        out.append(g)
    return out


def choice_rows(task: str, cfg: dict[str, Any], samples: list[dict[str, Any]]) -> list[dict]:
    delimiter = str(cfg.get("target_delimiter", " "))
    rows = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        continuations = [str(a[1]) for a in s["arguments"]]
        # lm-eval normalises by the length of the choice itself, without the delimiter
        raw = [c[len(delimiter) :] if c.startswith(delimiter) else c for c in continuations]
        shown = [c.strip() for c in continuations]
        logliks = [float(r[0]) for r in s["filtered_resps"]]
        gold = _gold(task, s["target"], raw)
        picked = max(range(len(logliks)), key=lambda i: logliks[i])
        p_gold = max(_softmax(logliks)[g] for g in gold)
        correct = picked in gold
        detail = f"picked '{shown[picked]}'"
        if not correct:
            detail += f", expected '{shown[gold[0]]}'"
        criteria: dict[str, dict[str, Any]] = {
            "correct": {
                "section": "good",
                "passed": correct,
                "score": round(p_gold, 4),
                "detail": f"{detail} (p={p_gold:.2f})",
                # what a reviewer needs to grade the item by hand: the options and the answer
                "choices": shown,
                "gold": [shown[g] for g in gold],
            }
        }
        grade = "good" if correct else "bad"
        if "acc_norm" in s:
            normed = [ll / max(len(c), 1) for ll, c in zip(logliks, raw, strict=True)]
            pick_norm = max(range(len(normed)), key=lambda i: normed[i])
            norm_ok = float(s["acc_norm"]) >= 1.0
            criteria["correct-norm"] = {
                "section": "better",
                "passed": norm_ok,
                "score": float(s["acc_norm"]),
                "detail": f"per character, picked '{shown[pick_norm]}'",
            }
            grade = "better" if correct and norm_ok else grade
        rows.append(
            {
                "case_id": _case_id(task, s),
                "prompt": _prompt(s),
                "output": shown[picked],
                "grade": grade,
                "criteria": criteria,
            }
        )
    return rows


def _pipelines(cfg: dict[str, Any]) -> list[str]:
    names = [p["name"] for p in cfg.get("filter_list") or [] if isinstance(p, dict)]
    return names or ["none"]


def _answer(value: Any) -> str:
    while isinstance(value, list) and value:  # pipelines without take_first keep a list
        value = value[0]
    return "" if value is None else str(value)


def generation_rows(task: str, cfg: dict[str, Any], samples: list[dict[str, Any]]) -> list[dict]:
    by_doc: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for s in samples:
        by_doc[s["doc_id"]][s["filter"]] = s
    pipelines = _pipelines(cfg)
    rows = []
    for doc_id in sorted(by_doc):
        per_filter = by_doc[doc_id]
        first = per_filter[pipelines[0]]
        criteria: dict[str, dict[str, Any]] = {}
        for name in pipelines:
            s = per_filter[name]
            metric = next((m for m in s.get("metrics", []) if m in s), "exact_match")
            value = float(s.get(metric, 0.0))
            answer = _answer(s["filtered_resps"])
            target = s["target"]
            ok = value >= 1.0
            criteria[metric if name == "none" else name] = {
                "section": "good",
                "passed": ok,
                "score": value,
                "detail": f"answer '{answer}'" + ("" if ok else f", expected {target!r}"),
            }
        rows.append(
            {
                "case_id": _case_id(task, first),
                "prompt": _prompt(first),
                "output": _answer(first["filtered_resps"]),
                "grade": "good" if all(c["passed"] for c in criteria.values()) else "bad",
                "criteria": criteria,
            }
        )
    return rows
