"""The local backend: transformers models on this machine, one engine per device (the `Backend`
protocol and its types are in `harness.generation.types`).

Every backend applies the model's chat template, decodes greedily by default, cuts each answer at
its stop strings, and hands results back in groups as rows finish, so the caller can commit them
(the cache lives in the store, see `harness.evaluation.runner`). The engines of the local backend:

- `pool` (the CPU default, `harness.generation.pool`): continuous batching on a growing KV cache;
- `static` (the CUDA default, `harness.generation.static`): a preallocated KV cache and one
  decode step captured as a CUDA graph and replayed, wide batches, finished rows checked every few
  steps;
- `hf`: `model.generate` on fixed length-sorted batches, the reference the tests hold the
  others to, and the fallback for models whose cache the others cannot drive.

A served model (`tuneval models add`) goes through `harness.generation.served` instead; which
backend answers for a model is decided in `harness.generation.dispatch`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError
from harness.generation.models import ModelRef
from harness.generation.types import (
    Generation,
    GenSettings,
    Messages,
    OnBatch,
    apply_stop,
)
from harness.progress import Progress

CPU_WIDTH = 32  # rows decoded together by the CPU pool (bench/engine_probe.py measured 32 and 64)
ENGINES = ("auto", "static", "pool", "hf")


def render(tok: Any, messages: Messages) -> str:
    """A conversation as the model sees it: its chat template with the assistant header."""
    if getattr(tok, "chat_template", None):
        from harness.generation.chat_template import apply

        name = str(getattr(tok, "name_or_path", ""))
        return str(apply(tok, messages, name, tokenize=False, add_generation_prompt=True))
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


@dataclass
class HFBackend:
    """Local transformers generation. `engine="auto"` picks `static` on CUDA and `pool` on the CPU
    (see the module docstring; `TUNEVAL_ENGINE` overrides it); `batch_size` None lets the engine
    size its batch."""

    ref: ModelRef
    batch_size: int | None = None
    dtype: str | None = None
    progress: bool = True
    engine: str = "auto"  # auto | pool | static | hf
    pack_weights: bool = True  # oneDNN-prepacked float32 Linear layers on the CPU
    engine_ran: str | None = field(default=None, init=False)  # the engine of the last generate
    _model: Any = field(default=None, repr=False)
    _tok: Any = field(default=None, repr=False)

    def _load(self) -> None:
        if self._model is None:
            from harness.generation.models import load

            self._model, self._tok = load(self.ref, self.dtype)
            self._tok.padding_side = "left"
            if self.pack_weights and self._model.device.type == "cpu":
                from harness.generation.kernels import pack_linears

                pack_linears(self._model, self.batch_size or CPU_WIDTH)

    def choose_engine(self, settings: GenSettings) -> str:
        from harness.generation.pool import mergeable_cache

        engine = self.engine if self.engine != "auto" else os.environ.get("TUNEVAL_ENGINE", "auto")
        if (
            engine == "vllm"
        ):  # harness.generation.vllm_engine answers the cases; what is left runs here
            engine = "auto"
        if engine not in ENGINES:
            raise UserError(f"TUNEVAL_ENGINE={engine!r}: use one of {', '.join(ENGINES)}")
        if engine == "static" and settings.temperature != 0:
            raise UserError(
                "the static engine decodes greedily only, and this suite samples "
                f"(temperature {settings.temperature}): use TUNEVAL_ENGINE=pool or hf"
            )
        if engine != "auto":
            return engine
        if self._model.device.type == "cuda" and settings.temperature == 0:
            from harness.generation.static import supported

            if supported(self._model):
                return "static"
        return "pool" if mergeable_cache(self._model) else "hf"

    def generate(
        self,
        conversations: Sequence[Messages],
        settings: GenSettings,
        on_batch: OnBatch,
        *,
        seeds: Sequence[int] | None = None,
    ) -> None:
        self._load()
        tok = self._tok
        prompts = [render(tok, m) for m in conversations]
        ids = tok(prompts, add_special_tokens=False)["input_ids"]
        order = sorted(range(len(prompts)), key=lambda i: -len(ids[i]))  # longest first: fail early
        engine = self.engine_ran = self.choose_engine(settings)
        # a sampled row draws from its own generator, seeded by (seed, prompt): batch mates,
        # batch order and width do not change its answer
        row_seeds = list(seeds) if seeds is not None else [settings.seed] * len(prompts)
        t0 = time.perf_counter()
        tokens = 0
        with Progress("generating", len(prompts), enabled=self.progress) as bar:

            def emit(rows: list[int], gens: list[Generation]) -> None:
                nonlocal tokens
                on_batch(rows, gens)
                tokens += sum(g.n_tokens for g in gens)
                rate = tokens / max(time.perf_counter() - t0, 1e-9)
                bar.advance(len(rows), f"{rate:.0f} tok/s")

            if engine == "static":
                from harness.generation.static import StaticEngine

                StaticEngine(self._model, tok, settings, self.batch_size).run(
                    [(i, ids[i]) for i in order], emit
                )
            elif engine == "pool":
                from harness.generation.pool import Pool

                Pool(self._model, tok, settings, self.batch_size or CPU_WIDTH, emit, row_seeds).run(
                    [(i, ids[i], prompts[i]) for i in order]
                )
            else:
                width = self.batch_size or CPU_WIDTH
                for k in range(0, len(order), width):
                    batch = order[k : k + width]
                    gens = self._generate_hf(
                        [prompts[i] for i in batch], settings, [row_seeds[i] for i in batch]
                    )
                    emit(batch, gens)

    def _generate_hf(
        self, prompts: list[str], settings: GenSettings, seeds: list[int]
    ) -> list[Generation]:
        import torch

        from harness.generation.pool import row_generator

        tok, model = self._tok, self._model
        t0 = time.perf_counter()
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "pad_token_id": tok.pad_token_id,
            "do_sample": False,  # sampling happens per row in RowSampler; the pick is then greedy
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }
        if settings.temperature > 0:
            from transformers import LogitsProcessorList

            from harness.generation.pool import RowSampler

            gens = [row_generator(seed, p) for seed, p in zip(seeds, prompts, strict=True)]
            kwargs["logits_processor"] = LogitsProcessorList([RowSampler(gens, settings)])
        if settings.stop:
            kwargs.update(stop_strings=list(settings.stop), tokenizer=tok)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :]
        seconds = (time.perf_counter() - t0) / len(prompts)
        lengths = enc["attention_mask"].sum(-1).tolist()
        gens = []
        for row, n_prompt in zip(new, lengths, strict=True):
            ids = row.tolist()
            n = count_tokens(ids, tok.eos_token_id, tok.pad_token_id)
            text = tok.decode(ids[:n], skip_special_tokens=True)
            gens.append(Generation(apply_stop(text, settings.stop).strip(), n, seconds, n_prompt))
        return gens


def count_tokens(ids: list[int], eos: int | None, pad: int | None) -> int:
    """Generated tokens up to and including the first end-of-sequence (padding excluded)."""
    for i, t in enumerate(ids):
        if t == eos or (t == pad and pad != eos):
            return i + 1 if t == eos else i
    return len(ids)
