"""The built-in `sft` trainer: supervised finetuning on the suite's chat examples, loss on the
answer only, full or LoRA, on a CPU, one GPU, or several processes under `torchrun`.
One recipe, top to bottom:

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.plugin import (
    CHECKPOINTS,
    IGNORE,
    BaseModelInfo,
    Events,
    Hyperparameters,
    Messages,
    Progress,
    Stopped,
    TrainedModel,
    TrainRequest,
    UserError,
    compute_dtype,
    device,
    distributed,
    from_main,
    init_group,
    lora_target_modules,
    tokenize_examples,
)

STATE = "trainer_state.pt"
GPU_TOKENS_PER_BATCH = 16_384  # the token budget on a GPU when none is set (bench/gpu.py)


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


# --- 3. the model -------------------------------------------------------------------------------


def answer_loss(model: Any) -> Any:
    """A module whose forward is the summed cross-entropy of a micro-batch's answer tokens.
    Logits are computed only where the next token is an answer token: the vocabulary projection
    is a large share of a small model's compute, and most tokens are prompt. A module of its own
    so that DDP and FSDP wrap the whole computation."""
    return _answer_loss_class()(model)


@functools.cache
def _answer_loss_class() -> type:
    import torch
    import torch.nn.functional as F

    class AnswerLoss(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, position_ids: Any, labels: Any) -> Any:
            decoder = self.model.get_decoder()
            hidden = decoder(
                input_ids=input_ids, position_ids=position_ids, use_cache=False
            ).last_hidden_state
            wanted = labels[:, 1:] != IGNORE
            logits = self.model.get_output_embeddings()(hidden[:, :-1][wanted])
            return F.cross_entropy(logits.float(), labels[:, 1:][wanted], reduction="sum")

    return AnswerLoss


def load_model(
    request: TrainRequest, cfg: Config, dtype: str, resume: Path | None
) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = request.base.path
    # Frozen LoRA base weights may live in bf16; trained weights stay fp32 (AdamW in bf16 loses
    # small updates).
    weights_dtype = (
        torch.bfloat16 if cfg.method == "lora" and dtype == "bfloat16" else torch.float32
    )
    source = resume if (resume is not None and cfg.method == "full") else base
    kernel = attention_kernel(cfg.attention, dtype)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        tok = AutoTokenizer.from_pretrained(base)
        config = model_config(source)
        model: Any = AutoModelForCausalLM.from_pretrained(
            source, config=config, dtype=weights_dtype, attn_implementation=kernel
        )
    except Exception as e:  # a broken folder raises OSError, ValueError, SafetensorError, ...
        raise UserError(
            f"base model '{request.base.name}' does not load from {base}: {e}"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.use_cache = False
    if cfg.method == "lora":
        named = request.base.hub_id or str(base)  # what the adapter's config names its base by
        model = add_lora(model, cfg, named, resume, request.base.hub_commit)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device())
    model.train()
    return model, tok


def model_config(folder: Path) -> Any:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    if getattr(config, "quantization_config", None):
        # A GGUF export dequantized to plain safetensors still names its origin here, and
        # transformers then refuses to train or save it. The weights are plain floats.
        if dict(config.quantization_config).get("quant_method") == "gguf":
            del config.quantization_config
    return config


def check_against_model(base: BaseModelInfo, cfg: Config) -> None:
    """Every setting that depends on the model, checked on the model built from its config on
    the meta device (no weights read, no memory), so that a mistake stops the command before the
    harness opens the store. `load_model` runs the same checks on the real model."""
    import torch
    from transformers import AutoModelForCausalLM

    kernel = attention_kernel(cfg.attention, compute_dtype(cfg.dtype))
    try:
        config = model_config(base.path)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, attn_implementation=kernel)
    except Exception as e:  # the same wording as load_model's
        raise UserError(f"base model '{base.name}' does not load from {base.path}: {e}") from None
    if cfg.gradient_checkpointing and not model.supports_gradient_checkpointing:
        raise UserError(f"gradient_checkpointing=true: {type(model).__name__} does not support it")
    if cfg.method == "lora":
        lora_targets(model, cfg)


def attention_kernel(choice: str, dtype: str) -> str:
    """The attention implementation transformers loads the model with. Every kernel keeps packed
    examples apart through the restarting position ids: flash-attn as variable-length sequences
    (no mask at all), sdpa and eager as a dense block-diagonal mask per micro-batch. (torch's
    flex_attention is left out: on a CPU inductor fails to compile its kernel, torch 2.13.)"""
    import importlib.util

    on_gpu = device().startswith("cuda")
    has_flash = importlib.util.find_spec("flash_attn") is not None
    if choice == "auto":
        return "flash_attention_2" if on_gpu and has_flash and dtype == "bfloat16" else "sdpa"
    if choice == "flash_attention_2" and not (on_gpu and has_flash):
        raise UserError(
            "attention=flash_attention_2 needs a CUDA GPU and the flash-attn package "
            "(pip install flash-attn); attention=sdpa works everywhere"
        )
    return choice


def lora_targets(model: Any, cfg: Config) -> tuple[str | list[str], list[int] | None]:
    """peft's target_modules and layers_to_transform for these settings on this model; a
    setting the model cannot take is a UserError."""
    targets, linear = lora_target_modules(model, cfg.lora_targets)
    if cfg.lora_targets == "all-linear" and cfg.lora_layers:
        targets = linear  # peft takes a layer subset only with named modules
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    if n_layers and cfg.lora_layers > n_layers:
        raise UserError(f"lora_layers={cfg.lora_layers}: the model has {n_layers} layers")
    top = list(range(max(0, n_layers - cfg.lora_layers), n_layers)) if cfg.lora_layers else None
    hidden = int(getattr(model.config, "hidden_size", 0) or 0)
    if hidden and cfg.lora_r > hidden:
        raise UserError(f"lora_r={cfg.lora_r} is larger than the model's width ({hidden})")
    return targets, top


def add_lora(
    model: Any, cfg: Config, base: str, resume: Path | None, revision: str | None = None
) -> Any:
    import warnings

    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    # peft calls a transformers API that transformers 5 deprecates; not ours to fix.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    targets, top = lora_targets(model, cfg)
    lora = LoraConfig(
        layers_to_transform=top,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        base_model_name_or_path=base,
        revision=revision,
    )
    model = get_peft_model(model, lora)  # adapters are created in fp32
    model.peft_config["default"].base_model_name_or_path = base
    model.peft_config["default"].revision = revision
    if resume is not None:
        set_peft_model_state_dict(model, load_file(str(resume / "adapter_model.safetensors")))
    return model


def compile_layers(model: Any, fixed_shapes: bool) -> None:
    """torch.compile each decoder layer: under a token budget the layers see one shape, so each
    compiles once; the mask and the loss stay eager. A platform that cannot compile fails at the
    first step, where `run` turns the error into a UserError."""
    for layer in model.get_decoder().layers:
        layer.compile(dynamic=False if fixed_shapes else None)


# --- 4. several processes -----------------------------------------------------------------------


def wrap_distributed(module: Any, cfg: Config) -> Any:
    """DDP (default) or FSDP over the processes torchrun started; the module alone otherwise."""
    import torch

    if distributed().world_size == 1:
        return module
    init_group()
    if cfg.fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in module.model.get_decoder().layers:
            fully_shard(layer)
        return fully_shard(module)
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return DistributedDataParallel(module, device_ids=ids)


def all_sum(t: Any) -> Any:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


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


# --- 6. checkpoints -----------------------------------------------------------------------------


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((output_dir / CHECKPOINTS).glob("step-*/" + STATE))
    found = [p for p in found if not p.parent.name.endswith(".tmp")]
    return found[-1].parent if found else None


def full_state(module: Any, cfg: Config) -> dict[str, Any] | None:
    """The trainable model's weights gathered whole (FSDP shards them): on every process, since
    gathering is collective; None where the module is not sharded."""
    if not cfg.fsdp or distributed().world_size == 1:
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(module.model, options=opts)
    # a tied output layer is gathered under both names; saved once, as the model saves itself
    seen: set[int] = set()
    for name, param in module.model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            state.pop(name, None)
        seen.add(id(param))
    return state


def save_model(folder: Path, model: Any, tok: Any, state: dict[str, Any] | None) -> None:
    model.save_pretrained(folder, **({"state_dict": state} if state is not None else {}))
    tok.save_pretrained(folder)


def save_checkpoint(
    folder: Path, step: int, model: Any, tok: Any, opt: Any, sched: Any, state: dict[str, Any],
    weights: dict[str, Any] | None = None, sharded: bool = False,
) -> Path:  # fmt: skip
    """Every process calls this. The main one writes the model and the run's state; with FSDP
    each process also writes its own optimizer shard. The folder appears complete or not at all."""
    import torch

    dist = distributed()
    target = folder / CHECKPOINTS / f"step-{step:07d}"
    tmp = target.with_name(target.name + ".tmp")
    if dist.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(tmp, model, tok, weights)
    barrier()
    if sharded:
        tmp.mkdir(parents=True, exist_ok=True)  # the main one's, seen late over a network
        torch.save(opt.state_dict(), tmp / f"optimizer-{dist.rank}.pt")
    barrier()
    if dist.is_main:
        rng = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        payload = {
            "step": step,
            "optimizer": None if sharded else opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng,
            **state,
        }
        torch.save(payload, tmp / STATE)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    barrier()
    return target


def restore(checkpoint: Path, opt: Any, sched: Any) -> dict[str, Any]:
    import torch

    payload = torch.load(checkpoint / STATE, weights_only=True)
    optimizer = payload.pop("optimizer")
    if optimizer is None:  # sharded: each process reads its own
        shard = checkpoint / f"optimizer-{distributed().rank}.pt"
        optimizer = torch.load(shard, weights_only=False)
    opt.load_state_dict(optimizer)
    sched.load_state_dict(payload.pop("scheduler"))
    rng = payload.pop("rng")
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    random.setstate((3, tuple(rng["python"]), None))
    return payload


def prune(folder: Path, keep: int) -> None:
    steps = sorted((folder / CHECKPOINTS).glob("step-*"))
    for tmp in [p for p in steps if p.name.endswith(".tmp")]:  # left by a kill mid-write
        shutil.rmtree(tmp, ignore_errors=True)
    done = [p for p in steps if not p.name.endswith(".tmp")]
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# --- 7. the loop --------------------------------------------------------------------------------


def run(request: TrainRequest, events: Events) -> TrainedModel:
    import torch

    hp, cfg = request.hyperparameters, Config.model_validate(request.config.model_dump())
    dist = distributed()
    out = request.output_dir
    out.mkdir(parents=True, exist_ok=True)
    dtype = compute_dtype(cfg.dtype)
    on_gpu = device().startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(device())
        torch.cuda.reset_peak_memory_stats()
    compiled = cfg.compile
    sharded = cfg.fsdp and dist.world_size > 1

    resume = from_main(latest_checkpoint(out))  # one choice for all, made where it is written
    if resume is not None:
        saved = torch.load(resume / STATE, weights_only=True).get("run_key")
        if saved != request.run_key:
            raise UserError(
                f"{out} holds checkpoints of a different training run; use another output folder"
            )
    torch.manual_seed(hp.seed)
    random.seed(hp.seed)
    model, tok = load_model(request, cfg, dtype, resume)
    train = tokenize(tok, request.train, hp.max_length)
    val = tokenize(tok, request.validation[: cfg.val_examples], hp.max_length)
    if not train:
        raise UserError(
            "no training example has an answer token left after truncation to max_length"
        )
    lengths = [len(r["input_ids"]) for r in train]
    longest = max(lengths + [len(r["input_ids"]) for r in val])
    plan = Plan(lengths, hp, layout(hp, on_gpu, longest), dist.world_size)
    if compiled:
        compile_layers(model, plan.layout.token_budget)
    loss_module = wrap_distributed(answer_loss(model), cfg)
    opt, sched = make_optimizer(loss_module, hp, cfg, plan.total)

    state: dict[str, Any] = {
        "run_key": request.run_key,
        "curve": [],
        "tokens": 0,
        "seconds": 0.0,
        "resumed_from": None,
    }
    start = 0
    if resume is not None:
        state.update(restore(resume, opt, sched))
        start = state["step"]
        state["resumed_from"] = start
        events.resumed(start)

    low = dtype == "bfloat16"
    device_type = device().split(":")[0]
    autocast = torch.autocast(device_type, dtype=torch.bfloat16) if low else nullcontext()
    pad_id = tok.pad_token_id
    trainable = [p for p in loss_module.parameters() if p.requires_grad]
    pending: list[Any] = []  # per-step losses, on the device until the next log
    step = start
    window = Window()
    with Progress("training", plan.total, start=start, enabled=request.progress) as bar:
        while step < plan.total:
            if (dist.world_size == 1 or step % hp.log_every == 0) and stop_requested(events):
                weights = full_state(loss_module, cfg)
                save_checkpoint(out, step, model, tok, opt, sched, state, weights, sharded)
                raise Stopped(f"at step {step}")
            micro = plan.step(step)
            n_answer = sum(answer_tokens(train[i]) for b in micro for i in b)
            mine = micro[dist.rank :: dist.world_size]
            step_loss = torch.zeros((), device=device())
            for k, batch_ids in enumerate(mine):
                batch = collate([train[i] for i in batch_ids], plan.layout, pad_id)
                batch = {key: v.to(device()) for key, v in batch.items()}
                sync = k == len(mine) - 1 or not hasattr(loss_module, "no_sync")
                with nullcontext() if sync else loss_module.no_sync(), autocast:
                    loss = first_call(loss_module, batch, compiled and step == start and k == 0)
                    loss = loss / max(1, n_answer)
                # DDP and FSDP average gradients over the processes; the loss is already a share
                # of the whole step's, so the average is scaled back to the sum
                (loss * dist.world_size).backward()
                step_loss += loss.detach()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            window.tokens += sum(lengths[i] for b in micro for i in b)
            pending.append(step_loss)
            if step % hp.log_every == 0 or step == plan.total:
                losses = record(pending, state, step, window)
                pending = []
                rate = state["last_rate"]
                events.log(step, loss=sum(losses) / len(losses), lr=lr, tokens_per_s=rate)
                bar.update(step, f"loss {losses[-1]:.3f}  {rate:.0f} tok/s")
            if step % hp.save_every == 0 and step < plan.total:
                losses = record(pending, state, step, window)
                pending = []
                with window.paused():
                    weights = full_state(loss_module, cfg)
                    path = save_checkpoint(out, step, model, tok, opt, sched, state, weights,
                                           sharded)  # fmt: skip
                    val_loss = validation_loss(loss_module, val, plan.layout, pad_id, autocast)
                    if dist.is_main:
                        if val_loss is not None:
                            events.log(step, val_loss=val_loss)
                        events.checkpoint(step, path)  # the harness may evaluate it now
                        prune(out, cfg.keep_checkpoints)
                    barrier()

    # --- 9. the result --------------------------------------------------------------------------
    weights = full_state(loss_module, cfg)
    val_loss = validation_loss(loss_module, val, plan.layout, pad_id, autocast)
    if dist.is_main:
        if val_loss is not None:
            events.log(step, val_loss=val_loss)
        save_model(out, model, tok, weights)
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    barrier()
    kind: Literal["full", "adapter"] = "adapter" if cfg.method == "lora" else "full"
    seconds = state["seconds"]
    facts = {
        "steps": step,
        "planned_steps": plan.total,
        "resumed_from": state["resumed_from"],
        "tokens": state["tokens"],
        "train_seconds": round(seconds, 2),
        "tokens_per_s": round(state["tokens"] / seconds, 1) if seconds else None,
        "val_loss": val_loss,
        "dtype": dtype,
        "token_budget": plan.layout.rows * plan.layout.row_length or None,
        "compiled": compiled,
        "attention": getattr(model.config, "_attn_implementation", None),
        "world_size": dist.world_size,
        "peak_gpu_memory_gb": (
            round(torch.cuda.max_memory_allocated() / 1e9, 2) if on_gpu else None
        ),
        "loss_curve": state["curve"],
    }
    return TrainedModel(out, kind, facts)


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


def validation_loss(
    loss_module: Any, rows: list[Row], plan: Layout, pad_id: int, autocast: Any
) -> float | None:
    """Mean loss per answer token over the validation examples (every process computes it: a
    sharded model needs them all)."""
    import torch

    if not rows:
        return None
    loss_module.eval()
    total, count = 0.0, 0
    # the training layout, so a compiled model sees the shapes it compiled for
    batches = epoch_batches(0, [len(r["input_ids"]) for r in rows], plan, 0)
    with torch.no_grad():
        for ids in batches:
            chunk = [rows[i] for i in ids]
            batch = collate(chunk, plan, pad_id)
            batch = {k: v.to(device()) for k, v in batch.items()}
            with autocast:
                total += float(loss_module(**batch))
            count += sum(answer_tokens(r) for r in chunk)
    loss_module.train()
    return round(total / max(1, count), 5)
