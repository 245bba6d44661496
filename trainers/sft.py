"""The built-in `sft` trainer: supervised finetuning on the suite's chat examples, loss on the
answer only, full or LoRA, on a CPU, one GPU, or several processes under `torchrun`.
One recipe, top to bottom (`run` below; the data, model and checkpoint machinery it calls lives in
`trainers.sft_data`, `trainers.sft_model` and `trainers.sft_checkpoints`):

1. tokenize every conversation with the base model's chat template; labels are -100 on the prompt
2. plan the micro-batches of every optimizer step up front from the seed, so a resumed run trains
   on exactly the batches the interrupted one would have. A micro-batch is `batch_size` examples
   laid end to end in one row (the CPU default), or, with a token budget (`tokens_per_batch`, the
   GPU default), rows of `max_length` tokens filled with whole examples: a fixed shape whatever
   the examples' lengths. Either way position ids restart at each example, so attention stays
   inside it (transformers finds the examples from the position ids: flash-attn takes them as
   variable-length sequences, the other kernels as a block-diagonal mask) and no compute is
   spent on padding between examples
3. load the base: LoRA freezes it in bf16 (where the hardware runs bf16) and trains fp32
   adapters; full finetuning keeps fp32 master weights and computes in bf16 under autocast;
   optionally gradient checkpointing and `torch.compile` of each decoder layer
4. several processes: DDP (or FSDP with `fsdp=true`), each taking its share of the step's
   micro-batches; the loss is divided by the answer tokens of the whole step on every process
5. AdamW (fused on a GPU), warmup then cosine / linear / constant
6. resume from the newest complete checkpoint under output_dir/checkpoints, if there is one
   (the main process chooses it for all; every node must see that folder)
7. the loop: logits only where the next token is an answer token; loss and token counts stay on
   the device and are read once per `log_every` steps
8. every `save_every` steps write a checkpoint atomically (main process; with FSDP each
   process adds its optimizer shard): a loadable model or adapter folder plus optimizer,
   scheduler, RNG state, step and loss curve; tell the harness
9. write the final model (or adapter) into output_dir and return what was measured

Why a plain loop rather than TRL's SFTTrainer: it is faster (bench/train_vs_peers.py,
bench/gpu.py; figures in bench/RESULTS.md), and the recipe stays readable.
"""

from __future__ import annotations

import functools
import math
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.plugin import (
    CHECKPOINTS,
    BaseModelInfo,
    Events,
    Hyperparameters,
    Progress,
    Stopped,
    TrainedModel,
    TrainRequest,
    UserError,
    compute_dtype,
    device,
    distributed,
)
from trainers.sft_checkpoints import (
    full_state,
    prune,
    restore,
    resume_point,
    save_checkpoint,
    save_model,
)
from trainers.sft_data import Plan, Row, answer_tokens, collate, epoch_batches, layout, tokenize
from trainers.sft_model import (
    all_sum,
    answer_loss,
    barrier,
    check_against_model,
    compile_layers,
    load_model,
    wrap_distributed,
)


class Config(BaseModel):
    """Settings of the sft recipe (the common ones, such as learning_rate, are Hyperparameters)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(default=16, ge=1, le=4096)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_targets: str = Field(
        default="all-linear", description="'all-linear' or comma-separated module names"
    )
    lora_layers: int = Field(
        default=0, ge=0, description="adapt only the top N layers, so backward stops there (0: all)"
    )
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        default="auto", description="compute dtype"
    )
    packing: bool = Field(
        default=True, description="pack each micro-batch into one row, no padding"
    )
    compile: bool = Field(
        default=False,
        description="torch.compile each decoder layer (off by default: bench/RESULTS.md)",
    )
    gradient_checkpointing: bool = Field(
        default=False, description="recompute activations in backward: less memory, more time"
    )
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        default="auto",
        description="attention kernel (auto: flash_attention_2 on a GPU with flash-attn "
        "installed, which keeps packed examples apart without a mask; sdpa otherwise)",
    )
    fsdp: bool = Field(
        default=False, description="shard the model over the processes (--nproc) instead of DDP"
    )
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    max_grad_norm: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    keep_checkpoints: int = Field(
        default=1, ge=1, description="newest checkpoints kept while training"
    )
    val_examples: int = Field(
        default=16, ge=0, description="validation examples scored at checkpoints and the end"
    )

    @model_validator(mode="after")
    def _fsdp_shards_full_finetuning(self) -> Config:
        if self.fsdp and self.method == "lora":
            raise ValueError(
                "fsdp=true shards full finetuning (method=full); LoRA trains under DDP"
            )
        return self


class SFT:
    name = "sft"
    description = "supervised finetuning, loss on the answer only; full or LoRA (peft)"
    Config = Config

    def check(self, base: BaseModelInfo, hp: Hyperparameters, cfg: BaseModel) -> None:
        assert isinstance(cfg, Config)
        check_against_model(base, cfg)

    def train(self, request: TrainRequest, events: Events) -> TrainedModel:
        return run(request, events)


trainer = SFT()


# --- 5. optimizer and schedule ------------------------------------------------------------------


def make_optimizer(model: Any, hp: Hyperparameters, cfg: Config, total: int) -> tuple[Any, Any]:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    fused = all(p.is_cuda for p in params)  # one kernel for all parameters
    opt = torch.optim.AdamW(
        params, lr=hp.learning_rate, weight_decay=cfg.weight_decay, fused=fused or None
    )
    warmup = round(hp.warmup * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        if hp.scheduler == "linear":
            return max(0.0, 1.0 - progress)
        if hp.scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


# --- the recipe ---------------------------------------------------------------------------------


def run(request: TrainRequest, events: Events) -> TrainedModel:
    import torch

    hp, cfg = request.hyperparameters, Config.model_validate(request.config.model_dump())
    out = request.output_dir
    out.mkdir(parents=True, exist_ok=True)
    dtype = compute_dtype(cfg.dtype)
    on_gpu = device().startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(device())
        torch.cuda.reset_peak_memory_stats()
    # 6 is chosen first: a resumed full finetuning loads the checkpoint's weights
    resume = resume_point(out, request.run_key)
    torch.manual_seed(hp.seed)
    random.seed(hp.seed)
    model, tok = load_model(request, cfg, dtype, resume)  # 3
    train = tokenize(tok, request.train, hp.max_length)  # 1
    val = tokenize(tok, request.validation[: cfg.val_examples], hp.max_length)
    if not train:
        raise UserError(
            "no training example has an answer token left after truncation to max_length"
        )
    lengths = [len(r["input_ids"]) for r in train]
    longest = max(lengths + [len(r["input_ids"]) for r in val])
    plan = Plan(lengths, hp, layout(hp, on_gpu, longest), distributed().world_size)  # 2
    if cfg.compile:
        compile_layers(model, plan.layout.token_budget)
    loss_module = wrap_distributed(answer_loss(model), cfg)  # 4
    opt, sched = make_optimizer(loss_module, hp, cfg, plan.total)  # 5
    low = dtype == "bfloat16"
    autocast = (
        torch.autocast(device().split(":")[0], dtype=torch.bfloat16) if low else nullcontext()
    )
    t = Training(request, cfg, model, tok, loss_module, opt, sched, plan, train, val, autocast)
    if resume is not None:  # 6
        t.state.update(restore(resume, opt, sched))
        t.start = t.state["resumed_from"] = t.state["step"]
        events.resumed(t.start)
    with Progress("training", plan.total, start=t.start, enabled=request.progress) as bar:
        step = train_loop(t, events, bar)  # 7, 8
    val_loss = save_result(t, step, events)  # 9
    kind: Literal["full", "adapter"] = "adapter" if cfg.method == "lora" else "full"
    return TrainedModel(out, kind, measured(t, step, val_loss, dtype))


@dataclass
class Training:
    """What the loop works on, set up once by `run`."""

    request: TrainRequest
    cfg: Config
    model: Any  # what is saved: the model, or its peft wrapper
    tok: Any
    loss_module: Any  # the answer loss around the model, wrapped for DDP or FSDP
    opt: Any
    sched: Any
    plan: Plan
    train: list[Row]
    val: list[Row]
    autocast: Any  # bf16 autocast, or a context that does nothing
    start: int = field(default=0, init=False)  # the first step trained here (a resume's step)
    state: dict[str, Any] = field(init=False)  # saved in every checkpoint, restored on resume

    def __post_init__(self) -> None:
        self.state = {
            "run_key": self.request.run_key,
            "curve": [],
            "tokens": 0,
            "seconds": 0.0,
            "resumed_from": None,
        }

    @property
    def sharded(self) -> bool:
        return self.cfg.fsdp and distributed().world_size > 1

    @functools.cached_property
    def trainable(self) -> list[Any]:
        return [p for p in self.loss_module.parameters() if p.requires_grad]

    def batch(self, rows: list[Row]) -> dict[str, Any]:
        """One micro-batch of these rows, on the device."""
        batch = collate(rows, self.plan.layout, self.tok.pad_token_id)
        return {key: v.to(device()) for key, v in batch.items()}

    def checkpoint(self, step: int) -> Path:
        """Every process calls this (gathering FSDP's shards and writing is collective)."""
        weights = full_state(self.loss_module, self.sharded)
        return save_checkpoint(
            self.request.output_dir, step, self.model, self.tok, self.opt, self.sched,
            self.state, weights, self.sharded,
        )  # fmt: skip


# --- 7. the loop --------------------------------------------------------------------------------


def train_loop(t: Training, events: Events, bar: Progress) -> int:
    """Optimizer steps from `t.start` to the end of the plan, the losses read every `log_every`
    steps and a checkpoint every `save_every`; returns the step reached."""
    hp, dist = t.request.hyperparameters, distributed()
    pending: list[Any] = []  # per-step losses, on the device until the next log
    window = Window()
    step = t.start
    while step < t.plan.total:
        if (dist.world_size == 1 or step % hp.log_every == 0) and stop_requested(events):
            t.checkpoint(step)
            raise Stopped(f"at step {step}")
        micro = t.plan.step(step)
        lr = t.sched.get_last_lr()[0]
        pending.append(train_step(t, micro, compiling=t.cfg.compile and step == t.start))
        step += 1
        window.tokens += sum(t.plan.lengths[i] for b in micro for i in b)
        if step % hp.log_every == 0 or step == t.plan.total:
            losses = record(pending, t.state, step, window)
            pending = []
            rate = t.state["last_rate"]
            events.log(step, loss=sum(losses) / len(losses), lr=lr, tokens_per_s=rate)
            bar.update(step, f"loss {losses[-1]:.3f}  {rate:.0f} tok/s")
        if step % hp.save_every == 0 and step < t.plan.total:
            record(pending, t.state, step, window)
            pending = []
            with window.paused():
                save_and_validate(t, step, events)
    return step


def train_step(t: Training, micro: list[list[int]], compiling: bool) -> Any:
    """One optimizer step: this process's share of the step's micro-batches, gradients
    accumulated, clipped and applied. Returns the step's loss (a share of it on each process),
    still on the device."""
    import torch

    dist = distributed()
    n_answer = sum(answer_tokens(t.train[i]) for b in micro for i in b)
    mine = micro[dist.rank :: dist.world_size]
    step_loss = torch.zeros((), device=device())
    for k, batch_ids in enumerate(mine):
        batch = t.batch([t.train[i] for i in batch_ids])
        sync = k == len(mine) - 1 or not hasattr(t.loss_module, "no_sync")
        with nullcontext() if sync else t.loss_module.no_sync(), t.autocast:
            loss = first_call(t.loss_module, batch, compiling and k == 0)
            loss = loss / max(1, n_answer)
        # DDP and FSDP average gradients over the processes; the loss is already a share
        # of the whole step's, so the average is scaled back to the sum
        (loss * dist.world_size).backward()
        step_loss += loss.detach()
    torch.nn.utils.clip_grad_norm_(t.trainable, t.cfg.max_grad_norm)
    t.opt.step()
    t.sched.step()
    t.opt.zero_grad(set_to_none=True)
    return step_loss


# --- 8. checkpoints -----------------------------------------------------------------------------


def save_and_validate(t: Training, step: int, events: Events) -> None:
    """A checkpoint and the validation loss at it; the harness is told (it may evaluate the
    checkpoint now) and older checkpoints are pruned."""
    path = t.checkpoint(step)
    val_loss = validation_loss(t)
    if distributed().is_main:
        if val_loss is not None:
            events.log(step, val_loss=val_loss)
        events.checkpoint(step, path)
        prune(t.request.output_dir, t.cfg.keep_checkpoints)
    barrier()


# --- 9. the result ------------------------------------------------------------------------------


def save_result(t: Training, step: int, events: Events) -> float | None:
    """The final model (or adapter) in output_dir, its checkpoints removed; the validation loss."""
    out = t.request.output_dir
    weights = full_state(t.loss_module, t.sharded)
    val_loss = validation_loss(t)
    if distributed().is_main:
        if val_loss is not None:
            events.log(step, val_loss=val_loss)
        save_model(out, t.model, t.tok, weights)
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    barrier()
    return val_loss


def measured(t: Training, step: int, val_loss: float | None, dtype: str) -> dict[str, Any]:
    """The run's facts, as the harness records them."""
    import torch

    seconds, tokens, plan = t.state["seconds"], t.state["tokens"], t.plan.layout
    on_gpu = device().startswith("cuda")
    return {
        "steps": step,
        "planned_steps": t.plan.total,
        "resumed_from": t.state["resumed_from"],
        "tokens": tokens,
        "train_seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        "val_loss": val_loss,
        "dtype": dtype,
        "token_budget": plan.rows * plan.row_length or None,
        "compiled": t.cfg.compile,
        "attention": getattr(t.model.config, "_attn_implementation", None),
        "world_size": distributed().world_size,
        "peak_gpu_memory_gb": (
            round(torch.cuda.max_memory_allocated() / 1e9, 2) if on_gpu else None
        ),
        "loss_curve": t.state["curve"],
    }


# --- the loop's helpers -------------------------------------------------------------------------


class Window:
    """Training time and tokens between two looks at the losses. Time is read where the host
    waits for the device anyway (reading the losses), so it counts what the device did."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.tokens = 0

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Checkpoints and validation are not training time."""
        t = time.perf_counter()
        yield
        self.t0 += time.perf_counter() - t


def record(pending: list[Any], state: dict[str, Any], step: int, window: Window) -> list[float]:
    """Read the pending losses (summed over the processes): the curve, tokens and seconds."""
    import torch

    if not pending:
        return []
    losses = all_sum(torch.stack(pending)).tolist()  # the one host sync per log
    for j, loss_value in enumerate(losses):
        state["curve"].append([step - len(losses) + 1 + j, round(loss_value, 5)])
    now = time.perf_counter()
    seconds = now - window.t0
    state["seconds"] += seconds
    state["tokens"] += window.tokens
    state["last_rate"] = window.tokens / max(seconds, 1e-9)
    window.t0, window.tokens = now, 0
    return losses


def first_call(loss_module: Any, batch: dict[str, Any], compiling: bool) -> Any:
    """The loss of a micro-batch; the first call of a compiled model is where compiling fails."""
    if not compiling:
        return loss_module(**batch)
    try:
        return loss_module(**batch)
    except Exception as e:  # noqa: BLE001 - inductor raises many kinds; all mean "cannot compile"
        raise UserError(
            f"compile=true: torch.compile failed here ({type(e).__name__}: {e})"
        ) from None


def stop_requested(events: Events) -> bool:
    """The harness's answer, agreed by every process (only the main one has real events)."""
    import torch

    wanted = events.should_stop()
    if distributed().world_size == 1:
        return wanted
    return bool(all_sum(torch.tensor([int(wanted)], device=device())).item())


def validation_loss(t: Training) -> float | None:
    """Mean loss per answer token over the validation examples (every process computes it: a
    sharded model needs them all)."""
    import torch

    if not t.val:
        return None
    t.loss_module.eval()
    total, count = 0.0, 0
    # the training layout, so a compiled model sees the shapes it compiled for
    batches = epoch_batches(0, [len(r["input_ids"]) for r in t.val], t.plan.layout, 0)
    with torch.no_grad():
        for ids in batches:
            chunk = [t.val[i] for i in ids]
            batch = t.batch(chunk)
            with t.autocast:
                total += float(t.loss_module(**batch))
            count += sum(answer_tokens(r) for r in chunk)
    t.loss_module.train()
    return round(total / max(1, count), 5)
