"""What every generation backend shares: the `Backend` protocol, its settings and results, the
cache key of an answer, stop strings and end-of-sequence tokens. The engines themselves live beside
it (local, pool, static, served, vllm_engine); callers import the types from here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from harness.store import GenerationRow, generation_row

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenSettings:
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    dtype: str = "float32"
    # "" for the local engines, whose float32 greedy answers agree (pool, static and hf are
    # held to one another by the tests), so they share cache entries; "vllm" for vLLM, whose
    # kernels round differently: its answers are cached and keyed apart, so neither engine's
    # answer ever stands in for the other's.
    engine: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        if not self.engine:  # the local engines' keys stay what they were before engines
            d.pop("engine")
        if self.temperature == 0.0:  # greedy: sampling knobs don't change the output
            d.pop("top_p")
            d.pop("seed")
        return d


def cache_key(model_fingerprint: str, messages: Messages, settings: GenSettings) -> str:
    """The chat template is part of the model fingerprint, so messages stand for the prompt."""
    blob = json.dumps([model_fingerprint, messages, settings.as_dict()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def request_seed(seed: int, conv: Messages) -> int:
    """The seed of one sampled request to vLLM (which seeds each request on its own): from a
    sample's own seed, else the suite's, and the conversation. The served client and the
    in-process worker derive it alike, so both ways draw the same samples."""
    blob = f"{seed}\0{conv}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


@dataclass
class Generation:
    output: str
    n_tokens: int  # generated tokens, the end-of-sequence token included
    seconds: float = 0.0  # this answer's share of the decoding time
    prompt_tokens: int | None = None

    @classmethod
    def from_cache(cls, hit: Mapping[str, Any]) -> Generation:
        """A generation-cache entry as the answer it was, with what generating it cost."""
        return cls(hit["output"], hit["n_tokens"], hit["seconds"], hit["prompt_tokens"])

    def cache_row(
        self, key: str, model_fingerprint: str, messages: Messages, settings: GenSettings
    ) -> GenerationRow:
        """This answer as the generation-cache entry for `key` (see `cache_key`)."""
        return generation_row(
            key, model_fingerprint, messages, settings.as_dict(), self.output,
            n_tokens=self.n_tokens, prompt_tokens=self.prompt_tokens, seconds=self.seconds,
        )  # fmt: skip


OnBatch = Callable[[list[int], list[Generation]], None]


class Backend(Protocol):
    """Anything that turns chat conversations into text."""

    def generate(
        self,
        conversations: Sequence[Messages],
        settings: GenSettings,
        on_batch: OnBatch,
        *,
        seeds: Sequence[int] | None = None,
    ) -> None:
        """Answer every conversation; call `on_batch(indices, generations)` as rows finish.
        When sampling, `seeds` (one per conversation, `harness.comparison.sampling.sample_seed`)
        seed each row on its own, in place of `settings.seed`."""
        ...


def apply_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return text[:cut] if cut >= 0 else text


def eos_ids(model: Any, tok: Any) -> set[int]:
    """Every token that ends an answer: the tokenizer's and the generation config's."""
    ids = {tok.eos_token_id} | set(_as_list(model.generation_config.eos_token_id))
    ids.discard(None)
    return ids


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]
