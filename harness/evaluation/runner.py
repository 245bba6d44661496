"""Evaluate a model on a suite: `evaluate_suite` is the one entry, used by `eval`, `loop` and the
evaluation of training checkpoints.

A suite's generation cases (data.test) and its lm-eval tasks land in one run, so a comparison
pairs both. Generations are cached and committed per batch; lm-eval tasks are scored whole and
cached per task. A run is identified by what it evaluates (suite fingerprint, model fingerprint,
settings, cases): running the same command after a crash or `kill -9` resumes the unfinished run,
finished cases are kept, and each case is stored exactly once. Two processes evaluating the
same run key on one store at once (two terminals, two CI jobs) do not both compute it: the second
waits on a claim (`Store.claim`) and takes the run the first completed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.comparison.sampling import suite_outcomes
from harness.errors import UserError
from harness.evaluation import sampled
from harness.evaluation.answers import answer
from harness.generation.dispatch import CACHE, backend_for, backend_kind, check_ready, engine_ran
from harness.generation.hardware import dtype_for_cache
from harness.generation.hub import records as hub_records
from harness.generation.models import ModelRef
from harness.generation.types import Backend, Generation, GenSettings, Messages, cache_key
from harness.grading.grader import Grader, summarize
from harness.grading.judges import judge_fingerprints
from harness.store import GenerationRow, ResultRow, RunRow, Store, new_id, result_row
from harness.suite.loader import Suite
from harness.suite.prompts import BASE, prompt_for


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate: which cases, how wide a batch, which dtype, and where the run belongs."""

    limit: int | None = None  # the first N test cases (and N samples per lm-eval task)
    case_ids: Sequence[str] | None = None  # only these test cases
    batch_size: int | None = None  # rows decoded together; None: the engine's default
    dtype: str | None = None  # None: what the hardware runs best
    progress: bool = True  # progress bars on stderr
    train_run: str | None = None  # set for checkpoint evaluations
    step: int | None = None
    trust_code: bool = False  # --trust-suite-code: the suite may run code (metrics, lm-eval tasks)
    prompt: str = BASE  # a prompt variant of the suite (`prompt.variants`), or the base prompt
    samples: int | None = None  # answers per case; None: the suite's generation.samples
    engine: str | None = None  # vllm, local or auto; None: TUNEVAL_ENGINE, else auto


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
    prompt: str = BASE

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "model": self.model,
            "prompt": self.prompt or None,
            "n": self.summary["n"],
            "grades": self.summary["grades"],
            "pass_rate": self.summary["pass_rate"],
            "criteria": self.summary["criteria"],
            "cached": self.cached,
            "generated": self.generated,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            **self.extra,
        }


def conversation(suite: Suite, case: dict[str, Any], prompt: str = BASE) -> Messages:
    """The chat messages a case is asked with, under the base prompt or a variant."""
    return prompt_for(suite, prompt).messages(case)


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


@dataclass
class _Plan:
    """What one evaluation will do, decided before anything is stored."""

    cases: list[dict[str, Any]]
    convs: list[Messages]
    keys: list[str]
    settings: GenSettings
    tasks: list[dict[str, Any]]  # lm-eval task configs
    lm_settings: dict[str, Any] | None
    run_key: str
    judges: dict[str, str]  # criterion id -> judge fingerprint
    samples: int = 1  # k > 1: keys and seeds are per (case, j) row, see harness.evaluation.sampled
    rows: list[tuple[int, int]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


def _plan(suite: Suite, ref: ModelRef, opts: EvalOptions, store: Store) -> _Plan:
    prompt = suite.check_use(opts.trust_code, opts.prompt)  # code it runs; an unknown variant
    if not suite.cases and not suite.spec.lm_eval:
        raise UserError(f"suite '{suite.name}' has neither test cases nor lm-eval tasks")
    if opts.limit is not None and opts.limit < 1:
        raise UserError("--limit must be at least 1")
    if opts.batch_size is not None and opts.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    cases = select_cases(suite, opts.limit, opts.case_ids)
    convs = [prompt.messages(c) for c in cases] if prompt else []
    k = sampled.samples_for(suite, opts.samples)

    def plan_keys(s: GenSettings) -> tuple[list[tuple[int, int]], list[int], list[str]]:
        if k > 1:
            g = suite.spec.generation
            return sampled.sample_plan(cases, convs, ref.fingerprint, s, g.seed, k)
        return [], [], [cache_key(ref.fingerprint, m, s) for m in convs]

    from harness.generation import engine_choice

    settings = engine_choice.settle(  # vllm or local, refused before anything is stored
        opts.engine, ref, bool(suite.spec.lm_eval), settings_for(suite, opts.dtype),
        lambda s: plan_keys(s)[2], store,
    )  # fmt: skip
    rows, seeds, keys = plan_keys(settings)
    tasks: list[dict[str, Any]] = []
    lm_settings = None
    if suite.spec.lm_eval:
        from harness.lmeval import run as lmeval

        # checkpoint evals pick their test cases by id; the tasks get as many samples each
        task_limit = len(cases) if opts.case_ids is not None and opts.limit is None else opts.limit
        tasks = lmeval.task_configs(suite, opts.trust_code)  # can fail: before anything is stored
        lm_settings = lmeval.settings(tasks, task_limit, settings.dtype)
    judges = judge_fingerprints(suite, store)  # an unknown judge fails here, before any write
    blob = [
        suite.fingerprint,
        ref.fingerprint,
        settings.as_dict(),
        [c["id"] for c in cases],
        opts.train_run,
        opts.step,
    ]
    if lm_settings is not None:  # runs made before lm-eval rode along keep their keys
        blob.append(lm_settings)
    if opts.prompt != BASE:  # and base-prompt runs keep theirs
        blob.append({"prompt": opts.prompt})
    if judges:  # and runs without judges keep theirs
        blob.append({"judges": judges})
    if k > 1:  # and one-sample runs keep theirs
        blob.append({"samples": k})
    run_key = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
    return _Plan(cases, convs, keys, settings, tasks, lm_settings, run_key, judges, k, rows, seeds)


def evaluate_suite(
    suite: Suite,
    ref: ModelRef,
    store: Store,
    opts: EvalOptions = EvalOptions(),  # noqa: B008 - frozen, so one shared default is safe
    *,
    backend: Backend | None = None,
) -> EvalResult:
    """Evaluate `ref` on everything the suite holds and store one run; resumes an interrupted
    run of the same command."""
    t0, began = time.perf_counter(), time.time()
    from harness.generation.engine_choice import asked

    if backend is not None and asked(opts.engine) == "auto":  # the caller's backend answers
        opts = replace(opts, engine="local")
    plan = _plan(suite, ref, opts, store)
    if backend is None:  # built only: loaded, started or asked when some answer is not cached
        backend = backend_for(
            ref, plan.settings, batch_size=opts.batch_size, progress=opts.progress
        )
        # an unreachable endpoint: exit 2 before a run is recorded, unless no answer is missing
        check_ready(backend, lambda: len(store.cached_generations(plan.keys)) < len(plan.keys))
    # One process evaluates a run key at a time; one that waited takes the run the other made.
    with store.claim(f"run:{plan.run_key}", on_wait=lambda: _say_waiting(opts)) as waited:
        shared = _finished_since(store, plan.run_key, began) if waited else None
        if shared is not None:
            rows = store.results(shared)
            return EvalResult(
                shared, suite.name, ref.name, summarize(rows), len(rows), 0,
                time.perf_counter() - t0, extra={"shared": True}, prompt=opts.prompt,
            )  # fmt: skip
        run_id, resumed = _start_run(store, suite, ref, plan, opts)
        done = store.result_ids(run_id)
        try:
            note = _engine_note(store, run_id, backend)
            counts = _generate_cases(store, suite, ref, plan, opts, backend, run_id, done, note)
            if plan.cases and not counts["generated"]:
                _note_engine(store, run_id, CACHE)  # the cache held every answer
            metrics = _score_tasks(store, suite, ref, plan, opts, run_id, done)
        except BaseException:
            store.set_run_status(run_id, "failed")
            raise
        seconds = time.perf_counter() - t0
        rows = store.results(run_id)
        timings: dict[str, Any] = {"seconds": seconds, **counts}
        extra: dict[str, Any] = {}
        if metrics:
            timings["lm_eval"] = extra["lm_eval"] = metrics
        if "served" in counts:
            extra["served"] = counts["served"]
        if plan.samples > 1:
            extra["sampling"] = suite_outcomes(rows)
        store.finish_run(run_id, timings)
    cached = sum(1 for r in rows if r["cached"])
    generated = counts["generated"]
    return EvalResult(
        run_id, suite.name, ref.name, summarize(rows), cached, generated, seconds, resumed, extra,
        prompt=opts.prompt,
    )  # fmt: skip


def _say_waiting(opts: EvalOptions) -> None:
    if opts.progress:
        sys.stderr.write(
            "waiting: another tuneval process is evaluating this model on this suite; "
            "its run will be taken when it finishes\n"
        )


def _finished_since(store: Store, run_key: str, since: float) -> str | None:
    """The run of this key that another process completed while this one waited for it."""
    run_id = store.complete_run(run_key)
    run = store.run(run_id) if run_id else None
    if run is not None and (run["finished_at"] or 0) >= since:
        return run_id
    return None


def _engine_note(store: Store, run_id: str, backend: Backend) -> Callable[[], None]:
    """What the case generation calls as each fresh batch is committed: the first call notes in
    the run's settings the engine that answers it, so a run resumed after a kill on another
    engine names both, in order."""
    noted = False

    def note() -> None:
        nonlocal noted
        if not noted:
            noted = True
            _note_engine(store, run_id, engine_ran(backend))

    return note


def _note_engine(store: Store, run_id: str, engine: str | None) -> None:
    """Add `engine` to the engines the run's settings name (`dispatch.CACHE` only while they
    name none); None (a backend that does not say) notes nothing."""
    run = store.run(run_id)
    noted = str((run["settings"] if run else {}).get("engine") or "")
    names = [e for e in noted.split("+") if e and e != CACHE]
    if engine is None or engine in names or (engine == CACHE and noted):
        return
    store.set_run_setting(run_id, "engine", "+".join([*names, engine]))


def _generate_cases(
    store: Store,
    suite: Suite,
    ref: ModelRef,
    plan: _Plan,
    opts: EvalOptions,
    backend: Backend,
    run_id: str,
    done: set[str],
    note: Callable[[], None],
) -> dict[str, Any]:
    """Generate (or take from the cache), grade and commit the test cases not yet in the run.
    Returns how many were generated (and their tokens) and taken from the cache."""
    if plan.samples > 1:
        if opts.progress:
            sampled.say_plan(len(plan.cases), plan.samples)
        return sampled.generate_samples(store, suite, ref, plan, backend, opts, run_id, done, note)
    cases, keys, settings = plan.cases, plan.keys, plan.settings
    todo = [i for i in range(len(cases)) if cases[i]["id"] not in done]
    if not todo:
        return {"generated": 0, "generated_tokens": 0, "from_cache": 0}
    grader = Grader(suite, store, opts.progress)

    def commit(indices: list[int], gens: list[Generation], cached: bool) -> None:
        graded = grader([g.output for g in gens], [cases[i] for i in indices])
        generations: list[GenerationRow] = []
        if not cached:
            note()
            generations = [
                g.cache_row(keys[i], ref.fingerprint, plan.convs[i], settings)
                for i, g in zip(indices, gens, strict=True)
            ]
        results: list[ResultRow] = [
            result_row(
                run_id, cases[i]["id"], i, json.dumps(plan.convs[i]), g.output, grade, crit,
                cached=cached, must_pass=cases[i].get("must_pass") is True,
                prompt_tokens=g.prompt_tokens, output_tokens=g.n_tokens,
                seconds=g.seconds,  # a cached answer keeps what generating it cost
            )
            for i, g, (grade, crit) in zip(indices, gens, graded, strict=True)
        ]  # fmt: skip
        store.save_results(results, generations)

    counts: dict[str, Any] = answer(
        store, todo, keys, lambda i: plan.convs[i], backend, settings, commit
    )
    # what asking the server cost
    stats = getattr(backend, "stats", None) if counts["generated"] else None
    if stats is not None and hasattr(stats, "to_json"):
        counts["served"] = stats.to_json()
    return counts


def _score_tasks(
    store: Store,
    suite: Suite,
    ref: ModelRef,
    plan: _Plan,
    opts: EvalOptions,
    run_id: str,
    done: set[str],
) -> dict[str, Any]:
    """Score the suite's lm-eval tasks that the run does not hold yet; returns their metrics."""
    if not plan.tasks or plan.lm_settings is None:
        return {}
    from harness.lmeval import run as lmeval

    return lmeval.score_into_run(
        store, suite, ref, plan.tasks, plan.lm_settings, run_id, done, offset=len(plan.cases),
        batch_size=min(opts.batch_size or 16, 16), progress=opts.progress,
        trust_code=opts.trust_code,
    )  # fmt: skip


def new_run_row(
    suite: Suite, model: str, fingerprint: str, kind: str, settings: dict[str, Any],
    run_key: str, n_cases: int, *, prompt: str = BASE, train_run: str | None = None,
    step: int | None = None,
) -> RunRow:  # fmt: skip
    """The row of a run about to be evaluated (or graded), under a new id."""
    return {
        "id": new_id("run"),
        "suite": suite.name,
        "suite_version": suite.spec.version,
        "suite_fingerprint": suite.fingerprint,
        "suite_path": str(suite.path),
        "suite_files": suite.files,
        "model": model,
        "model_fingerprint": fingerprint,
        "model_kind": kind,
        "prompt_variant": prompt,
        "settings": settings,
        "run_key": run_key,
        "status": "running",
        "n_cases": n_cases,
        "train_run": train_run,
        "step": step,
        "created_at": time.time(),
        "finished_at": None,
        "timings": {},
    }


def _start_run(
    store: Store, suite: Suite, ref: ModelRef, plan: _Plan, opts: EvalOptions
) -> tuple[str, bool]:
    unfinished = store.unfinished_run(plan.run_key)
    if unfinished:
        return unfinished, True
    settings: dict[str, Any] = {
        **plan.settings.as_dict(),
        "limit": opts.limit,
        # the backend as runs have always named it (hf: the local one); which of its engines
        # answered is noted as "engine" with its first fresh answers (`_engine_note`)
        "backend": backend_kind(ref, plan.settings),
        "must_pass": "recorded",  # runs stored before schema 2 lack the flags
    }
    if plan.lm_settings is not None:
        settings["lm_eval"] = plan.lm_settings
    if plan.judges:
        settings["judges"] = plan.judges
    sources = hub_records(ref)  # the revision asked for and the commit it resolved to
    if sources:
        settings["hub"] = sources
    if plan.samples > 1:
        settings["samples"] = plan.samples
    row = new_run_row(
        suite, ref.name, ref.fingerprint, ref.kind, settings, plan.run_key, len(plan.cases),
        prompt=opts.prompt, train_run=opts.train_run, step=opts.step,
    )  # fmt: skip
    store.insert_run(row)
    return row["id"], False
