"""Runs and verdicts in the trackers teams already watch: TensorBoard, MLflow, W&B, trackio.

`record_for(store, run_id, against=None)` gathers what a run says, from the store alone: its
identity (suite, fingerprints, model, prompt variant, settings) as the tracker run's config; grade
rates, per-criterion pass rates and mean cost per case as scalars; when compared `against` a
baseline run, the paired verdict with its interval and p-value; the training loss curve and the
checkpoint pass-rate curve when the model came from a tuneval training run; and the per-case
table. `log(record, to, project, dest)` writes it with the tracker's own library. Each library is
an optional extra (`pip install 'tuneval[trackers]'`); a missing one is one line, exit 2.

Where each writes (`dest`): TensorBoard an event-file folder (default `runs/`, one sub-folder per
run), MLflow a tracking URI (default: `MLFLOW_TRACKING_URI`, else MLflow's own), W&B a folder
(its mode from `WANDB_MODE`; without an API key it writes offline, for `wandb sync` later),
trackio a folder (default `TRACKIO_DIR`, else trackio's own).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.errors import UserError

PREFIX = "tuneval/"


@dataclass
class Record:
    """What one tuneval run says, ready for any tracker."""

    name: str  # the tuneval run id: the tracker run's name
    config: dict[str, str]
    scalars: dict[str, float]
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # name -> (step, y)
    verdict: str | None = None
    cases: list[dict[str, Any]] = field(default_factory=list)


class Tracker(Protocol):
    def write(self, record: Record, project: str) -> str:
        """Write one record; return where it went (a folder, a run URI)."""
        ...


# --- what a run says ----------------------------------------------------------------------------


def record_for(store: Any, run_id: str, against: str | None = None) -> Record:
    run = store.run(run_id)
    if run is None:
        raise UserError(f"no run '{run_id}' in {store.path}")
    rows = store.results(run_id)
    config = _config(run)
    scalars = _rates(rows)
    verdict = None
    if against is not None:
        from harness.comparison.compare import compare_runs

        c = compare_runs(store, against, run_id)
        verdict = c.verdict
        config["tuneval.baseline_run"] = against
        d = c.pass_rate
        scalars |= {
            f"{PREFIX}vs_base/pass_rate_delta": d.delta,
            f"{PREFIX}vs_base/pass_rate_low": d.low,
            f"{PREFIX}vs_base/pass_rate_high": d.high,
            f"{PREFIX}vs_base/better_rate_delta": c.better_rate.delta,
            f"{PREFIX}vs_base/mcnemar_p": float(c.mcnemar["p_value"]),
        }
        if not math.isinf(c.mde):
            scalars[f"{PREFIX}vs_base/mde"] = c.mde
    return Record(
        name=run_id,
        config=config,
        scalars=scalars,
        curves=_curves(store, run),
        verdict=verdict,
        cases=[_case(r) for r in rows],
    )


def training_record(store: Any, train_run: str) -> Record:
    """A training run (tuneval's own, a Trainer callback's, a checkpoint sweep's): trainer, base
    and hyperparameters as config, the loss curve, and each evaluated checkpoint's rates at its
    step with its paired delta against the base at step 0 (checkpoint runs are logged as curves,
    not runs)."""
    row = store.train_run(train_run)
    if row is None:
        raise UserError(f"no training run '{train_run}' in {store.path}")
    config = {f"tuneval.{k}": str(row[k]) for k in ("suite", "trainer", "base", "model", "status")}
    config["tuneval.train_run"] = train_run
    for k, v in sorted((row.get("config") or {}).items()):
        config[f"tuneval.config.{k}"] = v if isinstance(v, str) else json.dumps(v, default=str)
    curves = _curves(store, {"train_run": train_run, "suite": row["suite"], "model": ""})
    curves |= _deltas(store, train_run, row["suite"])
    scalars = {f"{name}_final": pts[-1][1] for name, pts in curves.items() if pts}
    return Record(name=train_run, config=config, scalars=scalars, curves=curves)


def _config(run: dict[str, Any]) -> dict[str, str]:
    keys = ("suite", "suite_version", "suite_fingerprint", "model", "model_fingerprint",
            "model_kind", "prompt_variant", "status", "n_cases", "train_run", "step")  # fmt: skip
    config = {f"tuneval.{k}": "" if run.get(k) is None else str(run[k]) for k in keys}
    config["tuneval.run"] = str(run["id"])
    for k, v in sorted((run.get("settings") or {}).items()):
        config[f"tuneval.settings.{k}"] = v if isinstance(v, str) else json.dumps(v)
    return config


def _rates(rows: list[dict[str, Any]]) -> dict[str, float]:
    if not rows:
        return {}
    n = len(rows)
    grades = [r["grade"] for r in rows]
    out = {
        f"{PREFIX}pass_rate": sum(g != "bad" for g in grades) / n,
        f"{PREFIX}better_rate": sum(g == "better" for g in grades) / n,
        f"{PREFIX}n_cases": float(n),
    }
    for g in ("bad", "good", "better"):
        out[f"{PREFIX}grade/{g}"] = grades.count(g) / n
    passed: dict[str, list[bool]] = {}
    for r in rows:
        for cid, c in r["criteria"].items():
            passed.setdefault(cid, []).append(bool(c["passed"]))
    for cid, flags in passed.items():
        out[f"{PREFIX}criterion/{cid}"] = sum(flags) / len(flags)
    for key in ("prompt_tokens", "output_tokens", "seconds"):
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        if values:
            out[f"{PREFIX}cost/{key}"] = sum(values) / len(values)
    return out


def _curves(store: Any, run: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """The loss curve and checkpoint pass rates of the training run behind this run's model."""
    train_run = run.get("train_run")
    if train_run is None:
        model = store.model(str(run["model"]))
        train_run = model.get("produced_by") if model else None
    if not train_run:
        return {}
    curves: dict[str, list[tuple[int, float]]] = {}
    for row in store.train_log(train_run):
        if row["kind"] == "log":
            for key, value in row["data"].items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    curves.setdefault(f"train/{key}", []).append((int(row["step"]), float(value)))
    for ckpt in store.checkpoint_runs(train_run):
        if ckpt["step"] is not None and ckpt["suite"] == run["suite"]:
            for name, value in _rates(store.results(ckpt["id"])).items():
                curve = curves.setdefault(f"{PREFIX}checkpoint/{name.removeprefix(PREFIX)}", [])
                curve.append((int(ckpt["step"]), value))
    return curves


def _deltas(store: Any, train_run: str, suite: str) -> dict[str, list[tuple[int, float]]]:
    """Each later checkpoint's paired pass-rate delta (with its interval) against step 0."""
    from harness.comparison.compare import compare_runs

    by_step = {  # oldest first: a later evaluation of a step replaces an earlier one
        int(r["step"]): r["id"]
        for r in store.checkpoint_runs(train_run)
        if r["status"] == "complete" and r["step"] is not None and r["suite"] == suite
    }
    curves: dict[str, list[tuple[int, float]]] = {}
    if 0 not in by_step:
        return curves
    for step in sorted(s for s in by_step if s > 0):
        c = compare_runs(store, by_step[0], by_step[step])
        for name, value in (("pass_rate_delta", c.pass_rate.delta),
                            ("pass_rate_low", c.pass_rate.low),
                            ("pass_rate_high", c.pass_rate.high),
                            ("better_rate_delta", c.better_rate.delta)):  # fmt: skip
            curves.setdefault(f"{PREFIX}checkpoint/vs_base/{name}", []).append((step, value))
    return curves


def _case(row: dict[str, Any]) -> dict[str, Any]:
    failed = [cid for cid, c in row["criteria"].items() if not c["passed"]]
    return {
        "case_id": str(row["case_id"]),
        "grade": row["grade"],
        "output": row["output"],
        "failed": ", ".join(failed),
    }


# --- the trackers -----------------------------------------------------------------------------

EXTRA = "pip install 'tuneval[trackers]'"
_MODULES = {
    "tensorboard": "tensorboard",
    "mlflow": "mlflow",
    "wandb": "wandb",
    "trackio": "trackio",
}


def tracker(name: str, dest: str | None = None) -> Tracker:
    """The named tracker, checked installed; a wrong name or a missing library is a UserError."""
    if name not in _MODULES:
        raise UserError(f"unknown tracker '{name}' (choose from {', '.join(_MODULES)})")
    module = _MODULES[name]
    if importlib.util.find_spec(module) is None:
        raise UserError(
            f"--to {name} needs the '{module}' package: {EXTRA} (or pip install {module})"
        )
    kinds: dict[str, Any] = {
        "tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB, "trackio": Trackio,
    }  # fmt: skip
    made: Tracker = kinds[name](dest)
    return made


def log(records: list[Record], to: list[str], project: str, dest: str | None = None) -> list[str]:
    """Write every record to every tracker named; return where each went. Trackers are checked
    before the first write."""
    chosen = [tracker(name, dest) for name in to]
    return [t.write(r, project) for t in chosen for r in records]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Trackers chat on stdout; tuneval's stdout is for its own output (--json)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _table_md(cases: list[dict[str, Any]], limit: int = 200) -> str:
    from harness.comparison.format import md_text

    lines = ["| case | grade | failed | output |", "|---|---|---|---|"]
    for c in cases[:limit]:
        lines.append(
            f"| {md_text(c['case_id'], 60)} | {c['grade']} | {md_text(c['failed'], 80)} | "
            f"{md_text(c['output'], 160)} |"
        )
    if len(cases) > limit:
        lines.append(f"| …{len(cases) - limit} more | | | |")
    return "\n".join(lines)


class TensorBoard:
    def __init__(self, dest: str | None):
        self.root = Path(dest or "runs")

    def write(self, record: Record, project: str) -> str:
        import csv

        from torch.utils.tensorboard import SummaryWriter

        folder = self.root / project / record.name
        writer = SummaryWriter(log_dir=str(folder))
        try:
            config = "\n".join(f"| {k} | {v} |" for k, v in record.config.items())
            writer.add_text(f"{PREFIX}config", "| key | value |\n|---|---|\n" + config, 0)
            for name, points in record.curves.items():
                for step, value in points:
                    writer.add_scalar(name, value, step)
            step = max((s for pts in record.curves.values() for s, _ in pts), default=0)
            for name, value in record.scalars.items():
                writer.add_scalar(name, value, step)
            if record.verdict is not None:
                writer.add_text(f"{PREFIX}verdict", record.verdict, step)
            writer.add_text(f"{PREFIX}cases", _table_md(record.cases), step)
        finally:
            writer.close()
        with open(folder / "cases.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["case_id", "grade", "failed", "output"])
            w.writeheader()
            w.writerows(record.cases)
        return str(folder)


class MLflow:
    def __init__(self, dest: str | None):
        self.uri = dest

    def write(self, record: Record, project: str) -> str:
        import mlflow
        import pandas as pd

        with _quiet():
            if self.uri:
                mlflow.set_tracking_uri(self.uri)
            mlflow.set_experiment(project)
            with mlflow.start_run(run_name=record.name) as active:
                mlflow.log_params({k[:250]: v[:6000] for k, v in record.config.items()})
                for name, points in record.curves.items():
                    for step, value in points:
                        mlflow.log_metric(name, value, step=step)
                mlflow.log_metrics(record.scalars)
                if record.verdict is not None:
                    mlflow.set_tag("tuneval.verdict", record.verdict)
                if record.cases:
                    mlflow.log_table(pd.DataFrame(record.cases), artifact_file="cases.json")
                return f"{mlflow.get_tracking_uri()} run {active.info.run_id}"


class WandB:
    def __init__(self, dest: str | None):
        self.dir = dest

    def write(self, record: Record, project: str) -> str:
        import pandas as pd
        import wandb

        mode: Any = os.environ.get("WANDB_MODE") or (
            "online" if os.environ.get("WANDB_API_KEY") else "offline"
        )
        with _quiet():
            run = wandb.init(
                project=project, name=record.name, config=record.config, dir=self.dir,
                mode=mode, reinit="create_new",
            )  # fmt: skip
            try:
                for name, points in record.curves.items():
                    for step, value in points:
                        run.log({name: value, "train/step": step})
                run.log(dict(record.scalars))
                if record.cases:
                    run.log({f"{PREFIX}cases": wandb.Table(dataframe=pd.DataFrame(record.cases))})
                run.summary.update(record.scalars)
                if record.verdict is not None:
                    run.summary[f"{PREFIX}verdict"] = record.verdict
                where = str(run.dir)
            finally:
                run.finish()
        return where


class Trackio:
    def __init__(self, dest: str | None):
        self.dir = dest

    def write(self, record: Record, project: str) -> str:
        if self.dir:
            os.environ["TRACKIO_DIR"] = self.dir
        import pandas as pd
        import trackio

        with _quiet():
            trackio.init(
                project=project, name=record.name, config=record.config,
                auto_log_cpu=False, auto_log_gpu=False,
            )  # fmt: skip
            try:
                step = 0
                for name, points in record.curves.items():
                    for s, value in points:
                        trackio.log({name: value}, step=s)
                        step = max(step, s)
                trackio.log(dict(record.scalars), step=step + 1)
                extra: dict[str, Any] = {}
                if record.cases:
                    extra[f"{PREFIX}cases"] = trackio.Table(dataframe=pd.DataFrame(record.cases))
                if record.verdict is not None:
                    extra[f"{PREFIX}verdict"] = record.verdict
                if extra:
                    trackio.log(extra, step=step + 2)
            finally:
                trackio.finish()
        return f"{os.environ.get('TRACKIO_DIR') or trackio.TRACKIO_DIR} project {project}"
