"""The sft recipe's data (steps 1 and 2 of `trainers.sft`): conversations tokenized with the base
model's chat template (labels -100 on the prompt), and the plan of every optimizer step's
micro-batches, made up front from the seed so that a resumed run trains on exactly the batches
the interrupted one would have.

A micro-batch is `batch_size` examples laid end to end in one row, or, under a token budget, rows
of `row_length` tokens filled first-fit with whole examples (a fixed shape whatever the examples'
lengths). Either way position ids restart at each example, which is how the model keeps packed
examples apart.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.plugin import IGNORE, Hyperparameters, Messages, UserError, tokenize_examples

GPU_TOKENS_PER_BATCH = 16_384  # the token budget on a GPU when none is set (bench/gpu.py)

Row = dict[str, list[int]]


# --- 1. data ------------------------------------------------------------------------------------


def tokenize(tok: Any, conversations: Sequence[Messages], max_length: int) -> list[Row]:
    rows = tokenize_examples(tok, conversations, max_length)
    return [r for r in rows if any(label != IGNORE for label in r["labels"])]


def answer_tokens(row: Row) -> int:
    """Tokens whose prediction is trained: every label but the first (nothing predicts it)."""
    return sum(1 for t in row["labels"][1:] if t != IGNORE)


# --- 2. the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How examples become micro-batches: `per_batch` examples in one packed row, or rows of
    `row_length` tokens, `rows` of them per micro-batch (a token budget of rows * row_length)."""

    per_batch: int = 0
    rows: int = 0
    row_length: int = 0

    @property
    def token_budget(self) -> bool:
        return self.rows > 0


def layout(hp: Hyperparameters, on_gpu: bool, longest: int) -> Layout:
    budget = hp.tokens_per_batch or (GPU_TOKENS_PER_BATCH if on_gpu else None)
    if budget is None:
        return Layout(per_batch=hp.batch_size)
    row_length = min(hp.max_length, budget)
    if longest > row_length:
        raise UserError(
            f"tokens_per_batch={budget} is smaller than the longest example ({longest} tokens): "
            f"raise it to at least {longest}, or lower max_length"
        )
    return Layout(rows=budget // row_length, row_length=row_length)


def _order(epoch: int, n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def epoch_batches(epoch: int, lengths: Sequence[int], plan: Layout, seed: int) -> list[list[int]]:
    """One epoch's micro-batches of example indices, in a seeded order. With a token budget each
    micro-batch is filled first-fit into its rows, so none holds more than its budget."""
    order = _order(epoch, len(lengths), seed)
    if not plan.token_budget:
        return [order[j : j + plan.per_batch] for j in range(0, len(order), plan.per_batch)]
    batches: list[list[int]] = []
    current: list[int] = []
    free = [plan.row_length] * plan.rows
    for i in order:
        row = next((r for r, room in enumerate(free) if room >= lengths[i]), None)
        if row is None:
            batches.append(current)
            current, free = [], [plan.row_length] * plan.rows
            row = 0
        free[row] -= lengths[i]
        current.append(i)
    if current:
        batches.append(current)
    return batches


class Plan:
    """Every micro-batch of the run, in order; step s takes `per_step` of them. Epochs are laid
    end to end, so any step's batches are known without replaying the others."""

    def __init__(self, lengths: Sequence[int], hp: Hyperparameters, plan: Layout, world: int):
        self.lengths, self.hp, self.layout = list(lengths), hp, plan
        self.per_step = hp.grad_accum * world
        self.batches: list[list[int]] = []
        self.epochs = 0
        first = epoch_batches(0, self.lengths, plan, hp.seed)
        if hp.max_steps:
            self.total = hp.max_steps
        else:
            self.total = max(1, math.ceil(hp.epochs * len(first) / self.per_step))
        self._grow(self.total * self.per_step)

    def _grow(self, needed: int) -> None:
        while len(self.batches) < needed:
            self.batches += epoch_batches(self.epochs, self.lengths, self.layout, self.hp.seed)
            self.epochs += 1

    def step(self, step: int) -> list[list[int]]:
        """The micro-batches of optimizer step `step` (0-based), for every process."""
        return self.batches[step * self.per_step : (step + 1) * self.per_step]


def collate(rows: list[Row], plan: Layout, pad_id: int) -> dict[str, Any]:
    """input_ids, labels and position_ids for one micro-batch (position ids restart per example,
    which is how the model keeps packed examples apart)."""
    import torch

    if not plan.token_budget:
        return {
            "input_ids": torch.tensor([[t for r in rows for t in r["input_ids"]]]),
            "labels": torch.tensor([[t for r in rows for t in r["labels"]]]),
            "position_ids": torch.tensor([[p for r in rows for p in range(len(r["input_ids"]))]]),
        }
    lines: list[list[Row]] = [[] for _ in range(plan.rows)]
    free = [plan.row_length] * plan.rows
    for r in rows:  # the same first-fit as the plan
        k = next(k for k, room in enumerate(free) if room >= len(r["input_ids"]))
        free[k] -= len(r["input_ids"])
        lines[k].append(r)
    ids, labels, pos = [], [], []
    for line, room in zip(lines, free, strict=True):
        ids.append([t for r in line for t in r["input_ids"]] + [pad_id] * room)
        labels.append([t for r in line for t in r["labels"]] + [IGNORE] * room)
        pos.append([p for r in line for p in range(len(r["input_ids"]))] + list(range(room)))
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "position_ids": torch.tensor(pos),
    }
