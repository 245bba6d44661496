"""The sft recipe's model (steps 3 and 4 of `trainers.sft`): the base loaded for training (LoRA
freezes it in bf16 where the hardware runs bf16 and trains fp32 adapters; full finetuning keeps
fp32 master weights), the settings that depend on the model checked before anything is written,
the answer-only loss as a module of its own, and the wrapping for several processes (DDP, or
FSDP with `fsdp=true`) with the two collectives the recipe needs.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.plugin import (
    IGNORE,
    BaseModelInfo,
    TrainRequest,
    UserError,
    compute_dtype,
    device,
    distributed,
    init_group,
    lora_target_modules,
)

if TYPE_CHECKING:
    from trainers.sft import Config


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
    first step, where the recipe (`trainers.sft.first_call`) turns the error into a UserError."""
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
