"""Checkpoint runs of training done elsewhere: a sweep over finished checkpoint folders, and the
records the Trainer callback writes while training runs.

`tuneval eval SUITE --model "out/checkpoint-*"` (a glob, or a training output folder holding
`checkpoint-N/`) evaluates the base and then every checkpoint in step order, each as a
checkpoint run (`train_run`, `step`) of one training run, exactly as `train --eval-checkpoints`
stores them: `tuneval curve`, `compare` and the report's Training page read them unchanged. The
training run is found again by its output folder, so a rerun (after `kill -9` too) skips the
checkpoints already evaluated, resumes the one that was interrupted (`evaluate_suite` resumes a
run of the same key) and takes unchanged answers from the generation cache.

Each checkpoint says what it is: `adapter_config.json` (a LoRA checkpoint, whose base it names)
or `config.json` (a full model). Full checkpoints do not record their base (transformers drops
`_name_or_path` on save): pass `--base` to pair them with one.
"""

from __future__ import annotations

import glob
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.evaluation.runner import EvalOptions, EvalResult, evaluate_suite
from harness.generation.models import ModelRef, resolve
from harness.store import Store, TrainRunRow, new_id
from harness.suite.loader import Suite

_STEP = re.compile(r"(\d+)$")
_CHECKPOINT = re.compile(r"^checkpoint-\d+$")  # the folders a transformers Trainer saves
SWEEP_TRAINER = "checkpoints"  # the trainer name of a sweep's training run


def checkpoint_folders(spec: str) -> list[tuple[int, Path]] | None:
    """The checkpoints a model spec names, in step order, or None when it names one model.

    A glob whose every match is a `checkpoint-N` folder, or a folder that is not a model itself
    but holds `checkpoint-N/` folders (a training output folder). Any other glob is several
    models (`models.expand_model_specs`). The step is the number that ends each folder's name."""
    if any(ch in spec for ch in "*?[") and not Path(spec).expanduser().is_dir():
        folders = [Path(p) for p in glob.glob(str(Path(spec).expanduser())) if Path(p).is_dir()]
        if not folders or not all(_CHECKPOINT.match(f.name) for f in folders):
            return None  # other globs are several models (`expand_model_specs`)
    else:
        root = Path(spec).expanduser()
        if not root.is_dir() or _is_model(root):
            return None
        folders = [p for p in root.glob("checkpoint-*") if p.is_dir()]
        if not folders:
            return None
    steps = []
    for f in folders:
        m = _STEP.search(f.name)
        if m is None:
            raise UserError(f"--model {spec}: {f} has no step number at the end of its name")
        if not _is_model(f):
            raise UserError(f"{f}: neither adapter_config.json nor config.json: not a checkpoint")
        steps.append((int(m.group(1)), f))
    steps.sort()
    seen = [s for s, _ in steps]
    if len(set(seen)) != len(seen):
        raise UserError(f"--model {spec}: two folders end in the same step number")
    return steps


def _is_model(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()


def adapter_base(folder: Path) -> str | None:
    """The base an adapter checkpoint names (peft's `base_model_name_or_path`)."""
    try:
        cfg = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return None
    base = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
    return base if isinstance(base, str) and base else None


# --- the training run the points belong to -----------------------------------------------------


def open_train_run(
    store: Store, suite: Suite, trainer: str, base: str, output_dir: Path,
    config: dict[str, Any], *, reuse: bool,
) -> str:  # fmt: skip
    """The training run of `output_dir` (reused when `reuse`: a sweep run again), else a new one."""
    out = str(output_dir.resolve())
    if reuse:
        for t in store.train_runs():
            if t["trainer"] == trainer and t["output_dir"] == out and t["suite"] == suite.name:
                return str(t["id"])
    row: TrainRunRow = {
        "id": new_id("train"),
        "suite": suite.name,
        "trainer": trainer,
        "base": base,
        "config": config,
        "output_dir": out,
        "model": None,
        "status": "running",
        "created_at": time.time(),
        "finished_at": None,
    }
    store.insert_train_run(row)
    return row["id"]


def record_point(store: Store, train_run: str, step: int, result: EvalResult, path: str) -> None:
    """The train_log lines of one evaluated checkpoint, as `train --eval-checkpoints` writes."""
    summary = result.summary
    store.log_train(
        train_run,
        step,
        "eval",
        {"run_id": result.run_id, "pass_rate": summary["pass_rate"], "grades": summary["grades"]},
    )
    store.log_train(
        train_run,
        step,
        "checkpoint",
        {"path": path, "run_id": result.run_id, "pass_rate": summary["pass_rate"]},
    )


# --- the sweep ---------------------------------------------------------------------------------


@dataclass
class Sweep:
    train_run: str
    base_run: str | None
    runs: dict[int, str]  # step -> run id
    skipped: list[int]  # steps already evaluated by an earlier sweep


def sweep(
    suite: Suite,
    folders: list[tuple[int, Path]],
    store: Store,
    opts: EvalOptions,
    base_spec: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Sweep:
    """Evaluate the base (step 0) and every checkpoint (step N) as runs of one training run."""
    refs = [(step, resolve(str(f), store)) for step, f in folders]  # every folder checked first
    base_spec = base_spec or adapter_base(folders[0][1])
    base = resolve(base_spec, store) if base_spec else None
    kinds = {ref.base is not None for _, ref in refs}
    if len(kinds) > 1:
        raise UserError("the checkpoints mix adapters and full models: sweep them apart")
    output_dir = folders[0][1].parent
    config = {"checkpoints": [str(f) for _, f in folders], "kind": _kind(refs[0][1])}
    train_run = open_train_run(
        store, suite, SWEEP_TRAINER, base.name if base else "", output_dir, config, reuse=True
    )
    done = _evaluated(store, train_run)
    result = Sweep(train_run, None, {}, [])
    if base is not None:
        result.base_run = _evaluate(store, suite, base, opts, train_run, 0, done, result, say)
    for step, ref in refs:
        named = replace(ref, name=f"{output_dir.name}@{step}")
        result.runs[step] = _evaluate(store, suite, named, opts, train_run, step, done, result, say)
    store.finish_train_run(train_run, "complete")
    return result


def _kind(ref: ModelRef) -> str:
    return "adapter" if ref.base is not None else "full"


def _evaluated(store: Store, train_run: str) -> dict[tuple[int, str], str]:
    """(step, model fingerprint) -> run id of every complete point of the training run."""
    return {
        (int(r["step"] or 0), r["model_fingerprint"]): r["id"]
        for r in store.checkpoint_runs(train_run)
        if r["status"] == "complete"
    }


def _evaluate(
    store: Store, suite: Suite, ref: ModelRef, opts: EvalOptions, train_run: str, step: int,
    done: dict[tuple[int, str], str], result: Sweep, say: Callable[[str], None],
) -> str:  # fmt: skip
    known = done.get((step, ref.fingerprint))
    if known is not None:
        result.skipped.append(step)
        return known
    say(f"step {step}: {ref.name}")
    r = evaluate_suite(suite, ref, store, replace(opts, train_run=train_run, step=step))
    record_point(store, train_run, step, r, str(ref.path))
    return r.run_id
