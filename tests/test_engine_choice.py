"""`--engine auto` (the default): vLLM answers only where it is installed and pays for the
answers still to make, by the measured rule in harness.generation.engine_choice; decided from the
store and the model's size, never from a clock."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.evaluation.runner import EvalOptions, _plan, evaluate_suite
from harness.generation import engine_choice
from harness.generation.models import resolve
from harness.generation.types import Generation
from harness.store import Store
from harness.suite.loader import load_suite
from tests.conftest import FakeBackend


def test_auto_picks_vllm_only_where_it_pays(
    tiny_model_dir: Path, mini_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUNEVAL_ENGINE", raising=False)
    monkeypatch.setenv("TUNEVAL_VLLM_PYTHON", sys.executable)  # "installed": an interpreter
    suite, store = load_suite(mini_suite), Store(tmp_path / "t.db")
    ref = resolve(str(tiny_model_dir), store)
    engine = lambda **kw: _plan(suite, ref, EvalOptions(**kw), store).settings.engine  # noqa: E731
    # a tiny model's few answers: vLLM's start is never won back
    assert engine() == "" and engine(engine="auto") == ""
    # weights this size make each answer cost what the packaged model's do many times over:
    # the per-answer saving outweighs the start
    monkeypatch.setattr(engine_choice, "MEASURED_BYTES", 1)
    assert engine() == "vllm"
    # a backend handed in (adapters sharing a base) answers: its answers are the local engine's
    other = Store(tmp_path / "u.db")
    run = evaluate_suite(suite, ref, other, backend=FakeBackend(lambda _: "an answer"))
    assert other.run(run.run_id)["settings"]["backend"] != "vllm"  # type: ignore[index]
    assert engine(engine="local") == ""
    monkeypatch.setenv("TUNEVAL_ENGINE", "pool")  # a local engine named: local
    assert engine() == ""
    monkeypatch.delenv("TUNEVAL_ENGINE")
    monkeypatch.setenv("TUNEVAL_VLLM_PYTHON", str(tmp_path / "none"))  # not installed
    assert engine() == ""
    monkeypatch.undo()

    # with the measured constants: answers vLLM already made cost it nothing, so they stay its own
    monkeypatch.delenv("TUNEVAL_ENGINE", raising=False)
    monkeypatch.setenv("TUNEVAL_VLLM_PYTHON", sys.executable)
    plan = _plan(suite, ref, EvalOptions(engine="vllm"), store)
    store.save_generations([
        Generation("cached", 1).cache_row(k, ref.fingerprint, m, plan.settings)
        for k, m in zip(plan.keys, plan.convs, strict=True)
    ])  # fmt: skip
    assert engine() == "vllm"
    # the local engine's own cached answers are free too: the smaller estimate wins, local on a tie
    local = _plan(suite, ref, EvalOptions(engine="local"), store)
    store.save_generations([
        Generation("cached", 1).cache_row(k, ref.fingerprint, m, local.settings)
        for k, m in zip(local.keys, local.convs, strict=True)
    ])  # fmt: skip
    assert engine() == ""
