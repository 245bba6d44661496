"""The plugin surface: the one module a trainer plugin imports.

A trainer is any object with a `name`, a `description`, a pydantic `Config` for its own settings,
and `train(request, events) -> TrainedModel`. No base class: anything with these attributes is a
trainer (`Trainer` below is a Protocol). The harness hands it a `TrainRequest` (the base model
folder, the chat-formatted examples, the common `Hyperparameters`, the trainer's validated
`Config`, an output folder) and an `Events` object to report progress and checkpoints through.
Evaluation, the store and the manifest stay with the harness: the trainer writes a Hugging Face
folder (or PEFT adapter) into `output_dir` and returns what it measured.

Optionally `check(base, hp, cfg) -> None`: the harness calls it before it opens the store, with
the base model's folder, so that a setting the model cannot take (a module name it lacks, a rank
wider than it) raises `UserError` before anything is recorded rather than inside `train()`.

Helpers a recipe needs, so it never reaches into harness internals: `tokenize_examples`
(chat template, answer-only labels), `UserError` (a mistake in the user's settings: one line,
exit 2), `compute_dtype` and `device` (what the hardware runs), `Progress` (one progress display),
`distributed()` (rank and world size under `torchrun`) and `from_main` (the main process's
value, on every process: one decision for all).

Distributed-safe plugins: under `tuneval train --nproc N` every process runs `train()` with the
same request. Only the process where `distributed().is_main` may write `output_dir` and
checkpoints; `events` is a no-op elsewhere. A plugin that cannot train on several processes
should raise `UserError` when `distributed().world_size > 1`.

Nothing here imports torch, so listing trainers and validating `--set` values is instant.
The worked example is the test plugin, tests/plugin_pkg/tuneval_echo_trainer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import UserError
from harness.generation.tokenize import IGNORE, tokenize_examples
from harness.generation.types import Messages
from harness.progress import Progress

__all__ = [
    "CHECKPOINTS",
    "IGNORE",
    "BaseModelInfo",
    "Distributed",
    "Events",
    "Hyperparameters",
    "Messages",
    "NullEvents",
    "PAIRS_PENDING",
    "Progress",
    "Stopped",
    "TrainRequest",
    "TrainedModel",
    "Trainer",
    "UserError",
    "compute_dtype",
    "device",
    "distributed",
    "lora_target_modules",
    "tokenize_examples",
]


CHECKPOINTS = "checkpoints"  # sub-folder of output_dir holding step-N checkpoints
# A validation-context key: `tuneval loop` checks a trainer's settings before the pairs file it
# will make exists, so a Config's `pairs` validator takes the name without reading the file.
PAIRS_PENDING = "pairs_pending"


class Hyperparameters(BaseModel):
    """Settings every trainer honours. Defaults are sized for a small model on a laptop CPU."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=1.0, gt=0, le=10_000, description="passes over the training data")
    max_steps: int | None = Field(
        default=None, ge=1, le=10_000_000, description="optimizer steps; overrides epochs"
    )
    learning_rate: float = Field(default=1e-3, gt=0, le=10, allow_inf_nan=False)
    scheduler: Literal["constant", "linear", "cosine"] = "cosine"
    warmup: float = Field(
        default=0.05, ge=0, lt=1, description="share of the steps spent warming up"
    )
    batch_size: int = Field(
        default=8,
        ge=1,
        le=65_536,
        description="examples per micro-batch (without tokens_per_batch)",
    )
    tokens_per_batch: int | None = Field(
        default=None,
        ge=8,
        le=16_777_216,
        description="pack examples end to end up to this many tokens per micro-batch, "
        "instead of batch_size examples (default: 16384 on a GPU, off on a CPU)",
    )
    grad_accum: int = Field(default=1, ge=1, le=65_536, description="micro-batches per step")
    max_length: int = Field(
        default=512, ge=8, le=1_048_576, description="tokens per example; longer ones are cut"
    )
    seed: int = Field(default=0, ge=0, lt=2**63)
    save_every: int = Field(default=25, ge=1, description="checkpoint every N optimizer steps")
    log_every: int = Field(default=5, ge=1, description="log loss every N optimizer steps")

    def steps(self, n_examples: int) -> int:
        """Optimizer steps a run over n examples takes with batch_size examples per micro-batch:
        max_steps, else epochs' worth. Token-budget plans count their own steps."""
        if self.max_steps:
            return self.max_steps
        return max(1, math.ceil(self.epochs * n_examples / (self.batch_size * self.grad_accum)))


@dataclass(frozen=True)
class BaseModelInfo:
    """The model to start from: a full Hugging Face folder on local disk. For a base fetched by
    Hub id, the id and the commit: an adapter names its base by them (peft's
    `base_model_name_or_path` and `revision`), so it resolves on any machine, not only here."""

    name: str
    path: Path
    fingerprint: str
    hub_id: str | None = None
    hub_commit: str | None = None


@dataclass(frozen=True)
class TrainRequest:
    base: BaseModelInfo
    train: list[Messages]  # chat conversations ending with the assistant turn to learn
    validation: list[Messages]
    hyperparameters: Hyperparameters
    config: BaseModel  # the trainer's own Config, validated
    output_dir: Path  # the trainer writes its result here; checkpoints under output_dir/checkpoints
    run_key: str  # identifies this training run: checkpoints of another key must not be resumed
    progress: bool = True  # show progress on stderr


@dataclass(frozen=True)
class TrainedModel:
    path: Path  # a normal HF folder, or a PEFT adapter folder whose base is the request's base
    kind: Literal["full", "adapter"]
    facts: dict[str, Any] = field(default_factory=dict)  # what the trainer measured: steps,
    # tokens, tokens_per_s, train_seconds, loss_curve, val_loss, ... (goes into the manifest)


class Stopped(Exception):
    """Raised by a trainer that stopped because `events.should_stop()` said so, after writing a
    checkpoint: the run ends as interrupted, and the same command resumes it."""


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
        """True when the harness was asked to stop (SIGTERM, e.g. a scheduler's preemption):
        write a checkpoint and raise `Stopped`."""


@runtime_checkable
class Trainer(Protocol):
    name: str
    description: str
    Config: type[BaseModel]

    def train(self, request: TrainRequest, events: Events) -> TrainedModel: ...


class NullEvents:
    """Events that go nowhere: for running a trainer outside the harness, and on every process
    but the main one."""

    def log(self, step: int, **metrics: float) -> None:
        pass

    def checkpoint(self, step: int, path: Path) -> None:
        pass

    def resumed(self, step: int) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def compute_dtype(choice: str = "auto") -> str:
    """`bfloat16` where the hardware runs it (CUDA, AMX/avx512_bf16 CPUs; TUNEVAL_DTYPE overrides),
    else `float32`. float16 is never chosen for training: it needs loss scaling."""
    from harness.generation.hardware import best_dtype_name

    name = best_dtype_name() if choice == "auto" else choice
    return "bfloat16" if name == "bfloat16" else "float32"


def lora_target_modules(model: Any, targets: str) -> tuple[str | list[str], list[str]]:
    """peft's `target_modules` for a `lora_targets` setting (`all-linear`, or module names
    separated by commas) on this model, and the names of its Linear modules (the output head left
    out). A name the model lacks is a UserError."""
    import torch

    head = model.get_output_embeddings()
    linear = {
        n.rsplit(".", 1)[-1]
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and m is not head
    }
    chosen: str | list[str] = targets
    if targets != "all-linear":
        chosen = [t.strip() for t in targets.split(",") if t.strip()]
        unknown = [t for t in chosen if t not in linear]
        if unknown:
            raise UserError(
                f"lora_targets: no Linear module named {', '.join(unknown)} in this model "
                f"(it has: {', '.join(sorted(linear))})"
            )
    return chosen, sorted(linear)


def device() -> str:
    """`cuda:<local rank>` where a GPU is there, else `cpu`."""
    from harness.generation.hardware import device as hw_device

    name = hw_device()
    return f"cuda:{distributed().local_rank}" if name == "cuda" else name


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed() -> Distributed:
    """This process's place under `torchrun` (one process alone: rank 0 of 1)."""
    env = os.environ
    return Distributed(
        int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    )


def init_group() -> None:
    """The process group of this `torchrun` job, joined once, on this process's GPU if any."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if device().startswith("cuda"):
            torch.cuda.set_device(device())  # else every rank's collectives land on GPU 0
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def from_main(value: Any) -> Any:
    """The main process's `value`, on every process."""
    import torch.distributed as dist

    if distributed().world_size == 1:
        return value
    init_group()
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_shared(out: Path) -> None:
    """Every process must see the main one's output folder: checkpoints, optimizer shards and
    the resume step live there (nodes need one shared filesystem). Checked by a file the main
    process writes, before the store records anything; every process then stops alike."""
    import secrets

    import torch
    import torch.distributed as dist

    if distributed().world_size == 1:
        return
    main = distributed().is_main
    probe = out / ".tuneval-shared"
    token = secrets.token_hex(8) if main else ""
    if main:
        probe.write_text(token)
    token = from_main(token)
    try:
        seen = probe.read_text() == token
    except OSError:
        seen = False
    blind = torch.tensor([int(not seen)], device=device())
    dist.all_reduce(blind)
    dist.barrier()
    if main:
        probe.unlink(missing_ok=True)
    if blind.item():
        raise UserError(
            f"{blind.item()} of {distributed().world_size} processes do not see the main "
            f"process's output folder {out}: training on several nodes needs the store (--db) on "
            "a filesystem every node shares"
        )
