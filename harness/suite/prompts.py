"""Prompts: a suite's base prompt and its named variants, the prompt-engineering baselines that
ride beside base and candidate in a comparison.

A variant (`prompt.variants` in suite.yaml) replaces the system or user text, and/or shows k
worked examples as user/assistant turns before the case. The examples come from the train (or
validation) split, never from the test cases, and are chosen once by the variant's seed: every
case of every run of the variant sees the same ones. A row whose prompt repeats a test prompt,
exactly or nearly (the rule of `tuneval data check`), is never chosen: a leaked answer would turn
a prompt baseline into a lookup.

A variant is part of a run's identity and its cache keys (the messages differ), not of the suite
fingerprint: runs of two variants of one suite file pair case by case.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import UserError
from harness.generation.types import Messages
from harness.safe.templating import fill

if TYPE_CHECKING:
    from harness.suite.loader import Suite


BASE = ""  # the base prompt, as `runs.prompt_variant` stores it


@dataclass(frozen=True)
class Prompt:
    """The templates one run fills for each case, and the examples shown before it."""

    name: str  # BASE, or the variant's name
    system: str | None
    user: str
    assistant: str | None
    shots: tuple[dict[str, Any], ...] = ()
    conversation_field: str | None = None  # `prompt.messages`: each case carries its own chat

    def messages(self, case: dict[str, Any]) -> Messages:
        if self.conversation_field is not None:
            chat = case[self.conversation_field]
            return [{"role": m["role"], "content": m["content"]} for m in chat]
        out: Messages = []
        if self.system:
            out.append({"role": "system", "content": fill(self.system, case)})
        for shot in self.shots:
            assert self.assistant is not None  # the loader refuses shots without it
            out.append({"role": "user", "content": fill(self.user, shot)})
            out.append({"role": "assistant", "content": fill(self.assistant, shot)})
        out.append({"role": "user", "content": fill(self.user, case)})
        return out


def prompt_for(suite: Suite, name: str = BASE) -> Prompt:
    """The base prompt, or the named variant; a UserError naming the variants there are."""
    spec = suite.spec.prompt
    if spec is None:
        raise UserError(f"suite '{suite.name}' has no prompt")
    if name == BASE:
        return Prompt(BASE, spec.system, spec.user or "", spec.assistant, (), spec.messages)
    if name not in spec.variants:
        have = ", ".join(spec.variants) or "none: add prompt.variants to its suite.yaml"
        raise UserError(f"suite '{suite.name}' has no prompt variant '{name}' (variants: {have})")
    v = spec.variants[name]
    system = spec.system if v.system is None else v.system
    user = (spec.user or "") if v.user is None else v.user
    return Prompt(name, system, user, spec.assistant, tuple(suite.shots.get(name, ())))


def arm(model: str, variant: str | None) -> str:
    """How a run is named wherever it is shown: the model, and its prompt variant if any."""
    return f"{model} + {variant}" if variant else model


def pick_shots(
    rows: Sequence[dict[str, Any]],
    k: int,
    seed: int,
    user: str,
    assistant: str,
    cases: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], int]:
    """(k examples in a seeded order, how many rows were left out): rows whose prompt repeats a
    test case's, exactly or nearly, and rows with an empty answer are never shown. Fewer than k
    come back only when too few rows qualify."""
    from harness.suite.leakage import near_matches, normalize

    tests = [fill(user, c) for c in cases]
    seen = {normalize(t) for t in tests}
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    chosen: list[dict[str, Any]] = []
    left_out = 0
    # Look at a few more rows than needed at a time: the near-duplicate search indexes the tests
    # once per batch, and a clean split needs a single batch.
    step = max(4 * k, 16)
    for start in range(0, len(order), step):
        batch = order[start : start + step]
        texts = [fill(user, rows[i]) for i in batch]
        near = {q for q, _, _ in near_matches(texts, tests)}
        for j, i in enumerate(batch):
            if j in near or normalize(texts[j]) in seen or not fill(assistant, rows[i]).strip():
                left_out += 1
            elif len(chosen) < k:
                chosen.append(rows[i])
        if len(chosen) == k:
            break
    return chosen, left_out
