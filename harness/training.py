"""Training as the harness sees it: validate settings, build the request, run a trainer plugin,
log its progress and checkpoints to the store, evaluate checkpoints on the suite, and register
the result as a model.

A candidate's name is `<suite>-<trainer>-<hash>`, the hash covering the base model's fingerprint,
the training data and every setting. The same command therefore lands in the same output folder:
after a crash or `kill -9` the trainer resumes from its last checkpoint, and once the model is
finished a rerun reuses it instead of training again.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import Problem, UserError
from harness.models import ModelRef, resolve
from harness.store import Store, new_id
from harness.suite import Suite
from trainers.protocol import (
    CHECKPOINTS,
    MANIFEST,
    BaseModelInfo,
    Hyperparameters,
    Messages,
    Trainer,
    TrainRequest,
)


@dataclass
class TrainOutcome:
    model: str  # the registered name
    train_run: str
    path: Path
    kind: str
    reused: bool
    resumed_from: int | None
    manifest: dict[str, Any]
    checkpoint_runs: list[str]

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "model": self.model,
            "train_run": self.train_run,
            "path": str(self.path),
            "kind": self.kind,
            "reused": self.reused,
            "resumed_from": self.resumed_from,
            "steps": m.get("steps"),
            "tokens": m.get("tokens"),
            "tokens_per_s": m.get("tokens_per_s"),
            "train_seconds": m.get("train_seconds"),
            "final_loss": (m.get("loss_curve") or [[None, None]])[-1][1],
            "val_loss": m.get("val_loss"),
            "checkpoint_runs": self.checkpoint_runs,
        }


# --- settings ----------------------------------------------------------------------------------


def parse_sets(trainer: Trainer, sets: Sequence[str]) -> tuple[Hyperparameters, BaseModel]:
    """`key=value` pairs split between the common hyperparameters and the trainer's own Config.
    Values are strings that pydantic coerces ("3" -> 3, "true" -> True); "null" means None."""
    common: dict[str, Any] = {}
    own: dict[str, Any] = {}
    problems: list[Problem] = []
    common_keys = set(Hyperparameters.model_fields)
    own_keys = set(trainer.Config.model_fields)
    for item in sets:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            problems.append(Problem("--set", item, "expected key=value"))
            continue
        parsed: Any = None if value.strip().lower() in ("null", "none") else value.strip()
        if key in common_keys:
            common[key] = parsed
        elif key in own_keys:
            own[key] = parsed
        else:
            known = ", ".join(sorted(common_keys | own_keys))
            problems.append(
                Problem("--set", key, f"unknown key for trainer '{trainer.name}'; known: {known}")
            )
    hp = _validate(Hyperparameters, common, problems)
    cfg = _validate(trainer.Config, own, problems)
    if problems or hp is None or cfg is None:
        raise UserError(problems)
    return hp, cfg


def _validate(model: type[BaseModel], values: dict[str, Any], problems: list[Problem]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as e:
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"])
            got = values.get(str(err["loc"][0])) if err["loc"] else None
            problems.append(Problem("--set", key, f"{err['msg']} (got {got!r})"))
        return None


# --- names and folders -------------------------------------------------------------------------


def data_fingerprint(train: list[Messages], validation: list[Messages]) -> str:
    return hashlib.sha256(json.dumps([train, validation], sort_keys=True).encode()).hexdigest()


def candidate_name(
    suite: Suite,
    trainer: Trainer,
    base: ModelRef,
    data_fp: str,
    hp: Hyperparameters,
    cfg: BaseModel,
) -> str:
    blob = json.dumps(
        [base.fingerprint, data_fp, trainer.name, hp.model_dump(), cfg.model_dump()], sort_keys=True
    )
    return f"{suite.name}-{trainer.name}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def workspace_models(store: Store) -> Path:
    """Trained models live beside the store: ./.tuneval/models/<name>/."""
    return store.path.resolve().parent / "models"


def training_base(ref: ModelRef, store: Store) -> BaseModelInfo:
    """A full model folder to train from. An adapter (a LoRA candidate) is merged into its base
    once, so the next round can start from it."""
    if ref.base is None:
        check_loadable(ref)
        return BaseModelInfo(ref.name, ref.path, ref.fingerprint)
    merged = workspace_models(store) / f"{Path(ref.name).name}-merged-{ref.fingerprint[:8]}"
    if not (merged / "config.json").is_file():
        from harness.models import load

        model, tok = load(ref, "float32")
        tmp = merged.with_name(merged.name + ".tmp")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(merged)
    return BaseModelInfo(ref.name, merged, ref.fingerprint)


def check_loadable(ref: ModelRef) -> None:
    """Fail before anything is recorded when a base folder is not a usable model."""
    from safetensors import safe_open
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(ref.path)
        for f in sorted(ref.path.glob("*.safetensors")):
            with safe_open(str(f), "pt") as handle:
                next(iter(handle.keys()), None)
    except Exception as e:
        raise UserError(f"base model '{ref.name}' does not load from {ref.path}: {e}") from None


# --- the events the trainer sends --------------------------------------------------------------


class StoreEvents:
    """Writes log lines and checkpoints to `train_log`; evaluates checkpoints on the suite."""

    def __init__(
        self,
        store: Store,
        train_run: str,
        model_name: str,
        suite: Suite,
        eval_cases: Sequence[str],
        progress: bool,
    ):
        self.store, self.train_run, self.model_name = store, train_run, model_name
        self.suite, self.eval_cases, self.progress = suite, list(eval_cases), progress
        self.checkpoint_runs: list[str] = []
        self.resumed_from: int | None = None

    def _write(self, step: int, kind: str, data: dict[str, Any]) -> None:
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO train_log VALUES (?, ?, ?, ?, ?)",
                (self.train_run, step, kind, json.dumps(data), time.time()),
            )

    def log(self, step: int, **metrics: float) -> None:
        self._write(step, "log", metrics)

    def resumed(self, step: int) -> None:
        """Lines logged after the checkpoint by the interrupted run are logged again now."""
        self.resumed_from = step
        with self.store.tx() as db:
            db.execute("DELETE FROM train_log WHERE train_run=? AND step>?", (self.train_run, step))

    def checkpoint(self, step: int, path: Path) -> None:
        data: dict[str, Any] = {"path": str(path)}
        if self.eval_cases:
            from harness.runner import evaluate

            ref = dataclasses.replace(
                resolve(str(path), self.store), name=f"{self.model_name}@{step}"
            )
            result = evaluate(
                self.suite,
                ref,
                self.store,
                case_ids=self.eval_cases,
                progress=self.progress,
                train_run=self.train_run,
                step=step,
            )
            self.checkpoint_runs.append(result.run_id)
            data.update(run_id=result.run_id, pass_rate=result.summary["pass_rate"])
            self._write(
                step,
                "eval",
                {
                    "run_id": result.run_id,
                    "pass_rate": result.summary["pass_rate"],
                    "grades": result.summary["grades"],
                },
            )
        self._write(step, "checkpoint", data)

    def should_stop(self) -> bool:
        return False


# --- the plan: what the run will take, and whether the test set leaked into training ----------


def plan(
    suite: Suite, base: ModelRef, hp: Hyperparameters, train_ex: list[Messages]
) -> dict[str, Any]:
    from harness.data import check_report, encode_parts
    from harness.models import load_tokenizer

    lengths = [
        min(len(p) + len(a), hp.max_length) for p, a in encode_parts(load_tokenizer(base), train_ex)
    ]
    steps = hp.steps(len(lengths))
    seen = steps * hp.batch_size * hp.grad_accum
    leak = check_report(suite) if suite.cases else {}
    return {
        "examples": len(lengths),
        "tokens_per_epoch": sum(lengths),
        "steps": steps,
        "examples_seen": seen,
        "epochs": round(seen / len(lengths), 3),
        "tokens": round(seen * sum(lengths) / len(lengths)),
        "leaked_exact": leak.get("exact_overlap", 0),
        "leaked_near": leak.get("near_overlap", 0),
    }


# --- training ----------------------------------------------------------------------------------


def examples(suite: Suite) -> tuple[list[Messages], list[Messages]]:
    from harness.data import chat_examples

    if not suite.train:
        raise UserError(
            f"suite '{suite.name}' has no train data (data.train in suite.yaml) to train on"
        )
    train = chat_examples(suite, "train")
    validation = chat_examples(suite, "validation") if suite.validation else []
    return train, validation


def train(
    suite: Suite,
    trainer: Trainer,
    base_spec: str,
    hp: Hyperparameters,
    cfg: BaseModel,
    store: Store,
    *,
    eval_checkpoints: int = 0,
    progress: bool = True,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
) -> TrainOutcome:
    train_ex, val_ex = examples(suite)
    base = resolve(base_spec, store)
    data_fp = data_fingerprint(train_ex, val_ex)
    name = candidate_name(suite, trainer, base, data_fp, hp, cfg)
    out = workspace_models(store) / name

    existing = store.model(name)
    if existing and existing["path"] and (Path(existing["path"]) / MANIFEST).is_file():
        return TrainOutcome(
            name,
            existing["produced_by"] or "",
            Path(existing["path"]),
            existing["info"].get("kind", ""),
            True,
            None,
            existing["info"],
            [],
        )

    base_info = training_base(base, store)
    if on_plan is not None:
        on_plan(plan(suite, base, hp, train_ex))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another `tuneval train` is writing {out}; wait for it to finish"
            ) from None
        run_id = _start_train_run(store, suite, trainer, base, hp, cfg, out, name)
        eval_ids = [c["id"] for c in suite.cases[:eval_checkpoints]]
        events = StoreEvents(store, run_id, name, suite, eval_ids, progress)
        request = TrainRequest(
            base_info, train_ex, val_ex, hp, cfg, out, suite.name, data_fp, progress
        )
        try:
            if (out / MANIFEST).is_file():  # finished before a crash kept it from being registered
                manifest = json.loads((out / MANIFEST).read_text())
                kind = manifest.get("kind", "full")
            else:
                result = trainer.train(request, events)
                manifest, kind = dict(result.manifest), result.kind
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            with store.tx() as db:
                db.execute(
                    "UPDATE train_runs SET status=?, finished_at=? WHERE id=?",
                    (status, time.time(), run_id),
                )
            raise
        manifest = _harness_manifest(
            manifest,
            kind,
            name,
            run_id,
            suite,
            trainer,
            base,
            data_fp,
            hp,
            cfg,
            len(train_ex),
            len(val_ex),
        )
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        ref = resolve(str(out), store)
        store.register_model(
            name,
            str(out),
            path=str(out),
            fingerprint=ref.fingerprint,
            kind="trained",
            base=base.name,
            produced_by=run_id,
            info=manifest,
        )
        with store.tx() as db:
            db.execute(
                "UPDATE train_runs SET status='complete', finished_at=?, model=? WHERE id=?",
                (time.time(), name, run_id),
            )
    return TrainOutcome(
        name, run_id, out, kind, False, events.resumed_from, manifest, events.checkpoint_runs
    )


def _start_train_run(
    store: Store,
    suite: Suite,
    trainer: Trainer,
    base: ModelRef,
    hp: Hyperparameters,
    cfg: BaseModel,
    out: Path,
    name: str,
) -> str:
    """The unfinished train run of this very command, if any (resumed), else a new one."""
    row = store.one(
        "SELECT id FROM train_runs WHERE model=? AND status!='complete'"
        " ORDER BY created_at DESC LIMIT 1",
        (name,),
    )
    if row:
        with store.tx() as db:
            db.execute(
                "UPDATE train_runs SET status='running', finished_at=NULL WHERE id=?", (row["id"],)
            )
            if not any(
                (out / CHECKPOINTS).glob("step-*")
            ):  # nothing to resume: start the log afresh
                db.execute("DELETE FROM train_log WHERE train_run=?", (row["id"],))
        return str(row["id"])
    run_id = new_id("train")
    config = {"hyperparameters": hp.model_dump(), "config": cfg.model_dump()}
    with store.tx() as db:
        db.execute(
            "INSERT INTO train_runs VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, NULL)",
            (
                run_id,
                suite.name,
                trainer.name,
                base.name,
                json.dumps(config),
                str(out),
                name,
                time.time(),
            ),
        )
    return run_id


def _harness_manifest(
    manifest: dict[str, Any],
    kind: str,
    name: str,
    run_id: str,
    suite: Suite,
    trainer: Trainer,
    base: ModelRef,
    data_fp: str,
    hp: Hyperparameters,
    cfg: BaseModel,
    n_train: int,
    n_val: int,
) -> dict[str, Any]:
    """The trainer's manifest, completed with what the harness knows, so every plugin's is alike."""
    from importlib.metadata import version

    libs = dict(manifest.get("libraries") or {})
    for lib in ("tuneval", "torch", "transformers", "peft", "trl"):
        try:
            libs.setdefault(lib, version(lib))
        except Exception:
            libs.setdefault(lib, None)
    return {
        **manifest,
        "name": name,
        "kind": kind,
        "trainer": trainer.name,
        "train_run": run_id,
        "base": {"name": base.name, "fingerprint": base.fingerprint, "path": str(base.path)},
        "suite": {
            "name": suite.name,
            "version": suite.spec.version,
            "fingerprint": suite.fingerprint,
        },
        "data_fingerprint": data_fp,
        "examples": {"train": n_train, "validation": n_val},
        "hyperparameters": hp.model_dump(),
        "config": cfg.model_dump(),
        "libraries": libs,
    }
