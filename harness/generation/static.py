"""The CUDA decoder: wide batches over a preallocated KV cache, one decode step captured once as a
CUDA graph and replayed.

On a GPU a small model's decode step is a few hundred tiny kernel launches, and the Python
around `model.generate` costs more than the arithmetic. Here every tensor a step touches
(the next tokens, their positions, the additive attention mask, the cache, the output buffer) is
allocated before the first step and updated in place, so the step has fixed shapes and no host
synchronisation: it is captured once per batch and replayed. Finished rows are found every few
steps from a pinned copy of the output while the next steps already run; a batch ends when all of
its rows have ended. Rows are left padded, so cache column `c` is the same step for every row.

Greedy only (sampling goes through the pool). The same code runs eagerly on the CPU, where the
tests hold it to `model.generate`; only the graph capture is CUDA's.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from typing import Any

from harness.generation.types import Generation, GenSettings, apply_stop, eos_ids

CHECK_EVERY = 8  # decode steps between looks at which rows have finished
MAX_WIDTH = 512
KV_SHARE = 0.4  # of the free GPU memory, for the KV cache of one batch


def supported(model: Any) -> bool:
    """A decoder-only model whose every layer attends to the whole sequence through SDPA or the
    eager kernel, so that an explicit 4D mask and a static cache drive it."""
    cfg = model.config
    if getattr(cfg, "is_encoder_decoder", False):
        return False
    layer_types = getattr(cfg, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types):
        return False
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return False
    return getattr(cfg, "_attn_implementation", "sdpa") in ("sdpa", "eager")


Emit = Callable[[list[int], list[Generation]], None]


class StaticEngine:
    def __init__(self, model: Any, tok: Any, settings: GenSettings, width: int | None):
        self.model, self.tok, self.settings = model, tok, settings
        self.width = width
        self.eos = eos_ids(model, tok)
        self.tail = max((len(s) for s in settings.stop), default=0) + 4
        params = inspect.signature(model.forward).parameters
        # transformers 5.x renamed `past_key_values` to `cache`, and later dropped
        # `cache_position` (static layers count their own length)
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.takes_position = "cache_position" in params
        self.cuda = model.device.type == "cuda"
        self.graphs = self.cuda and os.environ.get("TUNEVAL_CUDA_GRAPHS", "1") != "0"

    def run(self, queue: list[tuple[int, list[int]]], emit: Emit) -> None:
        """Answer the queued (case index, prompt ids), longest first, in batches of `width`."""
        import torch

        width = self.width or self._auto_width(queue)
        with torch.inference_mode():
            for k in range(0, len(queue), width):
                self._batch(queue[k : k + width], emit)

    def _auto_width(self, queue: list[tuple[int, list[int]]]) -> int:
        """As many rows as a share of the free GPU memory holds KV cache for."""
        import torch

        if not queue:
            return 1
        if self.model.device.type != "cuda":
            return min(len(queue), 32)
        cfg = self.model.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        length = max(len(ids) for _, ids in queue) + self.settings.max_new_tokens
        elem = torch.finfo(self.model.dtype).bits // 8
        per_row = 2 * cfg.num_hidden_layers * heads * head_dim * length * elem
        free, _ = torch.cuda.mem_get_info(self.model.device)
        return max(1, min(len(queue), MAX_WIDTH, int(free * KV_SHARE) // per_row))

    def _forward(self, cache: Any, col: Any, **inputs: Any) -> Any:
        extra = {self.cache_arg: cache}
        if self.takes_position:
            extra["cache_position"] = col
        return self.model(use_cache=True, **inputs, **extra).logits

    def _batch(self, rows: list[tuple[int, list[int]]], emit: Emit) -> None:
        import torch
        from transformers import StaticCache

        t0 = time.perf_counter()
        model, device, dtype = self.model, self.model.device, self.model.dtype
        n, width = len(rows), max(len(ids) for _, ids in rows)
        new = self.settings.max_new_tokens
        length = width + new
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(p)) + p for _, p in rows], device=device)
        real = torch.tensor(
            [[False] * (width - len(p)) + [True] * len(p) for _, p in rows], device=device
        )
        low = torch.finfo(dtype).min
        # prefill: causal over the prompt columns, pads hidden, each position sees itself (a
        # row with nothing to attend to would turn into NaN and poison the cache through 0*NaN)
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        see = causal[None] & real[:, None, :]
        see |= torch.eye(width, dtype=torch.bool, device=device)[None]
        prefill = torch.full((n, 1, width, length), low, dtype=dtype, device=device)
        prefill[:, 0, :, :width].masked_fill_(see, 0.0)
        cache = StaticCache(config=model.config, max_cache_len=length)
        col = torch.arange(width, device=device)
        logits = self._forward(
            cache,
            col,
            input_ids=ids,
            attention_mask=prefill,
            position_ids=(real.long().cumsum(-1) - 1).clamp(min=0),
            logits_to_keep=1,
        )
        del prefill
        # the decode step's buffers: every one updated in place
        out = torch.zeros(n, new, dtype=torch.long, device=device)
        out[:, 0] = logits[:, -1].argmax(-1)
        nxt = out[:, :1].clone()
        pos = real.sum(-1, keepdim=True)
        mask = torch.full((n, 1, 1, length), low, dtype=dtype, device=device)
        mask[:, 0, 0, :width].masked_fill_(real, 0.0)
        col = torch.full((1,), width, dtype=torch.long, device=device)
        slot = torch.ones(1, dtype=torch.long, device=device)

        def step() -> None:
            mask.index_fill_(3, col, 0.0)
            logits = self._forward(cache, col, input_ids=nxt, attention_mask=mask, position_ids=pos)
            token = logits[:, -1].argmax(-1, keepdim=True)
            nxt.copy_(token)
            out.index_copy_(1, slot, token)
            pos.add_(1)
            col.add_(1)
            slot.add_(1)

        runner = _Replay(step, self.graphs)
        finished = _Finisher(self, rows, new)
        host = torch.empty((n, new), dtype=torch.long, pin_memory=self.cuda)
        done = 1  # tokens in `out` so far (the prefill gave the first)
        seen = 0  # tokens already checked for endings
        while True:
            if done > seen:
                host[:, seen:done].copy_(out[:, seen:done], non_blocking=True)
                event = torch.cuda.Event() if self.cuda else None
                if event is not None:
                    event.record()
            ahead = min(CHECK_EVERY, new - done)
            for _ in range(ahead):  # the next steps run while the host reads the last ones
                runner()
            if done > seen:
                if event is not None:
                    event.synchronize()
                ended = finished.check(host, seen, done)
                seen = done
                if ended:
                    emit(*finished.take(ended, time.perf_counter() - t0))
            done += ahead
            if finished.all_done() or (done >= new and seen >= done):
                break
        rest = finished.remaining()
        if rest:
            emit(*finished.take(rest, time.perf_counter() - t0))


class _Replay:
    """Calls the step eagerly twice (real steps, and the warm-up CUDA capture wants), then, on
    CUDA, captures it once and replays the graph from then on. A step that cannot be captured
    keeps running eagerly."""

    def __init__(self, step: Callable[[], None], graphs: bool):
        self.step, self.graphs = step, graphs
        self.calls = 0
        self.graph: Any = None
        self.stream: Any = None

    def __call__(self) -> None:
        import torch

        self.calls += 1
        if not self.graphs:
            self.step()
            return
        if self.graph is not None:
            self.graph.replay()
            return
        if self.stream is None:
            self.stream = torch.cuda.Stream()
            self.stream.wait_stream(torch.cuda.current_stream())
        if self.calls <= 2:
            with torch.cuda.stream(self.stream):
                self.step()
            torch.cuda.current_stream().wait_stream(self.stream)  # later copies read its output
            return
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.step()
        except RuntimeError:  # something in the step syncs with the host: stay eager
            self.graphs = False
            self.step()
            return
        self.graph = graph
        graph.replay()  # capturing recorded the step without running it


class _Finisher:
    """Which rows of a batch have ended, at which token, and their texts."""

    def __init__(self, engine: StaticEngine, rows: list[tuple[int, list[int]]], new: int):
        self.engine, self.rows, self.new = engine, rows, new
        self.ends: dict[int, int] = {}  # row -> generated tokens, the ending token included
        self.emitted: set[int] = set()
        self.tokens: dict[int, list[int]] = {}

    def check(self, host: Any, start: int, stop: int) -> list[int]:
        """Rows that end among tokens [start, stop); returns them."""
        eng = self.engine
        stops = eng.settings.stop
        block = host[:, :stop].tolist()
        ended = []
        for r, toks in enumerate(block):
            if r in self.ends:
                continue
            end = next((j + 1 for j in range(start, stop) if toks[j] in eng.eos), None)
            if stops:
                limit = end or stop
                lo = max(0, start - eng.tail)
                text = eng.tok.decode(toks[lo:limit], skip_special_tokens=True)
                if any(s in text for s in stops):
                    end = self._first_stop(toks, start, limit)
            if end is None and stop >= self.new:
                end = self.new
            if end is not None:
                self.ends[r] = end
                self.tokens[r] = toks[:end]
                ended.append(r)
        return ended

    def _first_stop(self, toks: list[int], start: int, limit: int) -> int:
        eng = self.engine
        for j in range(start, limit):
            tail = eng.tok.decode(toks[max(0, j + 1 - eng.tail) : j + 1], skip_special_tokens=True)
            if any(s in tail for s in eng.settings.stop):
                return j + 1
        return limit

    def all_done(self) -> bool:
        return len(self.ends) == len(self.rows)

    def remaining(self) -> list[int]:
        return [r for r in range(len(self.rows)) if r not in self.emitted]

    def take(self, rows: list[int], seconds: float) -> tuple[list[int], list[Generation]]:
        eng = self.engine
        share = seconds / len(self.rows)
        gens = []
        for r in rows:
            toks = self.tokens.get(r, [])
            body = toks[:-1] if toks and toks[-1] in eng.eos else toks
            text = eng.tok.decode(body, skip_special_tokens=True)
            out = apply_stop(text, eng.settings.stop).strip()
            gens.append(Generation(out, len(toks), share, len(self.rows[r][1])))
            self.emitted.add(r)
        return [self.rows[r][0] for r in rows], gens
