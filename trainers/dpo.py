"""The built-in `dpo` trainer: direct preference optimisation on TRL's `DPOTrainer`, from a file of
preference pairs (`tuneval data pairs SUITE --out pairs.jsonl`, or any file in TRL's
conversational preference format). One recipe, top to bottom:

1. the settings: `pairs=FILE` is required; the file is read and checked when the settings are
   (one located line per mistake: file, line, field), and its sha256 joins the run's identity,
   so new pairs make a new candidate (the name ends in `-p<first 8 hex of the sha256>`)
2. load the base; LoRA by default (peft), so the frozen base, adapters switched off, is the
   reference model and no second copy is held; `method=full` loads a frozen reference copy
3. `DPOTrainer` writes its checkpoints as `checkpoint-N` under output_dir/checkpoints; one left
   half-written by a `kill -9` (no trainer_state.json, which transformers writes last) is removed,
   and the newest complete one is resumed from: optimizer, scheduler, RNG and data position
4. a callback reports loss, learning rate and reward margins, tells the harness of each
   checkpoint, and stops at a step boundary with a checkpoint when the harness asks
5. write the final adapter (or model) into output_dir and return what was measured

The pairs' rows may carry more fields (tuneval writes its grades under `tuneval`); only
`prompt`, `chosen` and `rejected` are trained on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from harness.plugin import (
    CHECKPOINTS,
    PAIRS_PENDING,
    Events,
    Hyperparameters,
    Stopped,
    TrainedModel,
    TrainRequest,
    UserError,
    compute_dtype,
    device,
    distributed,
    lora_target_modules,
)

RUN_KEY = "run_key.txt"  # beside the checkpoints: whose checkpoints they are


class Config(BaseModel):
    """Settings of the dpo recipe (learning_rate, max_steps, max_length, batch_size... are the
    common Hyperparameters)."""

    model_config = ConfigDict(extra="forbid")

    pairs: str = Field(
        exclude=True,  # the file's content (pairs_sha256) is the identity, not where it lies
        description="preference pairs, JSONL in TRL's conversational format "
        "(tuneval data pairs --out FILE)",
    )
    beta: float = Field(
        default=0.1, gt=0, le=100, allow_inf_nan=False, description="how far from the reference"
    )
    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(default=16, ge=1, le=4096)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_targets: str = Field(
        default="all-linear", description="'all-linear' or comma-separated module names"
    )
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        default="auto", description="compute dtype"
    )
    gradient_checkpointing: bool = Field(
        default=False, description="recompute activations in backward: less memory, more time"
    )
    keep_checkpoints: int = Field(
        default=1, ge=1, description="newest checkpoints kept while training"
    )
    allow_test_pairs: bool = Field(
        default=False,
        description="train on pairs made of test cases (human labels): their verdict then "
        "overstates the candidate",
    )
    _sha256: str | None = PrivateAttr(default=None)
    _rows: int = PrivateAttr(default=0)

    @field_validator("pairs")
    @classmethod
    def _readable_pairs(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("needs a pairs file (tuneval data pairs SUITE --out FILE)")
        if info.context and info.context.get(PAIRS_PENDING):
            return value
        path = Path(value).expanduser().resolve()
        check_pairs(path)  # raises ValueError naming the file, line and field
        return str(path)

    @model_validator(mode="after")
    def _test_pairs_refused(self) -> Config:
        # fields validate in order, so `pairs` cannot see allow_test_pairs: checked here
        path = Path(self.pairs)
        if path.is_file() and not self.allow_test_pairs:
            first = first_test_row(path)
            if first is not None:
                raise ValueError(
                    f"{path}:{first}: field 'tuneval.split' is 'test': pairs made of test cases "
                    "(human labels) are refused for training; --set allow_test_pairs=true trains "
                    "on them anyway, and the candidate's verdict on those cases then measures "
                    "memory, not skill"
                )
        return self

    def model_post_init(self, _context: Any) -> None:
        path = Path(self.pairs)
        if path.is_file():
            data = path.read_bytes()
            self._sha256 = hashlib.sha256(data).hexdigest()
            self._rows = sum(1 for line in data.splitlines() if line.strip())

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pairs_sha256(self) -> str | None:
        return self._sha256

    @property
    def name_tag(self) -> str:
        """Added to the candidate's name: which pairs it learned from."""
        return f"p{self._sha256[:8]}" if self._sha256 else ""


class DPO:
    name = "dpo"
    description = "direct preference optimisation on graded pairs (TRL DPOTrainer); LoRA or full"
    Config = Config

    def train(self, request: TrainRequest, events: Events) -> TrainedModel:
        return run(request, events)


trainer = DPO()


# --- 1. the pairs -------------------------------------------------------------------------------

TRAINED = ("prompt", "chosen", "rejected")


def check_pairs(path: Path) -> int:
    """Rows of a pairs file, each checked: a JSON object whose prompt, chosen and rejected are
    lists of {role, content} messages (the prompt ending with a user turn, the answers with an
    assistant one). Mistakes raise ValueError naming the file, line and field."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot be read ({e.__class__.__name__}: {e})") from None
    n = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{where}: not JSON ({e})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object with prompt, chosen, rejected")
        for key in TRAINED:
            messages = row.get(key)
            if not isinstance(messages, list) or not messages:
                raise ValueError(f"{where}: field '{key}' must be a non-empty list of messages")
            for m in messages:
                if not (
                    isinstance(m, dict)
                    and isinstance(m.get("role"), str)
                    and isinstance(m.get("content"), str)
                ):
                    raise ValueError(f"{where}: field '{key}': each message needs role and content")
        if row["prompt"][-1]["role"] != "user":
            raise ValueError(f"{where}: field 'prompt' must end with a user message")
        for key in ("chosen", "rejected"):
            if row[key][-1]["role"] != "assistant":
                raise ValueError(f"{where}: field '{key}' must end with an assistant message")
        n += 1
    if n == 0:
        raise ValueError(f"{path}: holds no pairs")
    return n


def first_test_row(path: Path) -> int | None:
    """The line of the first pair made of a test case (`tuneval.split` is "test"), if any."""
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            meta = json.loads(line).get("tuneval")
            if isinstance(meta, dict) and meta.get("split") == "test":
                return lineno
    return None


def load_pairs(path: Path) -> Any:
    """The trained columns as a `datasets.Dataset`: extra fields stay in the file, for people."""
    from datasets import Dataset

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return Dataset.from_list([{k: r[k] for k in TRAINED} for r in rows])


# --- 2. the model -------------------------------------------------------------------------------


def load_model(request: TrainRequest, cfg: Config, dtype: str) -> tuple[Any, Any, Any]:
    """(policy, reference or None, tokenizer). With LoRA the reference is the policy with its
    adapters switched off, which TRL does when no reference is given."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    base = request.base.path

    def one() -> Any:
        config = AutoConfig.from_pretrained(base)
        quant = getattr(config, "quantization_config", None)
        if quant and dict(quant).get("quant_method") == "gguf":
            # A GGUF export dequantized to safetensors still names its origin; the weights are
            # plain floats, which transformers would otherwise refuse to train.
            del config.quantization_config
        return AutoModelForCausalLM.from_pretrained(base, config=config, dtype=torch.float32)

    try:
        tok = AutoTokenizer.from_pretrained(base)
        model = one()
        ref = one() if cfg.method == "full" else None
    except Exception as e:  # a broken folder raises OSError, ValueError, SafetensorError, ...
        raise UserError(
            f"base model '{request.base.name}' does not load from {base}: {e}"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.use_cache = False
    return model, ref, tok


def lora_config(model: Any, cfg: Config) -> Any:
    from peft import LoraConfig

    targets, _ = lora_target_modules(model, cfg.lora_targets)
    hidden = int(getattr(model.config, "hidden_size", 0) or 0)
    if hidden and cfg.lora_r > hidden:
        raise UserError(f"lora_r={cfg.lora_r} is larger than the model's width ({hidden})")
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


# --- 3. checkpoints -----------------------------------------------------------------------------


def complete_checkpoint(folder: Path, run_key: str) -> Path | None:
    """The newest complete checkpoint-N under `folder`, after removing those a kill left
    half-written; refuses checkpoints of another run."""
    if not folder.is_dir():
        return None
    saved = folder / RUN_KEY
    if saved.is_file() and saved.read_text().strip() != run_key:
        raise UserError(
            f"{folder.parent} holds checkpoints of a different training run; "
            "use another output folder"
        )
    found = []
    for p in folder.glob("checkpoint-*"):
        if not p.name.removeprefix("checkpoint-").isdigit():
            continue
        if (p / "trainer_state.json").is_file():
            found.append(p)
        else:  # killed while saving: transformers writes trainer_state.json last
            shutil.rmtree(p, ignore_errors=True)
    found.sort(key=lambda p: int(p.name.removeprefix("checkpoint-")))
    return found[-1] if found else None


# --- 4. the bridge to the harness ----------------------------------------------------------------


@functools.cache
def _bridge_class() -> type:
    from transformers import TrainerCallback

    class Bridge(TrainerCallback):  # type: ignore[misc]
        """Loss and reward margins to the harness, checkpoints too, and a stop on request."""

        def __init__(self, events: Events) -> None:
            self.events = events
            self.stopped = False

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = logs or {}
            if "loss" not in logs:
                return
            wanted = {
                "loss": "loss",
                "learning_rate": "lr",
                "rewards/margins": "reward_margin",
                "rewards/accuracies": "reward_accuracy",
            }
            metrics = {v: float(logs[k]) for k, v in wanted.items() if k in logs}
            self.events.log(int(state.global_step), **metrics)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.events.should_stop():
                self.stopped = True
                control.should_save = True  # a checkpoint at this very step, then stop
                control.should_training_stop = True

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.stopped:
                return
            step = int(state.global_step)
            self.events.checkpoint(step, Path(args.output_dir) / f"checkpoint-{step}")

    return Bridge


def dpo_args(hp: Hyperparameters, cfg: Config, folder: Path, dtype: str, progress: bool) -> Any:
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(folder),
        max_steps=hp.max_steps or -1,
        num_train_epochs=hp.epochs,
        learning_rate=hp.learning_rate,
        lr_scheduler_type=hp.scheduler,
        warmup_steps=hp.warmup,  # below 1: a share of the steps
        per_device_train_batch_size=hp.batch_size,
        gradient_accumulation_steps=hp.grad_accum,
        max_length=hp.max_length,
        seed=hp.seed,
        save_steps=hp.save_every,
        logging_steps=hp.log_every,
        save_total_limit=cfg.keep_checkpoints,
        beta=cfg.beta,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=dtype == "bfloat16",
        use_cpu=not device().startswith("cuda"),
        report_to=[],
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )


# --- 5. the run ---------------------------------------------------------------------------------


def run(request: TrainRequest, events: Events) -> TrainedModel:
    cfg = request.config
    if not isinstance(cfg, Config):
        raise UserError("the dpo trainer needs its own Config (pairs=FILE)")
    if distributed().world_size > 1:
        raise UserError("the dpo trainer runs in one process; leave out --nproc")
    hp, out = request.hyperparameters, request.output_dir
    folder = out / CHECKPOINTS
    resume = complete_checkpoint(folder, request.run_key)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_KEY).write_text(request.run_key + "\n")
    pairs = Path(cfg.pairs)
    dataset = load_pairs(pairs)
    from_tests = warn_of_test_pairs(pairs)
    dtype = compute_dtype(cfg.dtype)
    model, ref, tok = load_model(request, cfg, dtype)
    peft = lora_config(model, cfg) if cfg.method == "lora" else None

    import datasets
    from transformers import PrinterCallback, ProgressCallback
    from trl import DPOTrainer

    datasets.disable_progress_bars()
    bridge = _bridge_class()(events)
    t0 = time.perf_counter()
    dpo = DPOTrainer(
        model=model,
        ref_model=ref,
        args=dpo_args(hp, cfg, folder, dtype, request.progress),
        train_dataset=dataset,
        processing_class=tok,
        peft_config=peft,
        callbacks=[bridge],
    )
    dpo.remove_callback(PrinterCallback)  # the harness logs; no dicts on stdout
    if not request.progress:
        dpo.remove_callback(ProgressCallback)
    kept: Any = dpo.train_dataset  # a map-style Dataset: it came from a list
    if len(kept) == 0:
        raise UserError(f"{pairs}: every pair's prompt fills max_length={hp.max_length}; raise it")
    resumed_from = None
    if resume is not None:
        resumed_from = int(json.loads((resume / "trainer_state.json").read_text())["global_step"])
        events.resumed(resumed_from)
    dpo.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - t0
    step = int(dpo.state.global_step)
    if bridge.stopped:
        raise Stopped(f"at step {step}")
    dpo.save_model(str(out))
    tok.save_pretrained(out)
    shutil.rmtree(folder, ignore_errors=True)
    facts = measured(dpo.state, seconds, resumed_from, dtype)
    facts["pairs"] = {
        "path": str(pairs),
        "sha256": cfg.pairs_sha256,
        "rows": len(dataset),
        "from_test_cases": from_tests,
    }
    return TrainedModel(out, "adapter" if cfg.method == "lora" else "full", facts)


def warn_of_test_pairs(pairs: Path) -> bool:
    """Whether the pairs were made of test cases; if so, a warning (they were allowed, or the
    settings would have been refused)."""
    if first_test_row(pairs) is None:
        return False
    import sys

    sys.stderr.write(
        f"warning: {pairs} holds pairs made of test cases (allow_test_pairs=true): "
        "evaluations on those cases will measure memory, not skill\n"
    )
    return True


def measured(state: Any, seconds: float, resumed_from: int | None, dtype: str) -> dict[str, Any]:
    """What the run measured, from the trainer's state and its log history."""
    history = state.log_history
    curve = [[int(h["step"]), round(float(h["loss"]), 5)] for h in history if "loss" in h]
    tokens = max((float(h.get("num_tokens", 0)) for h in history), default=0.0)
    last: dict[str, Any] = next((h for h in reversed(history) if "rewards/margins" in h), {})
    return {
        "steps": int(state.global_step),
        "planned_steps": int(state.max_steps),
        "resumed_from": resumed_from,
        "tokens": int(tokens),
        "train_seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1) if seconds and tokens else None,
        "val_loss": None,
        "dtype": dtype,
        "loss_curve": curve,
        "reward_margin": last.get("rewards/margins"),
        "reward_accuracy": last.get("rewards/accuracies"),
    }
