"""Run a suite's lm-eval tasks through lm-eval and store every sample as an ordinary case.

The model is loaded once by `harness.models.load` and handed to lm-eval's `HFLM`; the tasks are the
suite's own task YAML files (lm-eval's format, read by lm-eval's loader), with their local
`dataset_kwargs.data_files` made absolute so the run does not depend on the working directory.
No task is fetched from a hub: lm-eval's built-in task index is not even scanned.

Each sample becomes one row in `results`, so base-vs-candidate comparison pairs them like any other
case: the case id is "<task>/<doc id>" (the doc's own `id` field where it has one), the output is
the choice the model ranked first, and one criterion `correct` (section `good`) holds whether it
was the gold answer, its probability among the choices as the score, and "picked 'France',
expected 'Spain'" as the detail. Grades: correct -> `good`, wrong -> `bad`; a multiple-choice
answer has no "better" (pass rate = accuracy).

The tasks ride along in the run of `harness.runner.evaluate_suite`. lm-eval scores a task in one
call, so a task is the unit of caching and resuming: its rows are committed in one transaction
with a cache entry keyed by (model fingerprint, suite fingerprint, task, settings), and a later
run of the same model and suite takes them from there instead of scoring again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.models import ModelRef
from harness.store import GenerationRow, ResultRow, Store
from harness.suite import Suite


def task_configs(suite: Suite) -> list[dict[str, Any]]:
    """The suite's task YAMLs as lm-eval config dicts, local data paths made absolute."""
    from lm_eval.tasks._yaml_loader import load_yaml

    configs = []
    for name in suite.spec.lm_eval:
        path = suite.path / name
        try:
            cfg = load_yaml(path)
        except Exception as e:  # lm-eval raises plain exceptions for broken task files
            raise UserError(f"{path}: lm-eval cannot read this task: {e}") from None
        if "task" not in cfg:
            raise UserError(f"{path}: an lm-eval task file needs a 'task' name")
        kwargs = dict(cfg.get("dataset_kwargs") or {})
        files = kwargs.get("data_files")
        if isinstance(files, dict):
            kwargs["data_files"] = {k: _absolute(path.parent, v) for k, v in files.items()}
        elif files is not None:
            kwargs["data_files"] = _absolute(path.parent, files)
        cfg["dataset_kwargs"] = kwargs
        configs.append(cfg)
    return configs


def _absolute(folder: Path, value: Any) -> Any:
    if isinstance(value, list):
        return [_absolute(folder, v) for v in value]
    return str((folder / value).resolve()) if isinstance(value, str) else value


def _softmax_gold(logliks: list[float], gold: int) -> float:
    top = max(logliks)
    weights = [math.exp(x - top) for x in logliks]
    return weights[gold] / sum(weights)


def sample_rows(task: str, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result row per lm-eval sample (multiple choice: log-likelihood per choice)."""
    rows = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        doc = s["doc"]
        context = s["arguments"][0][0] if s.get("arguments") else ""
        choices = [a[1].strip() for a in s["arguments"]]
        logliks = [float(r[0]) for r in s["filtered_resps"]]
        gold = s["target"]
        if not isinstance(gold, int) or not 0 <= gold < len(choices):
            raise UserError(
                f"lm-eval task '{task}': only single-answer multiple choice is supported"
            )
        picked = max(range(len(logliks)), key=lambda i: logliks[i])
        correct = picked == gold
        p_gold = _softmax_gold(logliks, gold)
        detail = f"picked '{choices[picked]}'"
        if not correct:
            detail += f", expected '{choices[gold]}'"
        criteria = {
            "correct": {
                "section": "good",
                "passed": correct,
                "score": round(p_gold, 4),
                "detail": f"{detail} (p={p_gold:.2f})",
            }
        }
        case_id = f"{task}/{doc.get('id', s['doc_id']) if isinstance(doc, dict) else s['doc_id']}"
        rows.append(
            {
                "case_id": case_id,
                "prompt": json.dumps([{"role": "user", "content": context}]),
                "output": choices[picked],
                "grade": "good" if correct else "bad",
                "criteria": criteria,
            }
        )
    return rows


def settings(tasks: list[dict[str, Any]], limit: int | None, dtype: str) -> dict[str, Any]:
    """What makes two scorings of the suite's tasks the same."""
    return {
        "backend": "lm-eval",
        "lm_eval": version("lm-eval"),
        "tasks": [c["task"] for c in tasks],
        "limit": limit,
        "dtype": dtype,
    }


def _task_key(ref: ModelRef, suite: Suite, task: str, lm_settings: dict[str, Any]) -> str:
    blob = json.dumps(["lm-eval", ref.fingerprint, suite.fingerprint, task, lm_settings])
    return hashlib.sha256(blob.encode()).hexdigest()


def _run_lm_eval(
    configs: list[dict[str, Any]],
    suite: Suite,
    ref: ModelRef,
    *,
    limit: int | None,
    batch_size: int,
    dtype: str,
    progress: bool,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from harness.models import load

    if not progress:
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
    model, tok = load(ref, dtype)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
    manager = TaskManager(include_path=str(suite.path), include_defaults=False)
    # lm-eval and datasets draw their own progress bars on stderr; --json output wants none.
    quiet = contextlib.redirect_stderr(io.StringIO()) if not progress else contextlib.nullcontext()
    with quiet:
        out = simple_evaluate(
            model=lm,
            tasks=configs,
            task_manager=manager,
            limit=limit,
            log_samples=True,
            bootstrap_iters=0,
        )
    if out is None:
        raise RuntimeError("lm-eval returned no results")
    rows = {cfg["task"]: sample_rows(cfg["task"], out["samples"][cfg["task"]]) for cfg in configs}
    metrics = {
        task: {k.split(",")[0]: v for k, v in m.items() if isinstance(v, int | float)}
        for task, m in out["results"].items()
    }
    return rows, metrics


def score_into_run(
    store: Store,
    suite: Suite,
    ref: ModelRef,
    tasks: list[dict[str, Any]],
    lm_settings: dict[str, Any],
    run_id: str,
    done: set[str],
    *,
    offset: int,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, Any]:
    """Add every sample of the suite's tasks to the run, scoring only tasks neither the run nor
    the cache holds. Returns lm-eval's task-level metrics for the tasks scored now."""
    keys = {c["task"]: _task_key(ref, suite, c["task"], lm_settings) for c in tasks}
    cached = store.cached_generations(list(keys.values()))
    rows: dict[str, list[dict[str, Any]]] = {}
    from_cache: set[str] = set()
    for task, key in keys.items():
        if key in cached:
            rows[task] = json.loads(cached[key]["output"])
            from_cache.add(task)
    missing = [c for c in tasks if c["task"] not in rows]
    metrics: dict[str, Any] = {}
    seconds = 0.0
    if missing:
        t0 = time.perf_counter()
        scored, metrics = _run_lm_eval(
            missing, suite, ref, limit=lm_settings["limit"], batch_size=batch_size,
            dtype=lm_settings["dtype"], progress=progress,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        rows.update(scored)
    position = offset
    for cfg in tasks:
        task = cfg["task"]
        task_rows = rows[task]
        results: list[ResultRow] = []
        for r in task_rows:
            position += 1
            if r["case_id"] in done:
                continue
            results.append(
                {
                    "run_id": run_id,
                    "case_id": r["case_id"],
                    "position": position,
                    "prompt": r["prompt"],
                    "output": r["output"],
                    "grade": r["grade"],
                    "criteria": r["criteria"],
                    "cached": task in from_cache,
                    "must_pass": False,
                    "prompt_tokens": None,
                    "output_tokens": None,
                    "seconds": None,
                }
            )
        generations: list[GenerationRow] = []
        if task not in from_cache:
            generations.append(
                {
                    "key": keys[task],
                    "model_fingerprint": ref.fingerprint,
                    "prompt": json.dumps({"lm_eval_task": task}),
                    "settings": json.dumps(lm_settings),
                    "output": json.dumps(task_rows),
                    "n_tokens": 0,
                    "prompt_tokens": None,
                    "seconds": seconds / max(1, len(missing)),
                    "created_at": time.time(),
                }
            )
        store.save_results(results, generations)
    return metrics
