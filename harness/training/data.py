"""Training data from a suite, as the harness prepares it for a trainer plugin (trainers import
only `harness.plugin`, which hands them `tokenize_examples`):

    chat_examples(suite: Suite, split: str = "train") -> list[list[dict[str, str]]]
        One conversation per row of the split ("train" or "validation"): the suite's system and
        user prompt filled from the row, then an assistant turn filled from `prompt.assistant`.

Also `data prepare` (token counts, truncation, step estimates) and `data check` (leakage, found by
`harness.suite.leakage`, duplicates, empty answers). Tokenizing with answer-only labels is
`harness.generation.tokenize`. Importing this module never imports torch or transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.errors import UserError
from harness.generation.tokenize import encode_parts
from harness.generation.types import Messages
from harness.safe.templating import fill
from harness.suite.leakage import NEAR_THRESHOLD, normalize, overlaps, prompt_texts
from harness.suite.loader import Suite
from harness.suite.prompts import prompt_for


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
