"""Shared fixtures: a real SQLite store, a tiny randomly initialised model, a fake backend,
and a small suite written to a temporary folder."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

# Nothing in the tests may reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def store(tmp_path: Path):
    from harness.store import Store

    with Store(tmp_path / "tuneval.db") as s:
        yield s


@pytest.fixture(scope="session")
def packaged_model_dir() -> Path:
    """The packaged default model, dequantized once into the user cache."""
    from harness.models import materialize_default

    return materialize_default()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, packaged_model_dir: Path) -> Path:
    """A 2-layer, randomly initialised Llama with the packaged model's tokenizer and template."""
    return _tiny_llama(tmp_path_factory.mktemp("tiny-model"), packaged_model_dir)


@pytest.fixture(scope="session")
def varied_model_dir(tmp_path_factory: pytest.TempPathFactory, packaged_model_dir: Path) -> Path:
    """Like `tiny_model_dir`, but untied and with larger random weights, so that its greedy answers
    differ from prompt to prompt (the tied one repeats the newline it was prompted with)."""
    return _tiny_llama(
        tmp_path_factory.mktemp("varied-model"),
        packaged_model_dir,
        tie_word_embeddings=False,
        initializer_range=0.2,
    )


def _tiny_llama(folder: Path, packaged_model_dir: Path, **overrides: Any) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (packaged_model_dir / name).exists():
            shutil.copy(packaged_model_dir / name, folder / name)
    base = json.loads((packaged_model_dir / "config.json").read_text())
    settings: dict[str, Any] = {
        "vocab_size": base["vocab_size"],
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "bos_token_id": base.get("bos_token_id"),
        "eos_token_id": base.get("eos_token_id"),
        "tie_word_embeddings": True,
    }
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**{**settings, **overrides})).save_pretrained(folder)
    return folder


class FakeBackend:
    """Answers from a function of the user message; records what it was asked."""

    def __init__(self, answer: Callable[[str], str]):
        self.answer = answer
        self.calls: list[int] = []

    def render(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(m["content"] for m in messages)

    def generate(self, conversations: Sequence[Any], settings: Any, on_batch: Any) -> None:
        from harness.generate import Generation

        self.calls.append(len(conversations))
        for start in range(0, len(conversations), 4):
            idx = list(range(start, min(start + 4, len(conversations))))
            gens = [Generation(self.answer(conversations[i][-1]["content"]), 5) for i in idx]
            on_batch(idx, gens)


@pytest.fixture
def fake_backend() -> type[FakeBackend]:
    return FakeBackend


SUITE_YAML = """\
name: mini
version: 1
description: A small suite for tests.
prompt:
  system: Answer briefly.
  user: "Which module holds {function}?"
  assistant: "{module}"
generation: {max_new_tokens: 16, stop: ["\\n\\n"]}
data:
  test: test.jsonl
  train: train.jsonl
rubric:
  bad:
    - {id: empty, type: empty}
    - {id: repetitive, type: repetition, max_ratio: 0.5}
  good:
    - {id: names-module, type: contains, value: "{module}"}
  better:
    - {id: bare, type: exact, value: "{module}"}
"""

CASES = [
    {"id": "a", "function": "dedent", "module": "textwrap"},
    {"id": "b", "function": "dumps", "module": "json"},
    {"id": "c", "function": "getcwd", "module": "os"},
    {"id": "d", "function": "sqrt", "module": "math"},
    {"id": "e", "function": "choice", "module": "random"},
    {"id": "f", "function": "deepcopy", "module": "copy", "must_pass": True},
]
TRAIN = [
    {"function": "wrap", "module": "textwrap"},
    {"function": "loads", "module": "json"},
    {"function": "listdir", "module": "os"},
    {"function": "floor", "module": "math"},
]


def write_suite(
    folder: Path,
    yaml_text: str = SUITE_YAML,
    cases: list[dict] | None = None,
    train: list[dict] | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(yaml_text)
    rows = CASES if cases is None else cases
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "train.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in (TRAIN if train is None else train))
    )
    return folder


@pytest.fixture
def mini_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path / "mini")
