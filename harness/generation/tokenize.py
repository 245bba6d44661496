"""Conversations as token ids for training: the chat template's prompt/answer split, and
answer-only labels. `harness.plugin` hands `tokenize_examples` to trainers:

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

from collections.abc import Sequence
from typing import Any

from harness.errors import UserError
from harness.generation.types import Messages

IGNORE = -100  # the label value PyTorch's cross-entropy skips


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
