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

Runs are not resumable mid-way: lm-eval scores everything in one call, and the run's rows are then
written in one transaction. A repeated identical run (same suite, model, limit and dtype) reuses
the stored rows of the last complete one, marked cached, instead of scoring again.
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
from harness.grading import summarize
from harness.models import ModelRef
from harness.runner import EvalResult, dtype_for_cache
from harness.store import Store, new_id
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


def _run_lm_eval(
    configs: list[dict[str, Any]],
    suite: Suite,
    ref: ModelRef,
    *,
    limit: int | None,
    batch_size: int,
    dtype: str,
    progress: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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
    rows: list[dict[str, Any]] = []
    for cfg in configs:
        rows += sample_rows(cfg["task"], out["samples"][cfg["task"]])
    metrics = {
        task: {k.split(",")[0]: v for k, v in m.items() if isinstance(v, int | float)}
        for task, m in out["results"].items()
    }
    return rows, metrics


def evaluate_lm_eval(
    suite: Suite,
    ref: ModelRef,
    store: Store,
    *,
    limit: int | None = None,
    progress: bool = True,
    batch_size: int = 16,
    dtype: str | None = None,
) -> EvalResult:
    """Score the suite's lm-eval tasks and store one result row per sample."""
    t0 = time.perf_counter()
    if not suite.spec.lm_eval:
        raise UserError(f"suite '{suite.name}' has no lm_eval tasks")
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1")
    configs = task_configs(suite)  # reading the tasks can fail: before anything is stored
    dtype = dtype or dtype_for_cache()
    settings = {
        "backend": "lm-eval",
        "lm_eval": version("lm-eval"),
        "tasks": [c["task"] for c in configs],
        "limit": limit,
        "dtype": dtype,
    }
    run_key = hashlib.sha256(
        json.dumps([suite.fingerprint, ref.fingerprint, settings], sort_keys=True).encode()
    ).hexdigest()
    previous = store.one(
        "SELECT id FROM runs WHERE run_key=? AND status='complete'"
        " ORDER BY created_at DESC LIMIT 1",
        (run_key,),
    )
    metrics: dict[str, Any] = {}
    if previous:
        rows = store.results(previous["id"])
        cached = True
    else:
        rows, metrics = _run_lm_eval(
            configs, suite, ref, limit=limit, batch_size=batch_size, dtype=dtype, progress=progress
        )
        cached = False
    seconds = time.perf_counter() - t0
    run_id = new_id("run")
    scored = 0 if cached else len(rows)
    timings = {"seconds": seconds, "scored": scored, "from_cache": len(rows) - scored}
    with store.tx() as db:
        db.execute(
            "INSERT INTO runs (id, suite, suite_version, suite_fingerprint, suite_path,"
            " suite_files, model, model_fingerprint, settings, run_key, status, n_cases,"
            " created_at, finished_at, timings)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?)",
            (
                run_id, suite.name, suite.spec.version, suite.fingerprint, str(suite.path),
                json.dumps(suite.files), ref.name, ref.fingerprint, json.dumps(settings), run_key,
                len(rows), time.time(), time.time(), json.dumps({**timings, "metrics": metrics}),
            ),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (run_id, r["case_id"], i, r["prompt"], r["output"], r["grade"],
                 json.dumps(r["criteria"]), int(cached))
                for i, r in enumerate(rows)
            ],
        )  # fmt: skip
    stored = store.results(run_id)
    n = len(stored)
    return EvalResult(
        run_id, suite.name, ref.name, summarize(stored), n if cached else 0, 0 if cached else n,
        seconds, extra={"lm_eval": metrics},
    )  # fmt: skip
