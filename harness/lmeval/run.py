"""Run a suite's lm-eval tasks through lm-eval and store every sample as an ordinary case.

The model is loaded once by `harness.generation.models.load` and handed to lm-eval's `HFLM`; the
tasks are the suite's own task YAML files (lm-eval's format), with their local
`dataset_kwargs.data_files` made absolute so the run does not depend on the working directory. No
task is fetched from a hub: lm-eval's built-in task index is not even scanned.

Suites are data: the task files are read once, when the suite loads, by
`harness.suite.lmeval_config` without importing anything; the run uses that text, never the files
read again. A task that would run code (`!function`, a custom filter or metric script, a dataset
script) is refused unless the user passes `--trust-suite-code`; only then does lm-eval's own
loader parse the text. Without the flag, Jinja prompt templates are also rendered in a sandbox, so
a template cannot reach Python objects either.

Each sample becomes one row in `results` (see `harness.lmeval.samples` for multiple choice and
generate_until), so base-vs-candidate comparison pairs them like any other case: the case id is
"<task>/<doc id>" (the doc's own `id` field where it has one).

The tasks ride along in the run of `harness.evaluation.runner.evaluate_suite`. lm-eval scores a task
in one call, so a task is the unit of caching and resuming: its rows are committed in one
transaction with a cache entry keyed by (model fingerprint, suite fingerprint, task, settings), and
a later run of the same model and suite takes them from there instead of scoring again.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.generation.models import ModelRef
from harness.lmeval.samples import rows_for
from harness.store import GenerationRow, ResultRow, Store, generation_row, result_row
from harness.suite.lmeval_config import TRUST_FLAG, LoadedTask
from harness.suite.loader import Suite


def task_configs(suite: Suite, trust_code: bool = False) -> list[dict[str, Any]]:
    """The suite's tasks as lm-eval config dicts, from the text its load read (never the files
    again: the run scores what the fingerprint names), local data paths made absolute. With
    `trust_code` (the user's --trust-suite-code, checked by the caller) that text is read by
    lm-eval's own loader, so its `!function` tags import their modules."""
    configs = []
    for task in suite.tasks:
        cfg = _trusted_config(task) if trust_code else copy.deepcopy(task.config)
        if "task" not in cfg:  # the load refuses such a file; lm-eval's reading may differ
            raise UserError(f"{task.path}: an lm-eval task file needs a 'task' name")
        kwargs = dict(cfg.get("dataset_kwargs") or {})
        files = kwargs.get("data_files")
        if isinstance(files, dict):
            kwargs["data_files"] = {k: _absolute(task.path.parent, v) for k, v in files.items()}
        elif files is not None:
            kwargs["data_files"] = _absolute(task.path.parent, files)
        cfg["dataset_kwargs"] = kwargs
        configs.append(cfg)
    return configs


def _trusted_config(task: LoadedTask) -> dict[str, Any]:
    try:
        return _lm_eval_yaml(task.path, task.texts, set())
    except Exception as e:  # lm-eval raises plain exceptions for broken task files
        raise UserError(f"{task.path}: lm-eval cannot read this task: {e}") from None


def _lm_eval_yaml(path: Path, texts: dict[Path, str], seen: set[Path]) -> dict[str, Any]:
    """lm-eval's `load_yaml`, each file parsed from the text the suite read. A file the suite did
    not read (an include outside its folder, which --trust-suite-code allows) lm-eval reads."""
    import yaml
    from lm_eval.tasks._yaml_loader import _make_loader, load_yaml

    path = path.expanduser().resolve()
    if path not in texts:
        return dict(load_yaml(path, _seen=seen))
    if path in seen:
        raise ValueError(f"Include cycle at {path}")
    seen.add(path)
    loader = _make_loader(path.parent, resolve_funcs=True)
    cfg = yaml.load(texts[path], Loader=loader)  # noqa: S506 - trusted: lm-eval's own loader
    if not isinstance(cfg, dict):
        raise ValueError(f"Expected YAML dict from {path}, got {type(cfg).__name__}")
    if "include" not in cfg:
        return cfg
    includes = cfg.pop("include")
    merged: dict[str, Any] = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        sub = _lm_eval_yaml(path.parent / inc, texts, seen)  # an absolute name stays absolute
        sub.pop("task_list", None)  # as lm-eval: it lists the included file's own tasks
        merged.update(sub)
    merged.update(cfg)  # the including file wins
    return merged


@contextlib.contextmanager
def _sandboxed_templates(trust_code: bool) -> Iterator[None]:
    """lm-eval renders prompt templates with a plain Jinja environment, where a template can
    reach Python internals; untrusted suites get a sandboxed one with the same filters."""
    if trust_code:
        yield
        return
    import lm_eval.utils as lm_utils
    from jinja2 import BaseLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    plain = lm_utils.env
    sandbox = ImmutableSandboxedEnvironment(
        loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True
    )
    sandbox.filters.update(plain.filters)
    from harness.safe.regex import template_replace

    sandbox.filters["regex_replace"] = template_replace  # a suite's pattern, under a time limit
    lm_utils.env = sandbox
    try:
        yield
    finally:
        lm_utils.env = plain


@contextlib.contextmanager
def _no_git_probe() -> Iterator[None]:
    """lm-eval records the git commit of the current folder by running `git describe`, whose
    "fatal: not a git repository" goes straight to the terminal, past any redirect of
    sys.stderr. tuneval records its own provenance; the probe is skipped."""
    import lm_eval.evaluator as lm_evaluator

    probe = lm_evaluator.get_git_commit_hash
    lm_evaluator.get_git_commit_hash = lambda: None
    try:
        yield
    finally:
        lm_evaluator.get_git_commit_hash = probe


def _absolute(folder: Path, value: Any) -> Any:
    if isinstance(value, list):
        return [_absolute(folder, v) for v in value]
    return str((folder / value).resolve()) if isinstance(value, str) else value


def settings(tasks: list[dict[str, Any]], limit: int | None, dtype: str) -> dict[str, Any]:
    """What makes two scorings of the suite's tasks the same."""
    return {
        "backend": "lm-eval",
        "lm_eval": version("lm-eval"),
        "tasks": [c["task"] for c in tasks],
        "limit": limit,
        "dtype": dtype,
        "rows": 2,  # the shape of the stored rows (2: acc_norm and generate_until criteria)
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
    trust_code: bool,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    from jinja2.exceptions import SecurityError
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from harness.generation.models import load

    # lm-eval's warnings are about how tuneval hands it the model ("`pretrained` model kwarg is
    # not of type `str`"), nothing the user can act on; its errors still show.
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    model, tok = load(ref, dtype)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
    # No include path: the configs are complete, and nothing else in the folder is read.
    manager = TaskManager(include_defaults=False)
    # lm-eval and datasets draw their own progress bars on stderr; --json output wants none.
    quiet = contextlib.redirect_stderr(io.StringIO()) if not progress else contextlib.nullcontext()
    with quiet, _no_git_probe(), _sandboxed_templates(trust_code):
        try:
            out = simple_evaluate(
                model=lm,
                tasks=configs,
                task_manager=manager,
                limit=limit,
                log_samples=True,
                bootstrap_iters=0,
            )
        except SecurityError as e:
            raise UserError(
                f"{suite.path}: an lm-eval prompt template reached for Python internals ({e}); "
                f"suites are data ({TRUST_FLAG} allows it)"
            ) from None
    if out is None:
        raise RuntimeError("lm-eval returned no results")
    rows = {cfg["task"]: rows_for(cfg, out["samples"][cfg["task"]]) for cfg in configs}
    metrics = {
        task: {_metric_key(k): v for k, v in m.items() if isinstance(v, int | float)}
        for task, m in out["results"].items()
    }
    return rows, metrics


def _metric_key(key: str) -> str:
    """lm-eval's "exact_match,strict-match" as "exact_match/strict-match"; "acc,none" as "acc"."""
    name, _, pipeline = key.partition(",")
    return name if pipeline in ("", "none") else f"{name}/{pipeline}"


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
    trust_code: bool = False,
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
            dtype=lm_settings["dtype"], progress=progress, trust_code=trust_code,
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
                result_row(
                    run_id,
                    r["case_id"],
                    position,
                    r["prompt"],
                    r["output"],
                    r["grade"],
                    r["criteria"],
                    cached=task in from_cache,
                )
            )
        generations: list[GenerationRow] = []
        if task not in from_cache:
            generations.append(
                generation_row(
                    keys[task],
                    ref.fingerprint,
                    {"lm_eval_task": task},
                    lm_settings,
                    json.dumps(task_rows),
                    seconds=seconds / max(1, len(missing)),
                )  # fmt: skip
            )
        store.save_results(results, generations)
    return metrics
