"""The built-in `sft` trainer: supervised finetuning on the suite's chat examples, loss on the
answer only, full or LoRA. One recipe, top to bottom:

1. tokenize every conversation with the base model's chat template; labels are -100 on the prompt
2. plan the examples of every optimizer step up front from the seed, so a resumed run trains on
   exactly the batches the interrupted one would have
3. load the base: LoRA freezes it in bf16 (where the hardware runs bf16) and trains fp32 adapters;
   full finetuning keeps fp32 master weights and computes in bf16 under autocast
4. AdamW, warmup then cosine / linear / constant
5. resume from the newest complete checkpoint under output_dir/checkpoints, if there is one
6. train on packed micro-batches: the examples of a micro-batch are laid end to end in one row
   with position ids restarting at each example, so no compute is spent on padding and attention
   stays inside each example (transformers builds a block-diagonal mask from the position ids)
7. every `save_every` steps write a checkpoint atomically: a loadable model or adapter folder plus
   optimizer, scheduler, RNG state, step and loss curve; then tell the harness
8. write the final model (or adapter) and tuneval-manifest.json into output_dir

Why a plain loop rather than TRL's SFTTrainer: it is faster here, and the recipe stays readable.
Measured on this project's 2-core AMD EPYC (Zen 1, AVX2, no bf16: `dtype: auto` picks float32),
SmolLM2-135M, 8 packed examples per step, OMP_WAIT_POLICY=PASSIVE, the machine shared, the two
run back to back: LoRA 38 tokens/s against TRL SFTTrainer's 29 (packing, completion-only loss,
the same LoRA), full finetuning 30 against 25. Most of the gap is the vocabulary projection, which
this loop computes only where the next token is an answer token. LoRA on the top 8 of 30 layers
(`lora_layers=8`) trains at 64 tokens/s in 1.6 GB instead of 2.9 GB: backward stops at the lowest
adapted layer. Padding micro-batches instead of packing them measured 6 against 14 tokens/s.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import UserError
from trainers.protocol import (
    CHECKPOINTS,
    MANIFEST,
    Events,
    Hyperparameters,
    Messages,
    TrainedModel,
    TrainRequest,
)

STATE = "trainer_state.pt"


class Config(BaseModel):
    """Settings of the sft recipe (the common ones, such as learning_rate, are Hyperparameters)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(default=16, ge=1)
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
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    keep_checkpoints: int = Field(
        default=1, ge=1, description="newest checkpoints kept while training"
    )
    val_examples: int = Field(
        default=16, ge=0, description="validation examples scored at checkpoints and the end"
    )


class SFT:
    name = "sft"
    description = "supervised finetuning, loss on the answer only; full or LoRA (peft)"
    Config = Config

    def train(self, request: TrainRequest, events: Events) -> TrainedModel:
        return run(request, events)


trainer = SFT()


# --- 1. data ------------------------------------------------------------------------------------


def tokenize(
    tok: Any, conversations: Sequence[Messages], max_length: int
) -> list[dict[str, list[int]]]:
    from harness.data import tokenize_examples

    rows = tokenize_examples(tok, conversations, max_length)
    return [r for r in rows if any(label != -100 for label in r["labels"])]


# --- 2. the plan --------------------------------------------------------------------------------


def step_batches(step: int, n: int, hp: Hyperparameters) -> list[list[int]]:
    """The micro-batches (example indices) of optimizer step `step` (0-based). Epochs are seeded
    shuffles laid end to end, so any step's batches can be computed without replaying the others."""
    per_step = hp.batch_size * hp.grad_accum
    picked = []
    for pos in range(step * per_step, (step + 1) * per_step):
        epoch, i = divmod(pos, n)
        picked.append(_order(epoch, n, hp.seed)[i])
    return [picked[j : j + hp.batch_size] for j in range(0, per_step, hp.batch_size)]


_orders: dict[tuple[int, int, int], list[int]] = {}


def _order(epoch: int, n: int, seed: int) -> list[int]:
    key = (epoch, n, seed)
    if key not in _orders:
        order = list(range(n))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        _orders[key] = order
    return _orders[key]


def collate(rows: list[dict[str, list[int]]], packing: bool, pad_id: int) -> dict[str, Any]:
    import torch

    if packing:
        ids = [t for r in rows for t in r["input_ids"]]
        labels = [t for r in rows for t in r["labels"]]
        pos = [p for r in rows for p in range(len(r["input_ids"]))]
        return {
            "input_ids": torch.tensor([ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([pos]),
        }
    width = max(len(r["input_ids"]) for r in rows)
    pad = [width - len(r["input_ids"]) for r in rows]
    return {
        "input_ids": torch.tensor(
            [r["input_ids"] + [pad_id] * p for r, p in zip(rows, pad, strict=True)]
        ),
        "labels": torch.tensor([r["labels"] + [-100] * p for r, p in zip(rows, pad, strict=True)]),
        "attention_mask": torch.tensor(
            [[1] * len(r["input_ids"]) + [0] * p for r, p in zip(rows, pad, strict=True)]
        ),
    }


def answer_loss(model: Any, batch: dict[str, Any], n_items: int) -> Any:
    """Summed cross-entropy of the answer tokens, divided by the answer tokens of the whole step
    (so micro-batches of different lengths weigh every token alike). Logits are computed only
    where the next token is an answer token: the vocabulary projection is a fifth of a small
    model's compute, and most tokens are prompt."""
    import torch.nn.functional as F

    batch = {k: v.to(model.device) for k, v in batch.items()}
    labels = batch.pop("labels")
    # Positions whose next token is an answer token in any row (all of them are, packed).
    cols = (labels[:, 1:] != -100).any(0).nonzero().squeeze(1)
    logits = model(**batch, logits_to_keep=cols, use_cache=False).logits  # (rows, cols, vocab)
    targets = labels[:, cols + 1]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
    return loss / max(1, n_items)


# --- 3. the model -------------------------------------------------------------------------------


def compute_dtype(cfg: Config) -> str:
    from harness.hardware import best_dtype_name

    name = best_dtype_name() if cfg.dtype == "auto" else cfg.dtype
    return "bfloat16" if name == "bfloat16" else "float32"  # fp16 training needs loss scaling


def load_model(
    request: TrainRequest, cfg: Config, dtype: str, resume: Path | None
) -> tuple[Any, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from harness.hardware import device
    from harness.models import quiet_transformers

    quiet_transformers()
    base = request.base.path
    # Frozen LoRA base weights may live in bf16; trained weights stay fp32 (AdamW in bf16 loses
    # small updates).
    weights_dtype = (
        torch.bfloat16 if cfg.method == "lora" and dtype == "bfloat16" else torch.float32
    )
    source = resume if (resume is not None and cfg.method == "full") else base
    try:
        tok = AutoTokenizer.from_pretrained(base)
        config = AutoConfig.from_pretrained(source)
        if getattr(config, "quantization_config", None):
            # A GGUF export dequantized to plain safetensors still names its origin here, and
            # transformers then refuses to train or save it. The weights are plain floats.
            if dict(config.quantization_config).get("quant_method") == "gguf":
                del config.quantization_config
        model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=weights_dtype)
    except Exception as e:  # a broken folder raises OSError, ValueError, SafetensorError, ...
        raise UserError(
            f"base model '{request.base.name}' does not load from {base}: {e}"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.use_cache = False
    if cfg.method == "lora":
        import warnings

        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        from safetensors.torch import load_file

        # peft calls a transformers API that transformers 5 deprecates; not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")

        targets: str | list[str] = cfg.lora_targets
        if targets != "all-linear":
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        elif cfg.lora_layers:  # peft takes a layer subset only with named modules
            head = model.get_output_embeddings()
            targets = sorted(
                {
                    n.rsplit(".", 1)[-1]
                    for n, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and m is not head
                }
            )
        n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
        top = list(range(max(0, n_layers - cfg.lora_layers), n_layers)) if cfg.lora_layers else None
        lora = LoraConfig(
            layers_to_transform=top,
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
            base_model_name_or_path=str(base),
        )
        model = get_peft_model(model, lora)  # adapters are created in fp32
        model.peft_config["default"].base_model_name_or_path = str(base)
        if resume is not None:
            set_peft_model_state_dict(model, load_file(str(resume / "adapter_model.safetensors")))
    model.to(device())
    model.train()
    return model, tok


# --- 4. optimizer and schedule ------------------------------------------------------------------


def make_optimizer(model: Any, hp: Hyperparameters, cfg: Config, total: int) -> tuple[Any, Any]:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=cfg.weight_decay)
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


# --- 5. checkpoints -----------------------------------------------------------------------------


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((output_dir / CHECKPOINTS).glob("step-*/" + STATE))
    return found[-1].parent if found else None


def save_checkpoint(
    folder: Path, step: int, model: Any, tok: Any, opt: Any, sched: Any, state: dict[str, Any]
) -> Path:
    import torch

    target = folder / CHECKPOINTS / f"step-{step:07d}"
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    rng = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    payload = {
        "step": step,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": rng,
        **state,
    }
    torch.save(payload, tmp / STATE)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # a checkpoint exists completely or not at all
    return target


def restore(checkpoint: Path, opt: Any, sched: Any) -> dict[str, Any]:
    import torch

    payload = torch.load(checkpoint / STATE, weights_only=True)
    opt.load_state_dict(payload.pop("optimizer"))
    sched.load_state_dict(payload.pop("scheduler"))
    rng = payload.pop("rng")
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    random.setstate((3, tuple(rng["python"]), None))
    return payload


def prune(folder: Path, keep: int) -> None:
    done = sorted(p for p in (folder / CHECKPOINTS).glob("step-*") if not p.name.endswith(".tmp"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# --- 6. the loop --------------------------------------------------------------------------------


def run(request: TrainRequest, events: Events) -> TrainedModel:
    import torch

    hp, cfg = request.hyperparameters, Config.model_validate(request.config.model_dump())
    out = request.output_dir
    out.mkdir(parents=True, exist_ok=True)
    key = run_key(request)
    dtype = compute_dtype(cfg)

    resume = latest_checkpoint(out)
    if resume is not None and torch.load(resume / STATE, weights_only=True).get("run_key") != key:
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
    total = hp.steps(len(train))
    opt, sched = make_optimizer(model, hp, cfg, total)

    state: dict[str, Any] = {
        "run_key": key,
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
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16) if low else nullcontext()
    pad_id = tok.pad_token_id
    trainable = [p for p in model.parameters() if p.requires_grad]
    step = start
    with Progress(total, start, request.progress) as bar:
        while step < total and not (step > start and events.should_stop()):
            t0 = time.perf_counter()
            micro = [[train[i] for i in b] for b in step_batches(step, len(train), hp)]
            n_answer = sum(sum(1 for t in r["labels"][1:] if t != -100) for b in micro for r in b)
            loss_sum, n_tokens = 0.0, 0
            for rows in micro:
                batch = collate(rows, cfg.packing, pad_id)
                with autocast:
                    loss = answer_loss(model, batch, n_answer)
                loss.backward()
                loss_sum += loss.item()
                n_tokens += sum(len(r["input_ids"]) for r in rows)
            torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            seconds = time.perf_counter() - t0
            state["tokens"] += n_tokens
            state["seconds"] += seconds
            state["curve"].append([step, round(loss_sum, 5)])
            bar.update(step, loss_sum, n_tokens / seconds)
            if step % hp.log_every == 0 or step == total:
                recent = [loss for _, loss in state["curve"][-hp.log_every :]]
                events.log(
                    step, loss=sum(recent) / len(recent), lr=lr, tokens_per_s=n_tokens / seconds
                )
            if step % hp.save_every == 0 and step < total:
                path = save_checkpoint(out, step, model, tok, opt, sched, state)
                if (val_loss := validation_loss(model, val, pad_id, autocast)) is not None:
                    events.log(step, val_loss=val_loss)
                events.checkpoint(step, path)  # the harness may evaluate it now
                prune(out, cfg.keep_checkpoints)

    # --- 8. the result --------------------------------------------------------------------------
    val_loss = validation_loss(model, val, pad_id, autocast)
    if val_loss is not None:
        events.log(step, val_loss=val_loss)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    kind: Literal["full", "adapter"] = "adapter" if cfg.method == "lora" else "full"
    manifest = make_manifest(request, cfg, dtype, kind, state, step, total, len(train), val_loss)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    return TrainedModel(out, kind, manifest)


def validation_loss(
    model: Any, rows: list[dict[str, list[int]]], pad_id: int, autocast: Any
) -> float | None:
    """Mean loss per answer token over the validation examples."""
    import torch

    if not rows:
        return None
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in _chunks(rows, 8):
            n = sum(sum(1 for t in r["labels"][1:] if t != -100) for r in chunk)
            with autocast:
                loss = answer_loss(model, collate(chunk, True, pad_id), n)
            total += loss.item() * n
            count += n
    model.train()
    return round(total / max(1, count), 5)


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def run_key(request: TrainRequest) -> str:
    """What makes two requests the same training run, whose checkpoints a resume may use."""
    import hashlib

    blob = json.dumps(
        [
            request.base.fingerprint,
            request.data_fingerprint or request.train,
            request.hyperparameters.model_dump(),
            request.config.model_dump(),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def make_manifest(
    request: TrainRequest,
    cfg: Config,
    dtype: str,
    kind: str,
    state: dict[str, Any],
    step: int,
    total: int,
    n_train: int,
    val_loss: float | None,
) -> dict[str, Any]:
    from importlib.metadata import version

    libs = {}
    for lib in ("tuneval", "torch", "transformers", "peft"):
        try:
            libs[lib] = version(lib)
        except Exception:
            libs[lib] = None
    return {
        "format": 1,
        "trainer": "sft",
        "run_key": run_key(request),
        "kind": kind,
        "base": {
            "name": request.base.name,
            "path": str(request.base.path),
            "fingerprint": request.base.fingerprint,
        },
        "suite": request.suite,
        "data_fingerprint": request.data_fingerprint,
        "examples": {"train": n_train, "validation": len(request.validation)},
        "hyperparameters": request.hyperparameters.model_dump(),
        "config": cfg.model_dump(),
        "dtype": dtype,
        "libraries": libs,
        "steps": step,
        "planned_steps": total,
        "stopped_early": step < total,
        "resumed_from": state["resumed_from"],
        "tokens": state["tokens"],
        "train_seconds": round(state["seconds"], 2),
        "tokens_per_s": round(state["tokens"] / state["seconds"], 1) if state["seconds"] else None,
        "val_loss": val_loss,
        "loss_curve": state["curve"],
    }


# --- the progress bar -----------------------------------------------------------------------------


class Progress:
    """A rich progress bar on stderr: step, loss, tokens/s, time left."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.total, self.start, self.enabled = total, start, enabled

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, info="")
        return self

    def update(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self.enabled:
            self.bar.update(
                self.task, completed=step, info=f"loss {loss:.3f}  {tokens_per_s:.0f} tok/s"
            )

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
