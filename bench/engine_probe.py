"""Where cold evaluation loses time, and what a greedy loop that drops finished rows gains.

Profiling `HFBackend.generate` (py-spy) shows ~80% of generation time in the model's Linear
layers: the work is the model's own arithmetic, not Python overhead. The waste is structural:
`model.generate` keeps every row of a batch in every step until the slowest row is done, so with
answers of ~43 tokens and max_new_tokens 64, a third of the row-steps compute tokens that are
thrown away. lm-eval's batch-1 default never wastes a row-step, which is why batching alone
gives tuneval only ~3x over it.

This script times, in one process on the same prompts (the suite's first N test cases,
length-sorted batches as the engine makes them):
  hf-B      the engine as it is: `HFBackend.generate` at batch size B (model.generate);
  evict-B   `greedy_evict` below at batch size B: prefill, then one token per step, and rows
            that hit EOS, a stop string or max_new_tokens leave the batch and the KV cache
            (`DynamicCache.batch_select_indices`), so each step costs only the live rows.
and checks that the outputs are identical to the engine's.

    .venv/bin/python bench/engine_probe.py --quick     # 32 cases: hf-16, evict-16, evict-32
    .venv/bin/python bench/engine_probe.py             # 64 cases: + hf-32, evict-64
    options: --suite PATH  --n N  --threads T
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import machine, suite_path, table

from harness.generate import HFBackend, apply_stop
from harness.models import quiet_transformers, resolve
from harness.runner import conversation, select_cases, settings_for
from harness.store import Store
from harness.suite import load_suite


def greedy_evict(
    model: Any, tok: Any, prompts: Sequence[str], max_new: int, stop: Sequence[str]
) -> list[str]:
    """Greedy decoding of one left-padded batch; finished rows leave the batch and the cache."""
    import torch
    from transformers import DynamicCache

    enc = tok(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    mask = enc["attention_mask"]
    cache = DynamicCache(config=model.config)
    eos = tok.eos_token_id
    generated: list[list[int]] = [[] for _ in prompts]
    alive = list(range(len(prompts)))
    with torch.inference_mode():
        out = model(
            input_ids=enc["input_ids"],
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        nxt = out.logits[:, -1].argmax(-1)
        while True:
            keep = []
            for j, row in enumerate(alive):
                token = int(nxt[j])
                generated[row].append(token)
                done = token == eos or len(generated[row]) >= max_new
                if not done and stop:  # a stop string can only end in the newest tokens
                    tail = tok.decode(generated[row][-12:], skip_special_tokens=True)
                    done = any(s in tail for s in stop)
                if not done:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(alive):
                idx = torch.tensor(keep)
                cache.batch_select_indices(idx)
                mask, nxt = mask[idx], nxt[idx]
                alive = [alive[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)
            out = model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=mask.sum(-1, keepdim=True) - 1,
                past_key_values=cache,
                use_cache=True,
            )
            nxt = out.logits[:, -1].argmax(-1)
    texts = []
    for ids in generated:
        n = ids.index(eos) if eos in ids else len(ids)
        texts.append(apply_stop(tok.decode(ids[:n], skip_special_tokens=True), stop).strip())
    return texts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--suite", help="suite folder (default suites/python-docs)")
    ap.add_argument("--n", type=int, help="test cases (default 64; 32 with --quick)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_transformers()
    suite = load_suite(suite_path(args.suite))
    cases = select_cases(suite, args.n or (32 if args.quick else 64))
    n = len(cases)
    settings = settings_for(suite)
    ref = resolve("smollm2-135m-instruct", Store(Path(tempfile.mkdtemp()) / "models.db"))
    backend = HFBackend(ref, dtype=settings.dtype, progress=False)
    backend._load()
    model, tok = backend._model, backend._tok
    convs = [conversation(suite, c) for c in cases]
    prompts = [backend.render(m) for m in convs]
    lengths = [len(x) for x in tok(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(n), key=lambda i: -lengths[i])  # the engine's batching order
    stop = list(settings.stop)

    def engine(batch: int) -> list[str]:
        backend.batch_size = batch
        outputs = [""] * n

        def keep(idx: list[int], gens: list[Any]) -> None:
            for i, g in zip(idx, gens, strict=True):
                outputs[i] = g.output

        backend.generate(convs, settings, keep)
        return outputs

    def evict(batch: int) -> list[str]:
        outputs = [""] * n
        for k in range(0, n, batch):
            chunk = order[k : k + batch]
            texts = greedy_evict(
                model, tok, [prompts[i] for i in chunk], settings.max_new_tokens, stop
            )
            for i, text in zip(chunk, texts, strict=True):
                outputs[i] = text
        return outputs

    plan: list[tuple[str, Callable[[], list[str]]]] = [
        ("hf-16 (engine today)", lambda: engine(16)),
        ("evict-16", lambda: evict(16)),
        ("evict-32", lambda: evict(32)),
    ]
    if not args.quick:
        plan += [("hf-32", lambda: engine(32)), ("evict-64", lambda: evict(64))]
    backend.generate(convs[:2], settings, lambda idx, gens: None)  # warm-up
    greedy_evict(model, tok, prompts[:2], 4, stop)
    rows, reference, base = [], None, 0.0
    for name, fn in plan:
        t0 = time.perf_counter()
        outputs = fn()
        seconds = time.perf_counter() - t0
        print(f"  {name}: {seconds:.1f}s", file=sys.stderr, flush=True)
        reference = reference or outputs
        base = base or seconds
        same = sum(a == b for a, b in zip(outputs, reference, strict=True))
        rows.append([name, seconds, n / seconds, f"{same}/{n}", base / seconds])
    print(f"\nmachine: {machine()}")
    print(f"work: {n} cases of {suite.name}, max_new_tokens {settings.max_new_tokens}, greedy")
    print(table(["decoder", "s", "cases/s", "same as engine", "x engine today"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
