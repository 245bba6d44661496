"""The CPU decoder: continuous batching on one growing KV cache. A row that reaches EOS, a stop
string or `max_new_tokens` leaves the pool and the cache at once; waiting prompts (longest first)
are prefilled and merged in, left padded, so the pool stays full until the queue runs dry. Why this
pays on a CPU, and by how much, is measured by `bench/engine_probe.py` (bench/RESULTS.md)."""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.generation.types import Generation, GenSettings, apply_stop, eos_ids


def mergeable_cache(model: Any) -> bool:
    """The pool needs a decoder whose every layer keeps a plain, growing key/value cache."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if getattr(model.config, "is_encoder_decoder", False):
        return False
    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # noqa: BLE001 - an unusual cache is a reason to fall back, not to fail
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


class Pool:
    """Continuous batching on one DynamicCache. Rows are left padded: column j of
    the cache is the same step for every row, a row's own positions come from its mask, and the
    leading columns that no live row uses any more are cut off after each eviction."""

    def __init__(
        self,
        model: Any,
        tok: Any,
        settings: GenSettings,
        width: int,
        emit: Callable[[list[int], list[Generation]], None],
        seeds: Sequence[int] | None = None,
    ) -> None:
        self.model, self.tok, self.settings, self.emit = model, tok, settings, emit
        self.seeds = seeds  # per row (by case index); None: settings.seed for every row
        self.width = max(1, width)
        self.refill_at = max(1, self.width // 8)  # amortize a prefill over a few free slots
        self.flush_at = max(1, self.width // 2)  # hand results over in groups, not one by one
        self.eos = eos_ids(model, tok)
        self.tail = max((len(s) for s in settings.stop), default=0) + 4
        # transformers 5.x renamed `past_key_values` to `cache` along the way
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.cache: Any = None
        self.mask: Any = None
        self.nxt: Any = None
        self.rows: list[int] = []  # the case index of each pool row
        self.tokens: dict[int, list[int]] = {}
        self.seconds: dict[int, float] = {}
        self.prompt_len: dict[int, int] = {}
        self.gens: dict[int, Any] = {}  # per-row sampling generators
        self.done: list[tuple[int, Generation]] = []

    def run(self, queue: list[tuple[int, list[int], str]]) -> None:
        import torch

        with torch.inference_mode():
            while queue or self.rows:
                free = self.width - len(self.rows)
                if queue and (free >= self.refill_at or not self.rows):
                    take, queue = queue[:free], queue[free:]
                    self._admit(take)
                self._record()
                if self.rows:
                    self._step()
                if len(self.done) >= self.flush_at or not (queue or self.rows):
                    self._flush()

    def _admit(self, take: list[tuple[int, list[int], str]]) -> None:
        import torch
        from transformers import DynamicCache

        t0 = time.perf_counter()
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        length = max(len(ids) for _, ids, _ in take)
        input_ids = torch.tensor([[pad] * (length - len(ids)) + ids for _, ids, _ in take])
        mask = torch.tensor([[0] * (length - len(ids)) + [1] * len(ids) for _, ids, _ in take])
        device = self.model.device
        input_ids, mask = input_ids.to(device), mask.to(device)
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
            logits_to_keep=1,
            **{self.cache_arg: cache},
        )
        rows = [i for i, _, _ in take]
        for i, ids, prompt in take:
            self.prompt_len[i] = len(ids)
            self.tokens[i] = []
            self.seconds[i] = 0.0
            if self.settings.temperature > 0:
                seed = self.seeds[i] if self.seeds is not None else self.settings.seed
                self.gens[i] = row_generator(seed, prompt)
        nxt = self._choose(out.logits[:, -1], rows)
        if self.cache is None:
            self.cache, self.mask, self.nxt = cache, mask, nxt
        else:
            self.mask = _merge(self.cache, self.mask, cache, mask)
            self.nxt = torch.cat([self.nxt, nxt])
        self.rows += rows
        share = (time.perf_counter() - t0) / len(rows)
        for i in rows:
            self.seconds[i] += share

    def _record(self) -> None:
        """Append the pending token of every row; rows that are finished leave the pool."""
        import torch

        keep = []
        for j, (i, token) in enumerate(zip(self.rows, self.nxt.tolist(), strict=True)):
            ids = self.tokens[i]
            ids.append(token)
            finished = token in self.eos or len(ids) >= self.settings.max_new_tokens
            if not finished and self.settings.stop:  # a stop string ends in the newest tokens
                tail = self.tok.decode(ids[-self.tail :], skip_special_tokens=True)
                finished = any(s in tail for s in self.settings.stop)
            if finished:
                self.done.append((i, self._finish(i)))
            else:
                keep.append(j)
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[j] for j in keep]
        if not keep:
            self.cache = self.mask = self.nxt = None
            return
        idx = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(idx)
        self.mask, self.nxt = self.mask[idx], self.nxt[idx]
        used = self.mask.any(0).nonzero()
        lead = int(used[0]) if len(used) else 0
        if lead:  # columns left of every live row's prompt: drop them from the cache
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., lead:, :]
                layer.values = layer.values[..., lead:, :]
            self.mask = self.mask[:, lead:]

    def _step(self) -> None:
        import torch

        t0 = time.perf_counter()
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        out = self.model(
            input_ids=self.nxt[:, None],
            attention_mask=self.mask,
            position_ids=self.mask.sum(-1, keepdim=True) - 1,
            use_cache=True,
            **{self.cache_arg: self.cache},
        )
        self.nxt = self._choose(out.logits[:, -1], self.rows)
        share = (time.perf_counter() - t0) / len(self.rows)
        for i in self.rows:
            self.seconds[i] += share

    def _choose(self, logits: Any, rows: list[int]) -> Any:

        if self.settings.temperature <= 0:
            return logits.argmax(-1)
        return sample_rows(logits, [self.gens[i] for i in rows], self.settings)

    def _finish(self, i: int) -> Generation:
        ids = self.tokens.pop(i)
        self.gens.pop(i, None)
        body = ids[:-1] if ids[-1] in self.eos else ids
        text = self.tok.decode(body, skip_special_tokens=True)
        return Generation(
            apply_stop(text, self.settings.stop).strip(),
            len(ids),
            self.seconds.pop(i),
            self.prompt_len.pop(i),
        )

    def _flush(self) -> None:
        if self.done:
            rows, gens = zip(*self.done, strict=True)
            self.done = []
            self.emit(list(rows), list(gens))


def _merge(cache: Any, mask: Any, new: Any, new_mask: Any) -> Any:
    """Append the rows of `new` to `cache`, left padding whichever is shorter. Returns the mask."""
    import torch

    width = max(mask.shape[1], new_mask.shape[1])
    a, b = width - mask.shape[1], width - new_mask.shape[1]
    for layer, other in zip(cache.layers, new.layers, strict=True):
        layer.keys = torch.cat([_pad_seq(layer.keys, a), _pad_seq(other.keys, b)])
        layer.values = torch.cat([_pad_seq(layer.values, a), _pad_seq(other.values, b)])
    return torch.cat([_pad_cols(mask, a), _pad_cols(new_mask, b)])


def _pad_seq(t: Any, n: int) -> Any:
    """Left pad a (batch, heads, seq, dim) tensor with n zero columns."""
    import torch

    if not n:
        return t
    return torch.cat([t.new_zeros(*t.shape[:-2], n, t.shape[-1]), t], dim=-2)


def _pad_cols(mask: Any, n: int) -> Any:
    """Left pad a (batch, seq) attention mask with n zero columns."""
    import torch

    if not n:
        return mask
    return torch.cat([mask.new_zeros(mask.shape[0], n), mask], dim=1)


def row_generator(seed: int, prompt: str) -> Any:
    """A sampling stream per case, so a sampled answer does not depend on its batch mates."""
    import torch

    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def sample_rows(logits: Any, gens: Sequence[Any], settings: GenSettings) -> Any:
    """One token per row: temperature, then nucleus (top_p), then a draw from the row's own
    generator (on the CPU, where torch generators are the same on every machine)."""
    import torch

    probs = torch.softmax(logits.float() / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > settings.top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    picks = [torch.multinomial(probs[j].cpu(), 1, generator=g) for j, g in enumerate(gens)]
    return torch.cat(picks).to(logits.device)


class RowSampler:
    """A logits processor for `model.generate` that samples each row with its own generator and
    leaves only that token, so greedy decoding picks it: the hf engine's answers then match
    alone and in any batch. Rows already finished keep drawing; their tokens are padding."""

    def __init__(self, gens: Sequence[Any], settings: GenSettings) -> None:
        self.gens, self.settings = gens, settings

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        picks = sample_rows(scores, self.gens, self.settings)
        out = scores.new_full(scores.shape, float("-inf"))
        return out.scatter(-1, picks[:, None], 0.0)
