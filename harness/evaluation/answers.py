"""A run's answers, wherever they come from: the generation cache where it holds them, else the
backend. Both hand each group of answers to `commit(rows, generations, cached)` as it comes, so a
killed run keeps what was committed. The runner calls it with one row per case, k-sample cases
(`harness.evaluation.sampled`) with one row per (case, sample) and each sample's seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.generation.types import Backend, Generation, GenSettings, Messages

CACHE_CHUNK = 256  # cached answers graded and committed together

Commit = Callable[[list[int], list[Generation], bool], None]


def answer(
    store: Any,  # harness.store.Store
    todo: Sequence[int],
    keys: Sequence[str],
    conversation: Callable[[int], Messages],
    backend: Backend,
    settings: GenSettings,
    commit: Commit,
    seed: Callable[[int], int] | None = None,
) -> dict[str, int]:
    """Answer the rows `todo` (indices into `keys`): cached ones first, in chunks, then the rest
    through `backend` (seeded per row by `seed` when sampling). Returns how many answers were
    generated (and their tokens) and taken from the cache."""
    hits = store.cached_generations([keys[r] for r in todo])
    from_cache = [r for r in todo if keys[r] in hits]
    for start in range(0, len(from_cache), CACHE_CHUNK):
        chunk = from_cache[start : start + CACHE_CHUNK]
        commit(chunk, [Generation.from_cache(hits[keys[r]]) for r in chunk], True)
    misses = [r for r in todo if keys[r] not in hits]
    tokens = 0
    if misses:

        def on_batch(batch: list[int], gens: list[Generation]) -> None:
            nonlocal tokens
            tokens += sum(g.n_tokens for g in gens)
            commit([misses[b] for b in batch], gens, False)

        convs = [conversation(r) for r in misses]
        if seed is None:
            backend.generate(convs, settings, on_batch)
        else:
            backend.generate(convs, settings, on_batch, seeds=[seed(r) for r in misses])
    return {"generated": len(misses), "generated_tokens": tokens, "from_cache": len(from_cache)}
