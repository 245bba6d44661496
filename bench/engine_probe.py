"""The generation engine's choices side by side: `model.generate` on fixed batches versus the
continuous pool, plain versus prepacked weights, on the same prompts, with a check that outputs are
identical.

Profiling generation (py-spy, torch.profiler) puts ~80% of decoding time in the Linear layers'
matrix products, so the cost is arithmetic, not Python. Two things attack it:

- prepacked weights (`harness.generation.kernels`): at a few rows per call, float32 `F.linear`
  (MKL) runs far below this CPU's speed; oneDNN with each weight reordered once does the same
  products up to twice as fast on the big shapes (the lm_head timing is printed last);
- the continuous pool (`harness.generation.pool.Pool`): `model.generate` keeps every row of a batch
  in every step until the slowest row is done; the pool drops a finished row from the batch and the
  KV cache at once and prefills waiting prompts into the free slots. On python-docs, whose
  answers are of similar length, this reclaims less than it looks: ~1.1x at the same width.

Rows (the suite's first N test cases, one process, one run each):
  hf-B       `HFBackend(engine="hf")`: model.generate on length-sorted batches of B
  pool-B     `HFBackend(engine="pool")`, the default: a pool of B rows
  plain      `pack_weights=False`: the model's own nn.Linear layers
  packed     the default: oneDNN-prepacked Linear layers

    .venv/bin/python bench/engine_probe.py --quick     # 32 cases, 4 rows
    .venv/bin/python bench/engine_probe.py             # 64 cases, 7 rows
    options: --suite PATH  --n N  --threads T
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine, suite_path, table

from harness.evaluation.runner import conversation, select_cases, settings_for
from harness.generation.local import HFBackend
from harness.generation.models import quiet_transformers, resolve
from harness.store import Store
from harness.suite.loader import load_suite


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
    backends = {
        "plain": HFBackend(ref, dtype=settings.dtype, progress=False, pack_weights=False),
        "packed": HFBackend(ref, dtype=settings.dtype, progress=False),
    }
    for b in backends.values():
        b._load()
    convs = [conversation(suite, c) for c in cases]

    def engine(weights: str, name: str, batch: int) -> list[str]:
        backend = backends[weights]
        backend.engine, backend.batch_size = name, batch
        outputs = [""] * n

        def keep(idx: list[int], gens: list[Any]) -> None:
            for i, g in zip(idx, gens, strict=True):
                outputs[i] = g.output

        backend.generate(convs, settings, keep)
        return outputs

    plan: list[tuple[str, Callable[[], list[str]]]] = [
        ("hf-16 plain (the engine before)", lambda: engine("plain", "hf", 16)),
        ("pool-32 plain", lambda: engine("plain", "pool", 32)),
        ("hf-32 packed", lambda: engine("packed", "hf", 32)),
        ("pool-32 packed (default)", lambda: engine("packed", "pool", 32)),
    ]
    if not args.quick:
        plan += [
            ("hf-32 plain", lambda: engine("plain", "hf", 32)),
            ("pool-16 packed", lambda: engine("packed", "pool", 16)),
            ("pool-64 packed", lambda: engine("packed", "pool", 64)),
        ]
    for weights, name in [(w, e) for w in backends for e in ("hf", "pool")]:  # warm-up
        backends[weights].engine = name
        backends[weights].generate(convs[:2], settings, lambda idx, gens: None)
    kernel = lm_head_kernel(ref, 32)
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
    print(table(["decoder", "s", "cases/s", "same as first row", "x first row"], rows))
    print(f"\nthe lm_head alone, 32 rows per call (ms): {kernel}")
    return 0


def lm_head_kernel(ref: Any, rows: int) -> str:
    """Time the model's largest Linear (the lm_head) through F.linear and prepacked."""
    import torch

    from harness.generation.kernels import PackedLinear
    from harness.generation.models import load

    model, _ = load(ref, "float32")
    head = model.get_output_embeddings()
    x = torch.randn(rows, head.in_features)
    packed = PackedLinear.from_linear(head, rows)
    timings = {}
    with torch.no_grad():
        for name, fn in (
            ("F.linear", lambda: torch.nn.functional.linear(x, head.weight)),
            ("prepacked", (lambda: packed(x)) if packed is not None else None),
        ):
            if fn is None:
                continue
            for _ in range(3):
                fn()
            t0 = time.perf_counter()
            for _ in range(20):
                fn()
            timings[name] = (time.perf_counter() - t0) / 20 * 1000
    return ", ".join(f"{k} {v:.1f}" for k, v in timings.items())


if __name__ == "__main__":
    sys.exit(main())
