"""Training data from a suite: chat-formatted examples, tokenized with answer-only labels.

The two functions trainers import:

    chat_examples(suite: Suite, split: str = "train") -> list[list[dict[str, str]]]
        One conversation per row of the split ("train" or "validation"): the suite's system and
        user prompt filled from the row, then an assistant turn filled from `prompt.assistant`.

    tokenize_examples(tokenizer, conversations, max_length: int, *, pad: bool = False)
        -> list[dict[str, list[int]]]
        Each conversation rendered with the tokenizer's own chat template and tokenized; returns
        {"input_ids", "attention_mask", "labels"} per example, with labels = -100 on the prompt
        (system + user + the assistant header) so the loss falls on the answer only. Truncated
        from the right to max_length; with pad=True every example is padded to max_length (pad
        tokens are masked in attention_mask and labels).

Importing this module never imports torch or transformers.
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
from harness.suite.prompts import prompt_for

Messages = list[dict[str, str]]
IGNORE = -100  # the label value PyTorch's cross-entropy skips


def split_rows(suite: Suite, split: str) -> list[dict[str, Any]]:
    if split not in ("train", "validation", "test"):
        raise UserError(f"unknown split '{split}' (train, validation or test)")
    rows = suite.cases if split == "test" else getattr(suite, split)
    if not rows:
        raise UserError(f"suite '{suite.name}' has no {split} data (data.{split} in suite.yaml)")
    return list(rows)


def chat_examples(suite: Suite, split: str = "train") -> list[Messages]:
    """Conversations (system, user, assistant) for every row of a split."""
    prompt = suite.spec.prompt
    if prompt is None or prompt.assistant is None:
        raise UserError(f"suite '{suite.name}' has no prompt.assistant, the answer to train on")
    out: list[Messages] = []
    base = prompt_for(suite)  # training data is asked with the base prompt
    for row in split_rows(suite, split):
        messages: Messages = base.messages(row)
        messages.append({"role": "assistant", "content": fill(prompt.assistant, row)})
        out.append(messages)
    return out


def render_parts(tokenizer: Any, conversation: Messages) -> tuple[str, str]:
    """(prompt text ending with the assistant header, answer text including end-of-turn)."""
    prompt_msgs, answer = conversation[:-1], conversation[-1]
    if answer["role"] != "assistant":
        raise ValueError("the last message of a training conversation must be the assistant's")
    if getattr(tokenizer, "chat_template", None):
        from harness.generation.chat_template import apply

        name = str(getattr(tokenizer, "name_or_path", ""))
        prompt = str(
            apply(tokenizer, prompt_msgs, name, tokenize=False, add_generation_prompt=True)
        )
        full = str(apply(tokenizer, conversation, name, tokenize=False))
        if full.startswith(prompt):
            return prompt, full[len(prompt) :]
        # Templates that rewrite earlier turns (e.g. strip reasoning) break the prefix property;
        # fall back to the generation prompt plus the bare answer and end-of-sequence.
        return prompt, answer["content"] + (tokenizer.eos_token or "")
    # No chat template: the same plain layout the generation engine uses.
    prompt = "\n\n".join(m["content"] for m in prompt_msgs) + "\n\n"
    return prompt, answer["content"] + (tokenizer.eos_token or "")


def encode_parts(
    tokenizer: Any, conversations: Sequence[Messages]
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) per conversation, untruncated. Prompt and answer are tokenized
    separately and concatenated later, so the masked/trained boundary is exact."""
    if not conversations:
        return []
    parts = [render_parts(tokenizer, c) for c in conversations]
    p_ids = tokenizer([p for p, _ in parts], add_special_tokens=False)["input_ids"]
    a_ids = tokenizer([a for _, a in parts], add_special_tokens=False)["input_ids"]
    return [(list(p), list(a)) for p, a in zip(p_ids, a_ids, strict=True)]


def tokenize_examples(
    tokenizer: Any, conversations: Sequence[Messages], max_length: int, *, pad: bool = False
) -> list[dict[str, list[int]]]:
    """input_ids, attention_mask and labels (-100 on the prompt), truncated to max_length."""
    if max_length < 2:
        raise UserError("max length must be at least 2 tokens")
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    out: list[dict[str, list[int]]] = []
    for p, a in encode_parts(tokenizer, conversations):
        ids = (p + a)[:max_length]
        labels = ([IGNORE] * len(p) + a)[:max_length]
        mask = [1] * len(ids)
        if pad and len(ids) < max_length:
            extra = max_length - len(ids)
            ids += [pad_id] * extra
            labels += [IGNORE] * extra
            mask += [0] * extra
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


# --- data prepare: what a training run on this data will see ---------------------------------


def prepare_report(
    suite: Suite, tokenizer: Any, max_length: int, batch_size: int, epochs: int
) -> dict[str, Any]:
    """Token counts, truncation and step estimates for the train (and validation) split."""
    if batch_size < 1 or epochs < 1:
        raise UserError("--batch-size and --epochs must be at least 1")
    report: dict[str, Any] = {"suite": suite.name, "max_length": max_length, "splits": {}}
    for split in ("train", "validation"):
        if split == "validation" and not suite.validation:
            continue
        parts = encode_parts(tokenizer, chat_examples(suite, split))
        n = len(parts)
        prompt = [len(p) for p, _ in parts]
        answer = [len(a) for _, a in parts]
        truncated = sum(1 for p, a in parts if len(p) + len(a) > max_length)
        report["splits"][split] = {
            "examples": n,
            "prompt_tokens": sum(prompt),
            "answer_tokens": sum(answer),
            "mean_prompt_tokens": round(sum(prompt) / n, 1),
            "mean_answer_tokens": round(sum(answer) / n, 1),
            "longest": max(p + a for p, a in zip(prompt, answer, strict=True)),
            "truncated": truncated,
            "truncated_share": round(truncated / n, 4),
            # Answers cut away entirely teach nothing: the prompt alone fills max_length.
            "no_answer_left": sum(1 for p in prompt if p >= max_length),
            "trained_tokens": sum(min(len(a), max(0, max_length - len(p))) for p, a in parts),
            "tokens_after_truncation": sum(min(len(p) + len(a), max_length) for p, a in parts),
            "tokens_padded": n * max_length,
        }
    n_train = report["splits"]["train"]["examples"]
    steps = -(-n_train // batch_size)
    report.update(batch_size=batch_size, epochs=epochs, steps_per_epoch=steps, steps=steps * epochs)
    return report


# --- data check: leakage and hygiene ----------------------------------------------------------

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


def check_report(suite: Suite, threshold: float = NEAR_THRESHOLD) -> dict[str, Any]:
    """Train/test leakage (exact and near-duplicate prompts), duplicates and empty answers."""
    train_p, test_p, exact, near = overlaps(suite, threshold)  # raises without train data
    train = list(suite.train or [])
    train_rows = train + list(suite.validation or [])
    answers = chat_answers(suite, train_rows)
    seen: dict[str, int] = {}
    duplicates, conflicts = 0, 0
    for i, text in enumerate(prompt_texts(suite, train)):
        key = normalize(text)
        if key in seen:
            same = normalize(answers[seen[key]]) == normalize(answers[i])
            duplicates += same
            conflicts += not same
        else:
            seen[key] = i
    test_norm = [normalize(t) for t in test_p]
    empty = {"train": sum(1 for a in answers[: len(train)] if not a.strip())}
    if suite.validation:
        empty["validation"] = sum(1 for a in answers[len(train) :] if not a.strip())

    def pair(i: int, j: int, score: float | None = None) -> dict[str, Any]:
        d = {"test_id": suite.cases[i]["id"], "test": test_p[i], "train": train_p[j]}
        return d | ({"jaccard": score} if score is not None else {})

    from harness.training import diversity

    return {
        "suite": suite.name,
        "test": len(test_p),
        "train": len(train),
        "validation": len(suite.validation or []),
        "exact_overlap": len(exact),
        "near_overlap": len(near),
        "near_threshold": threshold,
        "train_duplicates": duplicates,
        "train_conflicts": conflicts,
        "test_duplicates": len(test_norm) - len(set(test_norm)),
        "empty_answers": empty,
        "exact_examples": [pair(i, j) for i, j in exact[:5]],
        "near_examples": [pair(i, j, s) for i, j, s in near[:5]],
        "train_diversity": diversity.report(train, train_p[: len(train)], answers[: len(train)]),
    }


def chat_answers(suite: Suite, rows: Sequence[dict[str, Any]]) -> list[str]:
    prompt = suite.spec.prompt
    if prompt is None or prompt.assistant is None:
        return ["" for _ in rows]
    return [fill(prompt.assistant, r) for r in rows]
