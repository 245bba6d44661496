"""The store's rows as typed dictionaries: what each table holds, with JSON columns decoded."""

from __future__ import annotations

import json
import time
from typing import Any, NotRequired, TypedDict


class ModelRow(TypedDict):
    name: str
    spec: str
    path: str | None
    fingerprint: str | None
    kind: str  # packaged | local | adapter | trained | served
    base: str | None
    produced_by: str | None  # train run id
    info: dict[str, Any]  # the manifest; for served models: url, served id, revision, ...
    created_at: float


class RunRow(TypedDict):
    id: str
    suite: str
    suite_version: int
    suite_fingerprint: str
    suite_path: str
    suite_files: dict[str, str]
    model: str
    model_fingerprint: str
    model_kind: str
    prompt_variant: str
    settings: dict[str, Any]
    run_key: str
    status: str  # running | complete | failed
    n_cases: int
    train_run: str | None
    step: int | None
    created_at: float
    finished_at: float | None
    timings: dict[str, Any]


class ResultRow(TypedDict):
    run_id: str
    case_id: str
    position: int
    prompt: str  # JSON: the chat messages
    output: str
    grade: str
    criteria: dict[str, dict[str, Any]]
    cached: bool
    must_pass: bool
    prompt_tokens: int | None
    output_tokens: int | None
    seconds: float | None
    samples: NotRequired[list[dict[str, Any]] | None]  # k > 1 samples per case: each graded


def result_row(
    run_id: str, case_id: str, position: int, prompt: str, output: str, grade: str,
    criteria: dict[str, dict[str, Any]], *, cached: bool = False, must_pass: bool = False,
    prompt_tokens: int | None = None, output_tokens: int | None = None,
    seconds: float | None = None,
) -> ResultRow:  # fmt: skip
    """One graded case of a run (`prompt` is the chat messages as JSON); every writer of results
    (the runner, k-sample cases, lm-eval tasks, offline grading) builds its rows here. Token
    counts and seconds are None where nothing was generated here."""
    return {
        "run_id": run_id, "case_id": case_id, "position": position, "prompt": prompt,
        "output": output, "grade": grade, "criteria": criteria, "cached": cached,
        "must_pass": must_pass, "prompt_tokens": prompt_tokens, "output_tokens": output_tokens,
        "seconds": seconds,
    }  # fmt: skip


class GenerationRow(TypedDict):
    key: str
    model_fingerprint: str
    prompt: str
    settings: str
    output: str
    n_tokens: int
    prompt_tokens: int | None
    seconds: float
    created_at: float


def generation_row(
    key: str, model_fingerprint: str, prompt: Any, settings: Any, output: str, *,
    n_tokens: int = 0, prompt_tokens: int | None = None, seconds: float = 0.0,
) -> GenerationRow:  # fmt: skip
    """A generation-cache entry: what was asked (`prompt`, `settings`, stored as JSON) of which
    model, and what it answered; every writer of the cache builds its rows here."""
    return {
        "key": key,
        "model_fingerprint": model_fingerprint,
        "prompt": json.dumps(prompt),
        "settings": json.dumps(settings),
        "output": output,
        "n_tokens": n_tokens,
        "prompt_tokens": prompt_tokens,
        "seconds": seconds,
        "created_at": time.time(),
    }


class TrainRunRow(TypedDict):
    id: str
    suite: str
    trainer: str
    base: str
    config: dict[str, Any]
    output_dir: str
    model: str | None
    status: str  # running | complete | failed | interrupted
    created_at: float
    finished_at: float | None


class TrainLogRow(TypedDict):
    train_run: str
    step: int
    kind: str  # log | checkpoint | eval
    data: dict[str, Any]
    created_at: float


class LabelRow(TypedDict):
    run_id: str
    case_id: str
    grade: str
    note: str
    corrected_output: str | None
    reviewer: str
    created_at: float


# JSON columns per table: encoded on the way in, decoded on the way out.
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "models": ("info",),
    "runs": ("settings", "timings", "suite_files"),
    "results": ("criteria", "samples"),
    "train_runs": ("config",),
    "train_log": ("data",),
}
BOOL_COLUMNS: dict[str, tuple[str, ...]] = {"results": ("cached", "must_pass")}
