"""Evaluate a model on a suite: cached generation, grading, and results committed per batch.

A run is identified by what it evaluates (suite fingerprint, model fingerprint, settings, cases).
Running the same command after a crash or `kill -9` resumes the unfinished run: finished cases are
kept, their generations come from the cache, and each case is stored exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.generate import Backend, Generation, GenSettings, HFBackend, Messages, cache_key
from harness.grading import Grader, summarize
from harness.models import ModelRef
from harness.store import Store, new_id
from harness.suite import Suite
from harness.templating import fill


@dataclass
class EvalResult:
    run_id: str
    suite: str
    model: str
    summary: dict[str, Any]
    cached: int
    generated: int
    seconds: float
    resumed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "model": self.model,
            "n": self.summary["n"],
            "grades": self.summary["grades"],
            "pass_rate": self.summary["pass_rate"],
            "criteria": self.summary["criteria"],
            "cached": self.cached,
            "generated": self.generated,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
        }


def conversation(suite: Suite, case: dict[str, Any]) -> Messages:
    prompt = suite.spec.prompt
    assert prompt is not None
    messages = []
    if prompt.system:
        messages.append({"role": "system", "content": fill(prompt.system, case)})
    messages.append({"role": "user", "content": fill(prompt.user, case)})
    return messages


def dtype_for_cache() -> str:
    """The dtype generation will use, decided without importing torch where we can."""
    if os.environ.get("TUNEVAL_DTYPE"):
        return os.environ["TUNEVAL_DTYPE"]
    if Path("/proc/driver/nvidia/version").exists():
        from harness.hardware import best_dtype_name

        return best_dtype_name()
    from harness.hardware import cpu_flags

    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & cpu_flags() else "float32"


def settings_for(suite: Suite, dtype: str | None = None) -> GenSettings:
    g = suite.spec.generation
    return GenSettings(
        g.max_new_tokens, tuple(g.stop), g.temperature, g.top_p, g.seed, dtype or dtype_for_cache()
    )


def select_cases(
    suite: Suite, limit: int | None, case_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    cases = suite.cases
    if case_ids is not None:
        wanted = set(case_ids)
        cases = [c for c in cases if c["id"] in wanted]
    if limit is not None:
        if limit < 1:
            raise UserError("--limit must be at least 1")
        cases = cases[:limit]
    return cases


def evaluate(
    suite: Suite,
    ref: ModelRef,
    store: Store,
    *,
    limit: int | None = None,
    case_ids: Sequence[str] | None = None,
    backend: Backend | None = None,
    batch_size: int = 32,
    dtype: str | None = None,
    progress: bool = True,
    train_run: str | None = None,
    step: int | None = None,
) -> EvalResult:
    t0 = time.perf_counter()
    if not suite.cases:
        raise UserError(f"suite '{suite.name}' has no generation cases (data.test) to evaluate")
    cases = select_cases(suite, limit, case_ids)
    settings = settings_for(suite, dtype)
    convs = [conversation(suite, c) for c in cases]
    keys = [cache_key(ref.fingerprint, m, settings) for m in convs]
    grader = Grader(suite)

    run_key = hashlib.sha256(
        json.dumps(
            [
                suite.fingerprint,
                ref.fingerprint,
                settings.as_dict(),
                [c["id"] for c in cases],
                train_run,
                step,
            ]
        ).encode()
    ).hexdigest()
    run_id, resumed = _start_run(
        store, suite, ref, settings, run_key, len(cases), train_run, step, limit
    )
    done = {
        r["case_id"] for r in store.query("SELECT case_id FROM results WHERE run_id=?", (run_id,))
    }
    todo = [i for i in range(len(cases)) if cases[i]["id"] not in done]

    def commit(indices: list[int], gens: list[Generation], cached: bool) -> None:
        graded = grader([g.output for g in gens], [cases[i] for i in indices])
        with store.tx() as db:
            if not cached:
                db.executemany(
                    "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            keys[i],
                            ref.fingerprint,
                            json.dumps(convs[i]),
                            json.dumps(settings.as_dict()),
                            g.output,
                            g.n_tokens,
                            g.seconds,
                            time.time(),
                        )
                        for i, g in zip(indices, gens, strict=True)
                    ],
                )
            db.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        cases[i]["id"],
                        i,
                        json.dumps(convs[i]),
                        g.output,
                        grade,
                        json.dumps(crit),
                        int(cached),
                    )
                    for i, g, (grade, crit) in zip(indices, gens, graded, strict=True)
                ],
            )

    hits = store.cached_generations([keys[i] for i in todo])
    from_cache = [i for i in todo if keys[i] in hits]
    for start in range(0, len(from_cache), 256):
        chunk = from_cache[start : start + 256]
        commit(
            chunk,
            [Generation(hits[keys[i]]["output"], hits[keys[i]]["n_tokens"]) for i in chunk],
            True,
        )

    misses = [i for i in todo if keys[i] not in hits]
    tokens = 0
    if misses:
        backend = backend or HFBackend(
            ref, batch_size=batch_size, dtype=settings.dtype, progress=progress
        )

        def on_batch(batch: list[int], gens: list[Generation]) -> None:
            nonlocal tokens
            tokens += sum(g.n_tokens for g in gens)
            commit([misses[j] for j in batch], gens, False)

        try:
            backend.generate([convs[i] for i in misses], settings, on_batch)
        except Exception:
            with store.tx() as db:
                db.execute("UPDATE runs SET status='failed' WHERE id=?", (run_id,))
            raise

    seconds = time.perf_counter() - t0
    rows = store.results(run_id)
    cached = sum(1 for r in rows if r["cached"])
    timings = {
        "seconds": seconds,
        "generated": len(misses),
        "generated_tokens": tokens,
        "from_cache": len(from_cache),
    }
    with store.tx() as db:
        db.execute(
            "UPDATE runs SET status='complete', finished_at=?, timings=? WHERE id=?",
            (time.time(), json.dumps(timings), run_id),
        )
    return EvalResult(
        run_id, suite.name, ref.name, summarize(rows), cached, len(misses), seconds, resumed
    )


def _start_run(
    store: Store,
    suite: Suite,
    ref: ModelRef,
    settings: GenSettings,
    run_key: str,
    n: int,
    train_run: str | None,
    step: int | None,
    limit: int | None,
) -> tuple[str, bool]:
    row = store.one(
        "SELECT id FROM runs WHERE run_key=? AND status IN ('running', 'failed')"
        " ORDER BY created_at DESC LIMIT 1",
        (run_key,),
    )
    if row:
        return row["id"], True
    run_id = new_id("run")
    with store.tx() as db:
        db.execute(
            "INSERT INTO runs (id, suite, suite_version, suite_fingerprint, suite_path,"
            " suite_files, model, model_fingerprint, settings, run_key, status, n_cases,"
            " train_run, step, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            (
                run_id,
                suite.name,
                suite.spec.version,
                suite.fingerprint,
                str(suite.path),
                json.dumps(suite.files),
                ref.name,
                ref.fingerprint,
                json.dumps({**settings.as_dict(), "limit": limit, "backend": "hf"}),
                run_key,
                n,
                train_run,
                step,
                time.time(),
            ),
        )
    return run_id, False
