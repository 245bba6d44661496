"""Evaluating with k samples per case (`generation.samples`, `eval --samples k`).

Sample j of a case is one generation-cache entry, under the seed `sample_seed(suite seed, case
id, j)`, so each is cached on its own: a rerun is a cache hit and raising k reuses the first
samples. The backend gets that seed per row and samples with it alone (a per-row generator on the
pool and hf engines, the request's `seed` on a served model), so an answer does not depend on
which rows share its batch. Generations are committed as they arrive; a case's result row, with
its k graded samples, is written once all k are in, so a killed run resumes with each (case, j)
generated once. The result row holds the majority grade, sample 0's answer, per-criterion pass
shares, and the cost of all k answers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from harness.comparison.sampling import MAX_SAMPLES, case_outcome, sample_seed
from harness.errors import Problem, UserError
from harness.evaluation.answers import answer
from harness.generation.types import Generation, GenSettings, Messages, cache_key
from harness.grading.grader import Grader
from harness.store import GenerationRow, ResultRow, Store, result_row

if TYPE_CHECKING:
    from harness.generation.models import ModelRef
    from harness.generation.types import Backend
    from harness.suite.loader import Suite


def samples_for(suite: Suite, override: int | None) -> int:
    """k: `--samples` if given, else the suite's `generation.samples`. Several samples of a
    greedy suite would all be the same answer: a located error."""
    g = suite.spec.generation
    k = g.samples if override is None else override
    if not 1 <= k <= MAX_SAMPLES:
        raise UserError(f"--samples must be between 1 and {MAX_SAMPLES}")
    if k > 1 and g.temperature == 0:
        raise UserError(
            [
                Problem(
                    str(suite.path / "suite.yaml"),
                    _where(suite, ("generation", "temperature")),
                    f"generation.temperature is 0 (greedy): {k} samples per case would all be "
                    "the same answer; set a temperature > 0 to sample",
                )
            ]
        )
    return k


def _where(suite: Suite, loc: tuple[str, ...]) -> str:
    """'line N, field a.b' for loc in suite.yaml (the line of its nearest parent that is there)."""
    from harness.safe import yamlsafe
    from harness.safe.yamlpos import yaml_line

    try:
        root, _ = yamlsafe.load((suite.path / "suite.yaml").read_text())
    except Exception:  # noqa: BLE001 - the suite loaded once; a vanished file still gets a message
        root = None
    line = yaml_line(root, loc)
    field = "field " + ".".join(loc)
    return f"line {line}, {field}" if line else field


def sample_plan(
    cases: Sequence[dict[str, Any]],
    convs: Sequence[Messages],
    fingerprint: str,
    settings: GenSettings,
    suite_seed: int,
    k: int,
) -> tuple[list[tuple[int, int]], list[int], list[str]]:
    """(rows as (case index, j), each row's seed, each row's cache key)."""
    rows = [(i, j) for i in range(len(cases)) for j in range(k)]
    seeds = [sample_seed(suite_seed, str(cases[i]["id"]), j) for i, j in rows]
    keys = [
        cache_key(fingerprint, convs[i], replace(settings, seed=seed))
        for (i, _), seed in zip(rows, seeds, strict=True)
    ]
    return rows, seeds, keys


def say_plan(n_cases: int, k: int) -> None:
    sys.stderr.write(f"{n_cases} cases x {k} samples = {n_cases * k} answers to grade\n")


def generate_samples(
    store: Store,
    suite: Suite,
    ref: ModelRef,
    plan: Any,  # harness.evaluation.runner._Plan
    backend: Backend,
    opts: Any,  # harness.evaluation.runner.EvalOptions
    run_id: str,
    done: set[str],
    note: Callable[[], None],  # called as each fresh batch is committed (the engine noted)
) -> dict[str, Any]:
    """Generate (or take from the cache) every sample of the cases not yet in the run, grade
    them, and commit a case once all its samples are in. Counts are of samples."""
    cases, k = plan.cases, plan.samples
    todo = [r for r, (i, _) in enumerate(plan.rows) if cases[i]["id"] not in done]
    if not todo:
        return {"generated": 0, "generated_tokens": 0, "from_cache": 0}
    grader = Grader(suite, store, opts.progress)
    got: dict[int, dict[int, tuple[Generation, bool]]] = {}

    def collect(rows: list[int], gens: list[Generation], cached: bool) -> None:
        fresh: list[GenerationRow] = []
        complete: list[int] = []
        if not cached:
            note()
        for r, g in zip(rows, gens, strict=True):
            i, j = plan.rows[r]
            got.setdefault(i, {})[j] = (g, cached)
            if not cached:
                sample_settings = replace(plan.settings, seed=plan.seeds[r])
                fresh.append(
                    g.cache_row(plan.keys[r], ref.fingerprint, plan.convs[i], sample_settings)
                )
            if len(got[i]) == k:
                complete.append(i)
        results = [_result_row(run_id, i, cases[i], plan, got.pop(i), grader) for i in complete]
        store.save_results(results, fresh)

    return answer(
        store, todo, plan.keys, lambda r: plan.convs[plan.rows[r][0]], backend, plan.settings,
        collect, seed=lambda r: plan.seeds[r],
    )  # fmt: skip


def _result_row(
    run_id: str,
    i: int,
    case: dict[str, Any],
    plan: Any,
    got: dict[int, tuple[Generation, bool]],
    grader: Grader,
) -> ResultRow:
    """A case's row: its k graded samples, the majority grade, sample 0's answer, per-criterion
    pass shares, and what all k answers cost."""
    k = plan.samples
    gens = [got[j][0] for j in range(k)]
    graded = grader([g.output for g in gens], [case] * k)
    samples = [
        {
            "j": j,
            "seed": plan.seeds[i * k + j],
            "output": g.output,
            "grade": grade,
            "criteria": crit,
            "cached": got[j][1],
            "output_tokens": g.n_tokens,
            "seconds": g.seconds,
        }
        for j, (g, (grade, crit)) in enumerate(zip(gens, graded, strict=True))
    ]
    outcome = case_outcome([s["grade"] for s in samples])
    prompt_tokens = [g.prompt_tokens for g in gens if g.prompt_tokens is not None]
    row = result_row(
        run_id,
        case["id"],
        i,
        json.dumps(plan.convs[i]),
        gens[0].output,
        outcome["majority"],
        criteria_shares([crit for _, crit in graded]),
        cached=all(c for _, c in got.values()),
        must_pass=case.get("must_pass") is True,
        prompt_tokens=sum(prompt_tokens) if prompt_tokens else None,
        output_tokens=sum(g.n_tokens for g in gens),
        seconds=sum(g.seconds for g in gens),
    )
    row["samples"] = samples
    return row


def criteria_shares(per_sample: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per criterion over the samples: passed when most samples passed it, score the share that
    did, detail the count and the first failing sample's detail."""
    out: dict[str, dict[str, Any]] = {}
    for cid, first in per_sample[0].items():
        results = [crit[cid] for crit in per_sample if cid in crit]
        n_pass = sum(1 for c in results if c["passed"])
        failing = next((c.get("detail", "") for c in results if not c["passed"]), "")
        detail = f"{n_pass}/{len(results)} samples" + (f"; {failing}" if failing else "")
        out[cid] = {
            "section": first.get("section", "good"),
            "passed": 2 * n_pass > len(results),
            "score": n_pass / len(results),
            "detail": detail,
        }
    return out
