"""Generation-based evaluation: lm-eval's `generate_until` through HFLM versus tuneval's engine.

The same work on both sides: the suite's first N test cases, the same rendered prompts (the
model's chat template, applied here for lm-eval exactly as tuneval applies it), the suite's max new
tokens and stop strings, greedy decoding, the packaged SmolLM2-135M-Instruct, model loading
excluded on both sides (each gets an already-loaded model and one warm-up call).

Rows:
  lm-eval (defaults)  HFLM as a user gets it: batch_size 1 (lm-eval's default), dtype "auto" (the
                      checkpoint's dtype: float32 for the packaged model).
  lm-eval (tuned)     HFLM with tuneval's batch size and tuneval's dtype.
  tuneval (cold)      `harness.evaluation.runner.evaluate_suite` on a fresh store:
                      generation, grading with the suite's rubric, results committed to
                      SQLite per batch. Grading is extra work lm-eval does not do here; it is
                      included.
  tuneval (warm)      the same evaluation again on the same store: every output from the cache.

Runs alternate (peer, tuneval, peer, ...) so load from other processes falls on both. Tokens
are counted the same way for every row: the final answer text re-tokenized by the model's
tokenizer. "match" is the share of cases whose answer equals tuneval's exactly (after strip).

    .venv/bin/python bench/eval_vs_lmeval.py --quick       # 16 cases
    .venv/bin/python bench/eval_vs_lmeval.py               # full: all 177 test cases (~21 min)
    options: --suite PATH  --n N  --rounds R  --batch-size B
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import machine, suite_path, table

from harness.evaluation.runner import (
    EvalOptions,
    conversation,
    evaluate_suite,
    select_cases,
    settings_for,
)
from harness.generation.local import HFBackend, render
from harness.generation.models import ModelRef, quiet_transformers, resolve
from harness.generation.types import GenSettings, Messages
from harness.store import Store
from harness.suite.loader import Suite, load_suite

MODEL = "smollm2-135m-instruct"


@dataclass
class Row:
    name: str
    config: str
    seconds: list[float] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.seconds)


def lmeval_runner(ref: ModelRef, dtype: str, batch_size: int) -> Any:
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {} if dtype == "auto" else {"dtype": getattr(torch, dtype)}
    model = AutoModelForCausalLM.from_pretrained(ref.path, **kwargs)
    tok = AutoTokenizer.from_pretrained(ref.path)
    return HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)


def lmeval_generate(lm: Any, prompts: list[str], settings: GenSettings) -> list[str]:
    from lm_eval.api.instance import Instance

    gen_kwargs = {
        "until": list(settings.stop),
        "max_gen_toks": settings.max_new_tokens,
        "do_sample": False,
    }
    requests = [
        Instance(request_type="generate_until", doc={}, arguments=(p, dict(gen_kwargs)), idx=i)
        for i, p in enumerate(prompts)
    ]
    return [str(s).strip() for s in lm.generate_until(requests, disable_tqdm=True)]


def tuneval_eval(
    suite: Suite, ref: ModelRef, store: Store, backend: HFBackend, n: int
) -> tuple[float, list[str], dict[str, Any]]:
    t0 = time.perf_counter()
    result = evaluate_suite(
        suite, ref, store, EvalOptions(limit=n, progress=False), backend=backend
    )
    seconds = time.perf_counter() - t0
    by_id = {r["case_id"]: r["output"] for r in store.results(result.run_id)}
    outputs = [by_id[c["id"]] for c in select_cases(suite, n)]
    return seconds, outputs, {"cached": result.cached, "generated": result.generated}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--suite", help="suite folder (default suites/python-docs)")
    ap.add_argument("--n", type=int, help="test cases (default: all; 16 with --quick)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    ap.add_argument("--batch-size", type=int, default=32, help="tuneval's (and tuned peer's)")
    ap.add_argument("--threads", type=int, help="torch threads for both (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="16 cases")
    args = ap.parse_args()
    rounds = args.rounds
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    quiet_transformers()
    suite = load_suite(suite_path(args.suite))
    n = args.n or (16 if args.quick else len(suite.cases))
    cases = select_cases(suite, n)
    n = len(cases)
    settings = settings_for(suite)
    workdir = Path(tempfile.mkdtemp(prefix="tuneval-bench-eval-"))
    ref = resolve(MODEL, Store(workdir / "models.db"))

    backend = HFBackend(ref, batch_size=args.batch_size, dtype=settings.dtype, progress=False)
    backend._load()  # loading is excluded on both sides
    convs: list[Messages] = [conversation(suite, c) for c in cases]
    tok = backend._tok
    prompts = [render(tok, m) for m in convs]  # the exact strings tuneval generates from

    peers = {
        "lm-eval (defaults)": lmeval_runner(ref, "auto", 1),
        "lm-eval (tuned)": lmeval_runner(ref, settings.dtype, args.batch_size),
    }
    rows = {
        "lm-eval (defaults)": Row("lm-eval (defaults)", "HFLM batch 1, dtype auto (float32)"),
        "lm-eval (tuned)": Row(
            "lm-eval (tuned)", f"HFLM batch {args.batch_size}, {settings.dtype}"
        ),
        "tuneval (cold)": Row(
            "tuneval (cold)", f"evaluate, batch {args.batch_size}, {settings.dtype}, + grading"
        ),
        "tuneval (warm)": Row("tuneval (warm)", "same evaluate again: all from the cache"),
    }

    # Warm-up: first-call costs (kernel selection, the grader's embedding model) fall outside.
    for lm in peers.values():
        lmeval_generate(lm, prompts[:2], settings)
    warm = EvalOptions(limit=2, progress=False)
    evaluate_suite(suite, ref, Store(workdir / "warmup.db"), warm, backend=backend)

    for r in range(rounds):
        print(f"round {r + 1}/{rounds}: {n} cases", file=sys.stderr)
        for k, (name, lm) in enumerate(peers.items()):
            t0 = time.perf_counter()
            outputs = lmeval_generate(lm, prompts, settings)
            rows[name].seconds.append(time.perf_counter() - t0)
            rows[name].outputs = outputs
            print(f"  {name}: {rows[name].seconds[-1]:.1f}s", file=sys.stderr)
            store = Store(workdir / f"cold-{r}-{k}.db")  # fresh store: cold cache
            seconds, outputs, info = tuneval_eval(suite, ref, store, backend, n)
            assert info["generated"] == n, info
            rows["tuneval (cold)"].seconds.append(seconds)
            rows["tuneval (cold)"].outputs = outputs
            print(f"  tuneval (cold): {seconds:.1f}s", file=sys.stderr)
        seconds, outputs, info = tuneval_eval(suite, ref, store, backend, n)
        assert info["cached"] == n and info["generated"] == 0, info
        rows["tuneval (warm)"].seconds.append(seconds)
        rows["tuneval (warm)"].outputs = outputs
        print(f"  tuneval (warm): {seconds:.3f}s", file=sys.stderr)

    reference = rows["tuneval (cold)"].outputs
    tokens = {
        k: sum(len(ids) for ids in tok(v.outputs, add_special_tokens=False)["input_ids"])
        for k, v in rows.items()
    }
    base = rows["lm-eval (defaults)"]
    cold = rows["tuneval (cold)"]
    out = []
    for name, row in rows.items():
        match = sum(a == b for a, b in zip(row.outputs, reference, strict=True)) / n
        # The cold run is the reference: its own match is no measurement. The warm run's answers
        # come from the cold run's cache, so its 100% checks the cache returns what was stored.
        shown = "—" if row is cold else f"{match:.0%}"
        out.append(
            [
                name,
                row.config,
                row.wall,
                n / row.wall,
                tokens[name] / row.wall,
                shown,
                base.wall / row.wall,
            ]
        )
    print(f"\nmachine: {machine()}")
    print(
        f"work: {n} cases of {suite.name}, {MODEL}, max_new_tokens {settings.max_new_tokens}, "
        f"stop {list(settings.stop)}, greedy; {rounds} round(s), median wall time"
    )
    print(
        table(
            ["run", "configuration", "s", "cases/s", "tok/s", "match", "x lm-eval defaults"],
            out,
        )
    )
    tuned = rows["lm-eval (tuned)"]
    warm = rows["tuneval (warm)"]
    print()
    print(
        table(
            ["ratio", "value"],
            [
                ["tuneval cold vs lm-eval tuned (same batch, dtype)", tuned.wall / cold.wall],
                ["warm re-run vs cold (cache)", cold.wall / warm.wall],
                ["tuneval cold vs lm-eval defaults", base.wall / cold.wall],
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
