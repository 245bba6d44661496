"""The generation engine: chat template, length-sorted batches, left padding, per-row stop strings,
greedy by default, bf16 where the hardware has it. Results are handed back one batch at a time so
the caller can commit them; the cache lives in the store (see `harness.runner`)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from harness.models import ModelRef

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenSettings:
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    dtype: str = "float32"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        if self.temperature == 0.0:  # greedy: sampling knobs don't change the output
            d.pop("top_p")
            d.pop("seed")
        return d


def cache_key(model_fingerprint: str, messages: Messages, settings: GenSettings) -> str:
    """The chat template is part of the model fingerprint, so messages stand for the prompt."""
    blob = json.dumps([model_fingerprint, messages, settings.as_dict()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Generation:
    output: str
    n_tokens: int
    seconds: float = 0.0


OnBatch = Callable[[list[int], list[Generation]], None]


class Backend(Protocol):
    """Anything that turns chat conversations into text."""

    def render(self, messages: Messages) -> str: ...

    def generate(
        self, conversations: Sequence[Messages], settings: GenSettings, on_batch: OnBatch
    ) -> None: ...


def apply_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return text[:cut] if cut >= 0 else text


@dataclass
class HFBackend:
    """Local transformers generation."""

    ref: ModelRef
    batch_size: int = 16
    dtype: str | None = None
    progress: bool = True
    _model: Any = field(default=None, repr=False)
    _tok: Any = field(default=None, repr=False)

    def _load(self) -> None:
        if self._model is None:
            from harness.models import load

            self._model, self._tok = load(self.ref, self.dtype)
            self._tok.padding_side = "left"

    @property
    def tokenizer(self) -> Any:
        if self._tok is None:
            from harness.models import load_tokenizer

            self._tok = load_tokenizer(self.ref)
            self._tok.padding_side = "left"
        return self._tok

    def render(self, messages: Messages) -> str:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return str(
                tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def generate(
        self, conversations: Sequence[Messages], settings: GenSettings, on_batch: OnBatch
    ) -> None:
        import torch

        self._load()
        tok, model = self._tok, self._model
        prompts = [self.render(m) for m in conversations]
        lengths = [len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])  # longest first: fail early
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        with _progress(len(prompts), self.progress) as bar:
            for batch in batches:
                t0 = time.perf_counter()
                enc = tok(
                    [prompts[i] for i in batch],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                enc = {k: v.to(model.device) for k, v in enc.items()}
                kwargs: dict[str, Any] = {
                    "max_new_tokens": settings.max_new_tokens,
                    "pad_token_id": tok.pad_token_id,
                    "do_sample": settings.temperature > 0,
                }
                if settings.temperature > 0:
                    torch.manual_seed(settings.seed)
                    kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
                else:
                    kwargs.update(temperature=None, top_p=None, top_k=None)
                if settings.stop:
                    kwargs.update(stop_strings=list(settings.stop), tokenizer=tok)
                with torch.inference_mode():
                    out = model.generate(**enc, **kwargs)
                new = out[:, enc["input_ids"].shape[1] :]
                seconds = time.perf_counter() - t0
                gens = []
                for row in new:
                    ids = row.tolist()
                    n = _count_tokens(ids, tok.eos_token_id, tok.pad_token_id)
                    text = tok.decode(ids[:n], skip_special_tokens=True)
                    gens.append(
                        Generation(apply_stop(text, settings.stop).strip(), n, seconds / len(batch))
                    )
                on_batch(batch, gens)
                bar(len(batch), sum(g.n_tokens for g in gens))


def _count_tokens(ids: list[int], eos: int | None, pad: int | None) -> int:
    for i, t in enumerate(ids):
        if t == eos or (t == pad and pad != eos):
            return i + 1 if t == eos else i
    return len(ids)


class _progress:
    """A rich progress bar on stderr with generated tokens per second."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.tokens, self.t0 = 0, time.perf_counter()

    def __enter__(self) -> Callable[[int, int], None]:
        if not self.enabled:
            return lambda n, t: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("gen", total=self.total, rate="")

        def advance(n: int, tokens: int) -> None:
            self.tokens += tokens
            rate = self.tokens / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, advance=n, rate=f"{rate:.0f} tok/s")

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
