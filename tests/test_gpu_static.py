"""On a CUDA GPU: the static engine's CUDA-graph path (`harness/generation/static.py`, `_Replay`)
gives the same greedy answers as `model.generate` in float32, in the SmolLM2-135M and SmolLM2-1.7B
shapes (random weights, the tiny test tokenizer). Skipped where CUDA is absent; on a GPU machine:
`pytest -m gpu tests/test_gpu_static.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.generation import models, static
from harness.generation.local import HFBackend
from harness.generation.types import GenSettings
from tests.conftest import _tiny_llama

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

SHAPES = {
    "135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
             "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True},
    "1.7b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
             "num_attention_heads": 32, "num_key_value_heads": 32, "tie_word_embeddings": True},
}  # fmt: skip


def answers(ref: Any, engine: str, convs: list[Any]) -> list[str]:
    out: dict[int, str] = {}
    backend = HFBackend(ref, batch_size=8, dtype="float32", progress=False, engine=engine)

    def keep(idx: list[int], gens: list[Any]) -> None:
        out.update(zip(idx, [g.output for g in gens], strict=True))

    backend.generate(convs, GenSettings(max_new_tokens=32, dtype="float32"), keep)
    return [out[i] for i in range(len(convs))]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_cuda_graph_engine_equals_generate_in_float32(
    shape: str, tmp_path: Path, tiny_tokenizer_dir: Path, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / shape
    folder.mkdir()
    _tiny_llama(folder, tiny_tokenizer_dir, initializer_range=0.05, **SHAPES[shape])
    ref = models.resolve(str(folder), store)
    convs = [[{"role": "user", "content": "word " * n + "end"}] for n in range(1, 17)]
    replays: list[bool] = []

    class Counted(static._Replay):
        def __init__(self, step: Any, graphs: bool) -> None:
            super().__init__(step, graphs)
            replays.append(graphs)

    monkeypatch.setattr(static, "_Replay", Counted)
    engine = answers(ref, "static", convs)
    assert replays and all(replays), "the static engine did not capture a CUDA graph"
    reference = answers(ref, "hf", convs)
    same = sum(a == b for a, b in zip(engine, reference, strict=True))
    print(f"\n{shape} float32: {same}/{len(convs)} answers identical to model.generate")
    assert engine == reference
    assert len(set(reference)) > 1  # the answers differ: the comparison has teeth
