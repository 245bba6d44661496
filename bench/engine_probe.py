"""The generation engine's two decoders side by side: `model.generate` on fixed batches versus the
continuous pool, at several widths, on the same prompts, with a check that outputs are identical.

Why the pool: profiling generation (py-spy) shows ~80% of the time in the model's Linear layers,
so the cost is the model's arithmetic, not Python. `model.generate` keeps every row of a batch in
every step until the slowest row is done; with python-docs answers of ~43 tokens against
max_new_tokens 64, about a third of the row-steps compute tokens that are thrown away, and the
last steps of each batch run nearly empty. The pool (`harness.generate._Pool`) drops a finished
row from the batch and the KV cache at once and prefills waiting prompts into the free slots.

Rows (the suite's first N test cases, one process, median of one run each):
  hf-B     `HFBackend(engine="hf")`: model.generate on length-sorted batches of B
  pool-B   `HFBackend(engine="continuous")`, the default: a pool of B rows

    .venv/bin/python bench/engine_probe.py --quick     # 32 cases: hf-16, pool-16, pool-32
    .venv/bin/python bench/engine_probe.py             # 64 cases: + hf-32, pool-48, pool-64
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

from harness.generate import HFBackend
from harness.models import quiet_transformers, resolve
from harness.runner import conversation, select_cases, settings_for
from harness.store import Store
from harness.suite import load_suite


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
    convs = [conversation(suite, c) for c in cases]

    def engine(name: str, batch: int) -> list[str]:
        backend.engine, backend.batch_size = name, batch
        outputs = [""] * n

        def keep(idx: list[int], gens: list[Any]) -> None:
            for i, g in zip(idx, gens, strict=True):
                outputs[i] = g.output

        backend.generate(convs, settings, keep)
        return outputs

    plan: list[tuple[str, Callable[[], list[str]]]] = [
        ("hf-16 (model.generate)", lambda: engine("hf", 16)),
        ("pool-16", lambda: engine("continuous", 16)),
        ("pool-32 (default)", lambda: engine("continuous", 32)),
    ]
    if not args.quick:
        plan += [
            ("hf-32 (model.generate)", lambda: engine("hf", 32)),
            ("pool-48", lambda: engine("continuous", 48)),
            ("pool-64", lambda: engine("continuous", 64)),
        ]
    for name in ("hf", "continuous"):  # warm-up
        backend.engine = name
        backend.generate(convs[:2], settings, lambda idx, gens: None)
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
    print(table(["decoder", "s", "cases/s", "same as engine", "x hf-16"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
