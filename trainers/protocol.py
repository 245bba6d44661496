"""The trainer contract: what the harness hands a trainer, and what it gets back.

A trainer is any object with a `name`, a pydantic `Config` for its own settings, and
`train(request, events) -> TrainedModel`. No base class: anything with these attributes is a
trainer. Evaluation stays outside: the trainer reports checkpoints through `events`, and the
harness decides what to do with them (log them, evaluate them on the suite).

Nothing here imports torch, so listing trainers and validating `--set` values is instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Messages = list[dict[str, str]]

CHECKPOINTS = "checkpoints"  # sub-folder of output_dir holding step-N checkpoints
MANIFEST = "tuneval-manifest.json"


class Hyperparameters(BaseModel):
    """Settings every trainer honours. Defaults are sized for a small model on a laptop CPU."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=1.0, gt=0, description="passes over the training data")
    max_steps: int | None = Field(
        default=None, ge=1, description="optimizer steps; overrides epochs"
    )
    learning_rate: float = Field(default=1e-3, gt=0)
    scheduler: Literal["constant", "linear", "cosine"] = "cosine"
    warmup: float = Field(
        default=0.05, ge=0, lt=1, description="share of the steps spent warming up"
    )
    batch_size: int = Field(default=8, ge=1, description="examples per micro-batch")
    grad_accum: int = Field(default=1, ge=1, description="micro-batches per optimizer step")
    max_length: int = Field(
        default=512, ge=8, description="tokens per example; longer ones are cut"
    )
    seed: int = 0
    save_every: int = Field(default=25, ge=1, description="checkpoint every N optimizer steps")
    log_every: int = Field(default=5, ge=1, description="log loss every N optimizer steps")

    def steps(self, n_examples: int) -> int:
        """Optimizer steps a run over n examples takes: max_steps, else epochs' worth."""
        if self.max_steps:
            return self.max_steps
        return max(1, math.ceil(self.epochs * n_examples / (self.batch_size * self.grad_accum)))


@dataclass(frozen=True)
class BaseModelInfo:
    """The model to start from: a full Hugging Face folder on local disk."""

    name: str
    path: Path
    fingerprint: str


@dataclass(frozen=True)
class TrainRequest:
    base: BaseModelInfo
    train: list[Messages]  # chat conversations ending with the assistant turn to learn
    validation: list[Messages]
    hyperparameters: Hyperparameters
    config: BaseModel  # the trainer's own Config, validated
    output_dir: Path  # the trainer writes its result here; checkpoints under output_dir/checkpoints
    suite: str = ""
    data_fingerprint: str = ""
    progress: bool = True  # show a progress bar on stderr


@dataclass(frozen=True)
class TrainedModel:
    path: Path  # a normal HF folder, or a PEFT adapter folder whose base is the request's base
    kind: Literal["full", "adapter"]
    manifest: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Events(Protocol):
    """How a trainer talks to the harness while it runs."""

    def log(self, step: int, **metrics: float) -> None:
        """Loss, learning rate, tokens/s and the like at an optimizer step."""

    def checkpoint(self, step: int, path: Path) -> None:
        """A complete, loadable model folder (full or adapter) for `step` now exists at `path`."""

    def resumed(self, step: int) -> None:
        """Training continues from a checkpoint at `step` left by an earlier, interrupted run."""

    def should_stop(self) -> bool:
        """True when the harness wants training to end now: save the model as it is, return."""


@runtime_checkable
class Trainer(Protocol):
    name: str
    description: str
    Config: type[BaseModel]

    def train(self, request: TrainRequest, events: Events) -> TrainedModel: ...


class NullEvents:
    """Events that go nowhere: for running a trainer outside the harness."""

    def log(self, step: int, **metrics: float) -> None:
        pass

    def checkpoint(self, step: int, path: Path) -> None:
        pass

    def resumed(self, step: int) -> None:
        pass

    def should_stop(self) -> bool:
        return False
