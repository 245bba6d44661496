"""Training as the harness sees it: validate settings, build the request, run a trainer plugin,
log its progress and checkpoints to the store, evaluate checkpoints on the suite, write the
manifest and register the result as a model.

A candidate's name is `<suite>-<trainer>-<hash>`, the hash covering the base model's fingerprint,
the training data and every setting (a `TrainJob`). The same command therefore lands in the same
output folder: after a crash or `kill -9` the trainer resumes from its last checkpoint, and once
the model is finished a rerun reuses it instead of training again.

Under `torchrun` (`tuneval train --nproc N`) every process runs this; only the main process
writes the store, the manifest and the lock, and evaluates checkpoints.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import Problem, UserError
from harness.generation.models import ModelRef, resolve
from harness.plugin import (
    CHECKPOINTS,
    BaseModelInfo,
    Hyperparameters,
    Messages,
    NullEvents,
    Stopped,
    TrainedModel,
    Trainer,
    TrainRequest,
    check_shared,
    distributed,
    from_main,
)
from harness.store import Store, TrainRunRow, new_id
from harness.suite.loader import Suite

MANIFEST = "tuneval-manifest.json"
MANIFEST_FORMAT = 1


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


def parse_sets(
    trainer: Trainer, sets: Sequence[str], context: dict[str, Any] | None = None
) -> tuple[Hyperparameters, BaseModel]:
    """`key=value` pairs split between the common hyperparameters and the trainer's own Config.
    Values are strings that pydantic coerces ("3" -> 3, "true" -> True); "null" means None.
    A key given twice is refused, not settled by order.
    `context` reaches the Config's validators (dpo's `pairs_pending`: the file is made later)."""
    common: dict[str, Any] = {}
    own: dict[str, Any] = {}
    problems: list[Problem] = []
    common_keys = set(Hyperparameters.model_fields)
    own_keys = set(trainer.Config.model_fields)
    given: dict[str, str] = {}
    for item in sets:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            problems.append(Problem("--set", item, "expected key=value"))
            continue
        if key in given:  # which one was meant is a guess: refuse rather than take the last
            first = given[key]
            problems.append(
                Problem("--set", key, f"given twice ({first}, then {item}): give it once")
            )
            continue
        given[key] = item
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
    cfg = _validate(trainer.Config, own, problems, context)
    if problems or hp is None or cfg is None:
        raise UserError(problems)
    return hp, cfg


def _validate(
    model: type[BaseModel], values: dict[str, Any], problems: list[Problem],
    context: dict[str, Any] | None = None,
) -> Any:  # fmt: skip
    try:
        return model.model_validate(values, context=context)
    except ValidationError as e:
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"])
            got = values.get(str(err["loc"][0])) if err["loc"] else None
            if err["type"] == "missing":
                problems.append(Problem("--set", key, f"required: --set {key}=..."))
                continue
            if err["type"] == "value_error":  # a validator's own sentence names what it read
                problems.append(Problem("--set", key, str(err.get("ctx", {}).get("error", ""))))
                continue
            problems.append(Problem("--set", key, f"{err['msg']} (got {got!r})"))
        return None


# --- the job: what is trained, from what, how ---------------------------------------------------


@dataclass(frozen=True)
class TrainJob:
    suite: Suite
    trainer: Trainer
    base: ModelRef
    hp: Hyperparameters
    cfg: BaseModel
    train: list[Messages]
    validation: list[Messages]
    world_size: int = 1

    @functools.cached_property
    def data_fingerprint(self) -> str:
        blob = json.dumps([self.train, self.validation], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    @functools.cached_property
    def run_key(self) -> str:
        """What makes two commands the same training run, whose checkpoints a resume may use."""
        identity: list[Any] = [
            self.base.fingerprint,
            self.data_fingerprint,
            self.trainer.name,
            self.hp.model_dump(),
            self.cfg.model_dump(),
        ]
        if self.world_size > 1:  # the global batch spans the processes
            identity.append({"world_size": self.world_size})
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    @property
    def name(self) -> str:
        """A Config may add a `name_tag` (dpo: which pairs file it learned from)."""
        tag = getattr(self.cfg, "name_tag", "")
        name = f"{self.suite.name}-{self.trainer.name}-{self.run_key[:8]}"
        return f"{name}-{tag}" if tag else name


def examples(suite: Suite) -> tuple[list[Messages], list[Messages]]:
    from harness.training.data import chat_examples

    if not suite.train:
        raise UserError(
            f"suite '{suite.name}' has no train data (data.train in suite.yaml) to train on"
        )
    train = chat_examples(suite, "train")
    validation = chat_examples(suite, "validation") if suite.validation else []
    return train, validation


def make_job(
    suite: Suite, trainer: Trainer, base_spec: str, hp: Hyperparameters, cfg: BaseModel,
    store: Store,
) -> TrainJob:  # fmt: skip
    train_ex, val_ex = examples(suite)
    base = resolve(base_spec, store)
    world = distributed().world_size
    return TrainJob(suite, trainer, base, hp, cfg, train_ex, val_ex, world)


def check_settings(trainer: Trainer, base: ModelRef, hp: Hyperparameters, cfg: BaseModel) -> None:
    """What can be checked against the base model without training: it has weights, they load,
    and the trainer's own `check` (optional) accepts the settings for this model. Called before
    the store is opened for writing, so a mistake records nothing."""
    if base.is_served:
        raise UserError(f"model '{base.name}' is served by an endpoint: it has no weights to train")
    root = base
    while root.base is not None:  # an adapter merges into its base: the base's config counts
        root = root.base
    check_loadable(root)
    check = getattr(trainer, "check", None)
    if callable(check):
        check(BaseModelInfo(base.name, root.path, base.fingerprint), hp, cfg)


def workspace_models(store: Store) -> Path:
    """Trained models live beside the store: ./.tuneval/models/<name>/."""
    return store.path.resolve().parent / "models"


def training_base(ref: ModelRef, store: Store) -> BaseModelInfo:
    """A full model folder to train from. An adapter (a LoRA candidate) is merged into its base
    once, so the next round can start from it."""
    if ref.is_served:
        raise UserError(f"model '{ref.name}' is served by an endpoint: it has no weights to train")
    if ref.base is None:
        check_loadable(ref)
        if ref.hub is not None:
            hub = ref.hub
            return BaseModelInfo(ref.name, ref.path, ref.fingerprint, hub.repo_id, hub.commit)
        return BaseModelInfo(ref.name, ref.path, ref.fingerprint)
    merged = workspace_models(store) / f"{Path(ref.name).name}-merged-{ref.fingerprint[:8]}"
    if not (merged / "config.json").is_file() and distributed().is_main:
        from harness.generation.models import load

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
    """Writes log lines and checkpoints to `train_log`; evaluates checkpoints on the suite; says
    stop once SIGTERM arrived."""

    def __init__(self, store: Store, train_run: str, job: TrainJob, eval_cases: Sequence[str],
                 progress: bool, trust_code: bool = False):  # fmt: skip
        self.store, self.train_run, self.job = store, train_run, job
        self.eval_cases, self.progress = list(eval_cases), progress
        self.trust_code = trust_code
        self.checkpoint_runs: list[str] = []
        self.resumed_from: int | None = None
        self.stop_requested = False

    def log(self, step: int, **metrics: float) -> None:
        self.store.log_train(self.train_run, step, "log", dict(metrics))

    def resumed(self, step: int) -> None:
        """Lines logged after the checkpoint by the interrupted run are logged again now."""
        self.resumed_from = step
        self.store.forget_train_log_after(self.train_run, step)

    def checkpoint(self, step: int, path: Path) -> None:
        data: dict[str, Any] = {"path": str(path)}
        if self.eval_cases:
            from harness.evaluation.runner import EvalOptions, evaluate_suite

            ref = replace(resolve(str(path), self.store), name=f"{self.job.name}@{step}")
            opts = EvalOptions(
                case_ids=self.eval_cases, progress=self.progress, train_run=self.train_run,
                step=step, trust_code=self.trust_code,
            )  # fmt: skip
            result = evaluate_suite(self.job.suite, ref, self.store, opts)
            self.checkpoint_runs.append(result.run_id)
            summary = result.summary
            data.update(run_id=result.run_id, pass_rate=summary["pass_rate"])
            eval_data = {
                "run_id": result.run_id,
                "pass_rate": summary["pass_rate"],
                "grades": summary["grades"],
            }
            self.store.log_train(self.train_run, step, "eval", eval_data)
        self.store.log_train(self.train_run, step, "checkpoint", data)

    def should_stop(self) -> bool:
        return self.stop_requested


@contextmanager
def stop_on_sigterm(events: StoreEvents) -> Iterator[None]:
    """SIGTERM (a scheduler's preemption notice) asks the trainer to checkpoint and stop."""

    def ask(*_: object) -> None:
        events.stop_requested = True

    try:
        previous = signal.signal(signal.SIGTERM, ask)
    except ValueError:  # not the main thread: no signal handling there
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the plan: what the run will take, and whether the test set leaked into training ----------


def plan(job: TrainJob) -> dict[str, Any]:
    from harness.generation.models import load_tokenizer
    from harness.generation.tokenize import encode_parts
    from harness.suite.leakage import overlaps

    hp = job.hp
    lengths = [
        min(len(p) + len(a), hp.max_length)
        for p, a in encode_parts(load_tokenizer(job.base), job.train)
    ]
    steps = hp.steps(len(lengths))
    seen = steps * hp.batch_size * hp.grad_accum * job.world_size
    # Only the overlap counts: the rest of `data check` (diversity) would delay every run.
    _, test_p, exact, near = overlaps(job.suite) if job.suite.cases else ([], [], [], [])
    return {
        "examples": len(lengths),
        "tokens_per_epoch": sum(lengths),
        "steps": steps,
        "examples_seen": seen,
        "epochs": round(seen / len(lengths), 3),
        "tokens": round(seen * sum(lengths) / len(lengths)),
        "test_prompts": len(test_p),
        "leaked_exact": len(exact),
        "leaked_near": len(near),
        "token_budget": hp.tokens_per_batch is not None,
    }


# --- training ----------------------------------------------------------------------------------


def train(
    job: TrainJob,
    store: Store,
    *,
    eval_checkpoints: int = 0,
    progress: bool = True,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
    trust_code: bool = False,
) -> TrainOutcome:
    name = job.name
    out = workspace_models(store) / name
    existing = store.model(name)
    if existing and existing["path"] and (Path(existing["path"]) / MANIFEST).is_file():
        info = existing["info"]
        return TrainOutcome(
            name, existing["produced_by"] or "", Path(existing["path"]), info.get("kind", ""),
            True, None, info, [],
        )  # fmt: skip

    base_info = training_base(job.base, store)
    if on_plan is not None:
        on_plan(plan(job))
    request = TrainRequest(
        base_info, job.train, job.validation, job.hp, job.cfg, out, job.run_key, progress
    )
    if not distributed().is_main:  # the main process records and decides; the others train
        check_shared(out)
        if from_main(None) is not None:
            return TrainOutcome(name, "", out, "", True, None, {}, [])
        result = job.trainer.train(request, NullEvents())
        return TrainOutcome(name, "", out, result.kind, False, None, {}, [])
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        check_shared(out)  # before the store records a run, so a refusal leaves none
        run_id = _start_train_run(store, job, out)
        eval_ids = [c["id"] for c in job.suite.cases[:eval_checkpoints]]
        events = StoreEvents(store, run_id, job, eval_ids, progress, trust_code)
        try:
            # trained, then a crash kept it from being registered: no process trains again
            finished = from_main(_finished_manifest(out, job))
            if finished is not None:
                result = TrainedModel(out, finished["kind"], finished)
            else:
                with stop_on_sigterm(events):
                    result = job.trainer.train(request, events)
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt | Stopped)
            store.finish_train_run(run_id, "interrupted" if interrupted else "failed")
            if isinstance(e, Stopped):
                raise UserError(
                    f"training stopped on request after a checkpoint ({e}); "
                    "run the same command to resume"
                ) from None
            raise
        manifest = build_manifest(job, result, run_id, events.resumed_from)
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        ref = resolve(str(out), store)
        store.register_model(
            {
                "name": name,
                "spec": str(out),
                "path": str(out),
                "fingerprint": ref.fingerprint,
                "kind": "trained",
                "base": job.base.name,
                "produced_by": run_id,
                "info": manifest,
                "created_at": time.time(),
            }
        )
        store.finish_train_run(run_id, "complete", model=name)
    return TrainOutcome(
        name, run_id, out, result.kind, False, events.resumed_from, manifest,
        events.checkpoint_runs,
    )  # fmt: skip


def _finished_manifest(out: Path, job: TrainJob) -> dict[str, Any] | None:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and manifest.get("run_key") == job.run_key
    return manifest if ok and manifest.get("kind") in ("full", "adapter") else None


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    with open(out / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another `tuneval train` is writing {out}; wait for it to finish"
            ) from None
        yield


def _start_train_run(store: Store, job: TrainJob, out: Path) -> str:
    """The unfinished train run of this very command, if any (resumed), else a new one."""
    unfinished = store.unfinished_train_run(job.name)
    if unfinished:
        has_checkpoint = any(  # sft writes step-N, trainers on HF's Trainer checkpoint-N
            p
            for pattern in ("step-*", "checkpoint-*")
            for p in (out / CHECKPOINTS).glob(pattern)
            if not p.name.endswith(".tmp")
        )
        store.reopen_train_run(unfinished, clear_log=not has_checkpoint)
        return unfinished
    run_id = new_id("train")
    row: TrainRunRow = {
        "id": run_id,
        "suite": job.suite.name,
        "trainer": job.trainer.name,
        "base": job.base.name,
        "config": {"hyperparameters": job.hp.model_dump(), "config": job.cfg.model_dump()},
        "output_dir": str(out),
        "model": job.name,
        "status": "running",
        "created_at": time.time(),
        "finished_at": None,
    }
    store.insert_train_run(row)
    return run_id


def build_manifest(
    job: TrainJob, result: TrainedModel, train_run: str, resumed_from: int | None
) -> dict[str, Any]:
    """The manifest of a trained model: what the trainer measured, completed with what the
    harness knows, in the same layout for every plugin."""
    from importlib.metadata import version

    libs: dict[str, str | None] = {}
    for lib in ("tuneval", "torch", "transformers", "peft", "trl"):
        try:
            libs[lib] = version(lib)
        except Exception:
            libs[lib] = None
    facts = dict(result.facts)
    facts.setdefault("resumed_from", resumed_from)
    return {
        **facts,
        "format": MANIFEST_FORMAT,
        "name": job.name,
        "kind": result.kind,
        "trainer": job.trainer.name,
        "train_run": train_run,
        "run_key": job.run_key,
        "base": {
            "name": job.base.name,
            "fingerprint": job.base.fingerprint,
            "path": str(job.base.path),
        },
        "suite": {
            "name": job.suite.name,
            "version": job.suite.spec.version,
            "fingerprint": job.suite.fingerprint,
        },
        "data_fingerprint": job.data_fingerprint,
        "examples": {"train": len(job.train), "validation": len(job.validation)},
        "hyperparameters": job.hp.model_dump(),
        "config": job.cfg.model_dump(),
        "world_size": job.world_size,
        "libraries": libs,
    }
