"""Train/test leakage: when a test prompt also appears, exactly or nearly, among the training
prompts. Near means Jaccard >= 0.8 on character 5-grams; `near_groups` keeps duplicates together
so a split can put each group on one side. Used by `data check`, the few-shot choice (a test
prompt is never a shot), `suites new`, pairs and synth.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from harness.errors import UserError
from harness.safe.templating import fill, placeholders
from harness.suite.loader import Suite

NEAR_THRESHOLD = 0.8  # Jaccard similarity of character 5-gram sets
_WORDS = re.compile(r"\w+", re.UNICODE)


def normalize(text: str) -> str:
    """Case, punctuation and spacing do not make a prompt new."""
    return " ".join(_WORDS.findall(text.casefold()))


def shingles(text: str, n: int = 5) -> frozenset[str]:
    """Character n-grams of the normalized text: on prompts of a dozen words, word n-grams make
    one changed word look like a different prompt; character n-grams degrade gracefully."""
    norm = normalize(text)
    if len(norm) <= n:
        return frozenset([norm])
    return frozenset(norm[i : i + n] for i in range(len(norm) - n + 1))


def prompt_texts(suite: Suite, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The varying part of each prompt: the user message, and the system message when it has
    placeholders (a constant system prompt would make every pair look alike)."""
    prompt = suite.spec.prompt
    if prompt is None:
        return []
    templated_system = bool(prompt.system and placeholders(prompt.system))
    out = []
    for row in rows:
        if prompt.messages is not None:
            out.append("\n".join(m["content"] for m in row[prompt.messages] if m["role"] == "user"))
            continue
        text = fill(prompt.user or "", row)
        if templated_system and prompt.system:
            text = fill(prompt.system, row) + "\n" + text
        out.append(text)
    return out


def near_matches(
    queries: Sequence[str], pool: Sequence[str], threshold: float = NEAR_THRESHOLD
) -> list[tuple[int, int, float]]:
    """(query index, pool index, Jaccard) of each query's most similar pool entry at or above
    the threshold.

    Prefix filtering keeps this far from all-pairs even when every prompt shares a template: order
    each shingle set rarest first (by frequency in the pool); two sets with Jaccard >= t share at
    least ceil(t * |A|) shingles, so their first |A| - ceil(t * |A|) + 1 shingles in that order
    must meet. Only those prefixes are indexed and looked up; candidates are then scored exactly.
    """
    pool_sh = [shingles(t) for t in pool]
    freq = Counter(s for sh in pool_sh for s in sh)

    def prefix(sh: frozenset[str]) -> list[str]:
        need = math.ceil(threshold * len(sh) - 1e-9)  # 0.8 * 5 is 4.000000000000001
        return sorted(sh, key=lambda s: (freq.get(s, 0), s))[: len(sh) - need + 1]

    index: dict[str, list[int]] = {}
    for j, sh in enumerate(pool_sh):
        for s in prefix(sh):
            index.setdefault(s, []).append(j)
    found = []
    for i, text in enumerate(queries):
        sh = shingles(text)
        candidates = {j for s in prefix(sh) for j in index.get(s, ())}
        best = max(
            ((len(sh & pool_sh[j]) / len(sh | pool_sh[j]), j) for j in candidates), default=None
        )
        if best and best[0] >= threshold:
            found.append((i, best[1], round(best[0], 3)))
    return found


def near_groups(texts: Sequence[str], threshold: float = NEAR_THRESHOLD) -> list[int]:
    """A group number per text (0, 1, ... in order of first appearance): texts that are exact or
    near duplicates by the leakage rule of `near_matches`, and the duplicates of those, share
    one, so that a split can keep each group on one side. Prefix-filtered like `near_matches`:
    with one global order of shingles, two sets at Jaccard >= t meet in their prefixes."""
    sets = [shingles(t) for t in texts]
    freq = Counter(s for sh in sets for s in sh)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index: dict[str, list[int]] = {}
    for i, sh in enumerate(sets):
        need = math.ceil(threshold * len(sh) - 1e-9)
        prefix = sorted(sh, key=lambda s: (freq[s], s))[: len(sh) - need + 1]
        for j in {j for s in prefix for j in index.get(s, ())}:
            if root(i) != root(j) and len(sh & sets[j]) / len(sh | sets[j]) >= threshold:
                parent[root(i)] = root(j)
        for s in prefix:
            index.setdefault(s, []).append(i)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(root(i), len(numbers)) for i in range(len(texts))]


def overlaps(
    suite: Suite, threshold: float = NEAR_THRESHOLD
) -> tuple[list[str], list[str], list[tuple[int, int]], list[tuple[int, int, float]]]:
    """(training prompts, test prompts, exact (test, train) index pairs, near (test, train,
    Jaccard) triples): every test prompt that also appears, or nearly, among the training and
    validation prompts. A test prompt counts once, as exact when it is."""
    if not suite.train:
        raise UserError(f"suite '{suite.name}' has no train data (data.train) to check")
    if suite.spec.prompt is None:
        raise UserError(f"suite '{suite.name}' has no prompt")
    train_p = prompt_texts(suite, list(suite.train) + list(suite.validation or []))
    test_p = prompt_texts(suite, suite.cases)
    train_norm = {normalize(t): i for i, t in enumerate(train_p)}
    exact = [
        (i, train_norm[normalize(t)]) for i, t in enumerate(test_p) if normalize(t) in train_norm
    ]
    exact_ids = {i for i, _ in exact}
    rest = [i for i in range(len(test_p)) if i not in exact_ids]
    near = [
        (rest[i], j, s) for i, j, s in near_matches([test_p[k] for k in rest], train_p, threshold)
    ]
    return train_p, test_p, exact, near


def leaked_cases(suite: Suite, threshold: float = NEAR_THRESHOLD) -> dict[str, dict[str, Any]]:
    """case id -> {"kind": "exact" | "near", "train": the training prompt, "jaccard"} for every
    test case whose prompt the training data holds, or nearly; {} for a suite without train
    data or prompt."""
    if not suite.train or suite.spec.prompt is None:
        return {}
    train_p, _, exact, near = overlaps(suite, threshold)
    out: dict[str, dict[str, Any]] = {}
    for i, j in exact:
        out[str(suite.cases[i]["id"])] = {"kind": "exact", "train": train_p[j], "jaccard": 1.0}
    for i, j, score in near:
        out[str(suite.cases[i]["id"])] = {"kind": "near", "train": train_p[j], "jaccard": score}
    return out
