"""How varied a training split is, for `tuneval data check`: the course ranks real, diverse data
above generated, homogeneous data, so the check reports the generated share (rows marked
`"source": "generated"`, as `tuneval data synth` writes them) and, for all rows and for each
kind, distinct n-grams and the spread of answer lengths."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


def distinct(texts: Sequence[str], n: int) -> float | None:
    """Distinct word n-grams over all n-grams of the texts (distinct-n): 1.0 when nothing
    repeats, low when the rows say the same things in the same words."""
    total, seen = 0, set()
    for text in texts:
        toks = [w.casefold() for w in _WORD.findall(text)]
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return round(len(seen) / total, 4) if total else None


def length_spread(texts: Sequence[str]) -> dict[str, float]:
    """Answer length in words: mean, standard deviation, 10th and 90th percentiles."""
    n = np.array([len(_WORD.findall(t)) for t in texts], dtype=float)
    if n.size == 0:
        return {"mean": 0.0, "std": 0.0, "p10": 0.0, "p90": 0.0}
    p10, p90 = np.quantile(n, [0.1, 0.9])
    return {
        "mean": round(float(n.mean()), 1),
        "std": round(float(n.std()), 1),
        "p10": float(p10),
        "p90": float(p90),
    }


def describe(prompts: Sequence[str], answers: Sequence[str]) -> dict[str, Any]:
    pairs = [f"{p}\n{a}" for p, a in zip(prompts, answers, strict=True)]
    return {
        "rows": len(pairs),
        "distinct_1": distinct(pairs, 1),
        "distinct_2": distinct(pairs, 2),
        "answer_words": length_spread(answers),
    }


def report(
    rows: Sequence[dict[str, Any]], prompts: Sequence[str], answers: Sequence[str]
) -> dict[str, Any]:
    """Generated share and diversity of a split: `all` rows, and `by_source` (generated and
    other) when it holds both."""
    generated = [r.get("source") == "generated" for r in rows]
    out: dict[str, Any] = {
        "generated": sum(generated),
        "generated_share": round(sum(generated) / len(rows), 4) if rows else 0.0,
        "all": describe(prompts, answers),
    }
    if any(generated) and not all(generated):
        out["by_source"] = {}
        for name, keep in (("generated", True), ("other", False)):
            idx = [i for i, g in enumerate(generated) if g == keep]
            out["by_source"][name] = describe([prompts[i] for i in idx], [answers[i] for i in idx])
    return out
