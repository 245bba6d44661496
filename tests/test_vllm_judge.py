"""Judges' log-likelihood choices through vLLM's prompt logprobs
(harness.grading.judges.VllmChooser) against the local engine's
(harness.grading.judges.LocalChooser), both float32, on the packaged model: the same choice for
every prompt and the same distribution to float32 rounding. One vLLM start."""

from __future__ import annotations

import pytest

from harness.generation.models import resolve
from harness.generation.vllm_inproc import _close_all
from harness.grading.judges import LocalChooser, VllmChooser
from tests.test_vllm_engine import VLLM_PYTHON

QUESTIONS = [
    ("Is Paris the capital of France?", ("yes", "no")),
    ("Is the moon made of cheese?", ("yes", "no")),
    ("Does 2 + 2 equal 5?", ("yes", "no")),
    ("Is this answer right: 'json.dumps writes a Python object as a JSON string'?",
     ("correct", "incorrect")),
    ("Which is a colour? A: table, B: green, C: seven", ("A", "B", "C")),
    ("Which is a prime number? first: 8, second: 7, third: 9", ("first", "second", "third")),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(
    not VLLM_PYTHON.exists(), reason="no .venv-vllm: `make vllm` creates it (`make test` does)"
)
def test_vllm_judge_chooses_as_the_local_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEVAL_VLLM_PYTHON", str(VLLM_PYTHON))
    ref = resolve("smollm2-135m-instruct")
    local, vllm = LocalChooser(ref, "float32"), VllmChooser(ref, "float32")
    try:
        for question, choices in QUESTIONS:
            prompts = [[{"role": "user", "content": f"{question}\n\nAnswer with one of: "
                         f"{', '.join(choices)}."}]]  # fmt: skip
            (a,), (b,) = local.choose(prompts, choices), vllm.choose(prompts, choices)
            assert a.probs is not None and b.probs is not None
            assert b.choice == a.choice, (question, a.probs, b.probs)
            assert max(abs(a.probs[c] - b.probs[c]) for c in choices) < 1e-3, (a.probs, b.probs)
    finally:
        _close_all()
