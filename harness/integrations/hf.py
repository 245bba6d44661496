"""`TunevalCallback`: regression evals inside any Hugging Face `Trainer` (TRL's trainers, axolotl,
unsloth).

    trainer = SFTTrainer(model=..., args=SFTConfig(eval_strategy="steps", eval_steps=50), ...)
    trainer.add_callback(TunevalCallback("suites/python-docs", trainer=trainer, limit=50))
    trainer.train()

At train begin the model before its first step is evaluated once as the base (step 0); at each
evaluation (`every="eval"`), save (`"save"`) or every N steps the live model is evaluated in this
process (eval mode, no grad, PEFT adapters active, then back to train mode). Each point is a
checkpoint run of one training run in the store, the same records `train --eval-checkpoints`
writes, so `tuneval curve`, `compare` and the report's Training page read them unchanged.

The live model's fingerprint hashes its tensors (and the tokenizer's vocabulary and chat
template), so it changes when the weights do and an unchanged model is answered from the
generation cache. The scores go to `trainer.log` (`tuneval/pass_rate`, `tuneval/better_rate`,
`tuneval/criterion/<id>`, the paired `tuneval/delta_pass` with its interval, `tuneval/seconds`),
so they reach whatever `report_to` is set; at an evaluation they are also added to the eval
metrics as `eval_tuneval/...`, where `metric_for_best_model="tuneval/pass_rate"` and
`EarlyStoppingCallback` (added after this callback) read them. Without `trainer=` they are
appended to `state.log_history` only.

Resumed (`trainer.train(resume_from_checkpoint=...)`): the training run of the same output
folder and suite is continued, not a new one begun: the weights at train begin are the
checkpoint's, not the base, so the stored base (step 0) stays the one every later point pairs
with, and points and loss lines the interrupted run stored after the checkpoint are kept, not
evaluated again (no step twice). With no such training run in the store there is no base to
pair with: a new training run holds the points from the checkpoint on, without deltas.

`gate=True`: at train end the model training ends with (the last point, evaluated first if
training stopped between points) is gated against the base as `tuneval gate` does (a
significant regression, or a must-pass case that stopped passing). The verdict is
`callback.gate_result` either way; a failed gate raises `GateFailed` out of `trainer.train()`
after the last checkpoint is written, so a training script fails as a CI job would.

Distributed: under DDP every process holds the whole model, so the main process alone evaluates
its replica and writes the store while the others wait in a broadcast of the scores and of the
stop decision: every rank logs the same figures and stops at the same step, and the store holds
one set of runs. Sharded training (FSDP, DeepSpeed) is refused at train begin: a shard is not a
model to generate with.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from harness.errors import UserError

EVERY = ("eval", "save")


@dataclass(frozen=True)
class GateResult:
    """The last point against the base, as `tuneval gate` decides it."""

    step: int
    passed: bool
    failures: list[str] = field(default_factory=list)
    base_run: str | None = None
    run_id: str | None = None


class GateFailed(Exception):
    """`gate=True` and the model training ended with fails the gate against the base."""

    def __init__(self, result: GateResult):
        self.result = result
        super().__init__(
            f"tuneval gate failed at step {result.step} against the base: "
            + "; ".join(result.failures)
        )


# the trainer's log keys -> the names tuneval's own trainer logs under
_LOSS_KEYS = (("loss", "loss"), ("eval_loss", "val_loss"), ("learning_rate", "lr"))


class TunevalCallback(TrainerCallback):  # type: ignore[misc]
    def __init__(
        self,
        suite: str | Path,
        every: str | int = "eval",
        limit: int | None = None,
        prompt: str = "",
        db: str | Path | None = None,
        gate: bool = False,
        stop_on_regression: bool = False,
        trainer: Any = None,
        alpha: float = 0.05,
        batch_size: int | None = None,
        trust_code: bool = False,
    ) -> None:
        from harness.suite.loader import load_suite

        if not (every in EVERY or (isinstance(every, int) and every >= 1)):
            raise UserError(f"every={every!r}: use 'eval', 'save' or a number of steps")
        self.suite = load_suite(suite)  # a bad suite fails here, before training starts
        self.suite.check_use(trust_code, prompt)  # code it runs, an unknown prompt variant
        if self.suite.spec.lm_eval:
            raise UserError(
                f"suite '{self.suite.name}' holds lm-eval tasks, which score saved weights: "
                "sweep the checkpoints afterwards (tuneval eval SUITE --model 'out/checkpoint-*')"
            )
        self.every, self.limit, self.prompt, self.db = every, limit, prompt, db
        self.gate, self.stop_on_regression, self.alpha = gate, stop_on_regression, alpha
        self.trainer, self.batch_size, self.trust_code = trainer, batch_size, trust_code
        self.store: Any = None
        self.train_run: str | None = None
        self.base_run: str | None = None
        self.evaluated: set[int] = set()
        self.logged_until = -1  # loss lines at or before this step are stored already
        self.last: dict[str, Any] = {}  # the scalars of the newest point
        self.stopped_because: list[str] = []
        self.gate_failures: list[str] = []
        self.gate_result: GateResult | None = None

    # --- the trainer's events -----------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.every == "eval" and str(args.eval_strategy).endswith("no"):
            raise UserError(
                "TunevalCallback(every='eval') needs evaluations: set eval_strategy (and an "
                "eval_dataset), or use every='save' or every=N"
            )
        if getattr(args, "fsdp", None) or getattr(args, "deepspeed", None):
            raise UserError("TunevalCallback evaluates a whole model: FSDP and DeepSpeed shard it")
        self.stopped_because, self.gate_failures, self.gate_result = [], [], None
        resumed = state.global_step > 0  # the state was loaded from the checkpoint
        opened = None
        if state.is_world_process_zero:
            opened = self._open(args, kw["model"], resumed)
        # every rank skips the same steps: a rank that evaluates alone waits in the broadcast
        self.base_run, evaluated = _share(opened)
        self.evaluated = set(evaluated)
        if not resumed:
            self._point(args, state, control, kw, step=0)
        elif self.base_run is None and state.is_world_process_zero:
            say(
                f"tuneval: resumed at step {state.global_step} with no training run of "
                f"{args.output_dir} in the store: no base to pair the points with"
            )

    def _open(self, args: Any, model: Any, resumed: bool) -> tuple[str | None, list[int]]:
        """Open the store and the training run: the one resumed, else a new one; return the
        base run and the steps already stored."""
        from harness.evaluation.sweep import open_train_run
        from harness.store import Store

        self.store = Store(self.db)
        if resumed:
            found = continued_train_run(self.store, self.suite.name, Path(args.output_dir))
            if found is not None:
                self.train_run, base, steps = found
                self.store.reopen_train_run(self.train_run, clear_log=False)
                logged = [r["step"] for r in self.store.train_log(self.train_run)]
                self.logged_until = max(logged, default=-1)
                return base, sorted(steps)
        self.logged_until = -1
        self.train_run = open_train_run(
            self.store, self.suite, f"hf:{type(self.trainer or model).__name__}",
            base_name(model), Path(args.output_dir), _config(args), reuse=False,
        )  # fmt: skip
        return None, []

    def on_evaluate(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.every == "eval":
            scalars = self._point(args, state, control, kw)
            metrics = kw.get("metrics")
            if scalars and isinstance(metrics, dict):
                metrics.update({f"eval_{k}": v for k, v in scalars.items()})

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.every == "save":
            self._point(args, state, control, kw)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if isinstance(self.every, int) and state.global_step % self.every == 0:
            self._point(args, state, control, kw)

    def on_log(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """The trainer's loss lines into the store too: the Training page charts them."""
        logs = kw.get("logs") or {}
        line = {
            new: float(logs[old])
            for old, new in _LOSS_KEYS
            if isinstance(logs.get(old), int | float)
        }
        if state.global_step <= self.logged_until:
            return  # stored by the run this one resumed
        if self.store is not None and self.train_run is not None and line:
            self.store.log_train(self.train_run, state.global_step, "log", line)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.gate:
            self._point(args, state, control, kw)  # training stopped between points
            verdict = self._gate_verdict(state.global_step) if self.store is not None else None
            self.gate_result = GateResult(**_share(verdict))
        if self.store is not None:
            if self.train_run is not None:
                status = "stopped" if self.stopped_because else "complete"
                self.store.finish_train_run(self.train_run, status)
            self.store.close()
            self.store = None
        result = self.gate_result
        if result is not None:
            if state.is_world_process_zero:
                passed = "passed" if result.passed else "failed: " + "; ".join(result.failures)
                say(f"tuneval gate at step {result.step} against the base {passed}")
            if not result.passed:
                raise GateFailed(result)

    def _gate_verdict(self, step: int) -> dict[str, Any]:
        """The newest stored point against the base, decided as `tuneval gate` decides."""
        from harness.comparison.compare import compare_runs, gate_failures

        assert self.store is not None and self.train_run is not None
        done = [r for r in self.store.checkpoint_runs(self.train_run) if r["status"] == "complete"]
        last = max(done, key=lambda r: int(r["step"] or 0), default=None)
        verdict: dict[str, Any] = {"step": step, "passed": False, "base_run": self.base_run}
        if self.base_run is None or last is None or not last["step"]:
            return {**verdict, "failures": ["no point after a base run to gate against"]}
        c = compare_runs(self.store, self.base_run, last["id"], alpha=self.alpha)
        failures = gate_failures(c)
        return {**verdict, "step": int(last["step"]), "passed": not failures,
                "failures": failures, "run_id": last["id"]}  # fmt: skip

    # --- one point ---------------------------------------------------------------------------

    def _point(
        self, args: Any, state: Any, control: Any, kw: dict[str, Any], step: int | None = None
    ) -> dict[str, float] | None:
        step = state.global_step if step is None else step
        if step in self.evaluated:
            return None
        self.evaluated.add(step)
        payload: tuple[dict[str, float], list[str]] | None = None
        if state.is_world_process_zero:
            payload = self._evaluate(kw["model"], kw.get("processing_class"), step)
        scalars, reasons = _share(payload)
        self.last = scalars
        if step > 0:  # the base is logged with the first point: trackers want steps > 0
            self._log(scalars, state)
        self.gate_failures = reasons
        if reasons:
            if self.stop_on_regression:
                self.stopped_because = reasons
                control.should_training_stop = True
                if state.is_world_process_zero:
                    say(f"tuneval: stopping at step {step}: " + "; ".join(reasons))
        return scalars

    def _evaluate(self, model: Any, tok: Any, step: int) -> tuple[dict[str, float], list[str]]:
        import torch

        from harness.comparison.compare import compare_runs, gate_failures
        from harness.evaluation.runner import EvalOptions, evaluate_suite
        from harness.evaluation.sweep import record_point

        if tok is None:
            raise UserError("TunevalCallback needs the trainer's tokenizer (processing_class)")
        t0 = time.perf_counter()
        name = base_name(model) if step == 0 else f"{self._run_name()}@{step}"
        ref = live_ref(model, tok, name)
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        opts = EvalOptions(
            limit=self.limit, batch_size=self.batch_size, dtype=dtype, progress=False,
            train_run=self.train_run, step=step, trust_code=self.trust_code, prompt=self.prompt,
        )  # fmt: skip
        was_training, side = model.training, tok.padding_side
        model.eval()
        tok.padding_side = "left"
        try:
            with torch.no_grad():
                result = evaluate_suite(
                    self.suite, ref, self.store, opts, backend=live_backend(model, tok, opts)
                )
        finally:
            tok.padding_side = side
            if was_training:
                model.train()
        assert self.train_run is not None
        record_point(self.store, self.train_run, step, result, "(live model)")
        s = result.summary
        scalars = {
            "tuneval/pass_rate": s["pass_rate"],
            "tuneval/better_rate": s["shares"]["better"],
            **{f"tuneval/criterion/{cid}": rate for cid, rate in s["criteria"].items()},
        }
        reasons: list[str] = []
        if step == 0:
            self.base_run = result.run_id
        elif self.base_run is not None:
            c = compare_runs(self.store, self.base_run, result.run_id, alpha=self.alpha)
            scalars.update({
                "tuneval/delta_pass": c.pass_rate.delta,
                "tuneval/delta_pass_low": c.pass_rate.low,
                "tuneval/delta_pass_high": c.pass_rate.high,
                "tuneval/delta_better": c.better_rate.delta,
                "tuneval/regressed_cases": float(len(c.changed("regressed"))),
            })  # fmt: skip
            reasons = gate_failures(c)
            scalars["tuneval/gate_passed"] = 0.0 if reasons else 1.0
        seconds = time.perf_counter() - t0
        scalars["tuneval/seconds"] = seconds
        vs = " (base)" if step == 0 else ", no base to pair with"
        if "tuneval/delta_pass" in scalars:
            vs = f", {scalars['tuneval/delta_pass'] * 100:+.1f} pts vs base"
        say(
            f"tuneval: step {step}: pass {s['pass_rate']:.1%}{vs} on {s['n']} cases, "
            f"{result.generated} generated, {result.cached} cached, {seconds:.1f}s added"
        )
        return scalars, reasons

    def _run_name(self) -> str:
        return f"{self.suite.name}-{self.train_run}"

    def _log(self, scalars: dict[str, float], state: Any) -> None:
        if self.trainer is not None:
            self.trainer.log(dict(scalars))
        else:
            state.log_history.append({**scalars, "step": state.global_step})


def continued_train_run(
    store: Any, suite: str, output_dir: Path
) -> tuple[str, str | None, set[int]] | None:
    """The newest Trainer training run of `output_dir` on `suite`: its id, its base run (step
    0) and the steps it holds complete points of."""
    out = str(output_dir.resolve())
    for t in store.train_runs():  # newest first
        if str(t["trainer"]).startswith("hf:") and t["output_dir"] == out and t["suite"] == suite:
            runs = [r for r in store.checkpoint_runs(t["id"]) if r["status"] == "complete"]
            base = next((r["id"] for r in runs if not r["step"]), None)
            return str(t["id"]), base, {int(r["step"] or 0) for r in runs}
    return None


# --- the live model -----------------------------------------------------------------------------


def base_name(model: Any) -> str:
    """What the model was loaded from: the adapter's base for a PEFT model."""
    peft = getattr(model, "peft_config", None)
    if isinstance(peft, dict) and peft:
        cfg = next(iter(peft.values()))
        if getattr(cfg, "base_model_name_or_path", None):
            return str(cfg.base_model_name_or_path)
    return str(getattr(model, "name_or_path", "") or type(model).__name__)


def live_ref(model: Any, tok: Any, name: str) -> Any:
    from harness.generation.models import ModelRef

    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(dtype=_uint8()).numpy().tobytes())
    h.update(str(sorted(tok.get_vocab().items())).encode())
    h.update(str(getattr(tok, "chat_template", "") or "").encode())
    return ModelRef(name, name, Path(str(getattr(model, "name_or_path", "") or ".")), "live",
                    "live-" + h.hexdigest())  # fmt: skip


def _uint8() -> Any:
    import torch

    return torch.uint8


def live_backend(model: Any, tok: Any, opts: Any) -> Any:
    """The local engine on the model in memory: a PEFT model generates through its base with
    the adapter layers active; no weight packing (the weights keep training)."""
    from harness.generation.local import HFBackend
    from harness.generation.models import ModelRef

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    ref = ModelRef("live", "live", Path("."), "live", "live")
    return HFBackend(
        ref, batch_size=opts.batch_size, dtype=opts.dtype, progress=False, pack_weights=False,
        _model=inner, _tok=tok,
    )  # fmt: skip


def _share(payload: Any) -> Any:
    """The main process's figures, on every process (a no-op outside torch.distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [payload]
        dist.broadcast_object_list(box, src=0)
        payload = box[0]
    return payload


def _config(args: Any) -> dict[str, Any]:
    keys = ("learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size",
            "gradient_accumulation_steps", "seed", "eval_steps", "save_steps")  # fmt: skip
    return {"hyperparameters": {k: getattr(args, k, None) for k in keys}}


def say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
