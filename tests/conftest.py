"""Shared fixtures: a real SQLite store, a tiny randomly initialised model with a tokenizer built
here (nothing packaged needed), a fake backend, a small suite written to a temporary folder, and
the two ways to run the command line (in this process, or as a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TUNEVAL = str(Path(sys.executable).parent / "tuneval")

# Nothing in the tests may reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long fuzz run only when asked for: `-m fuzz`, or TUNEVAL_FUZZ=long. A plain `pytest`
    (what `make test` runs) keeps the bounded one."""
    if "fuzz" in (config.getoption("markexpr") or "") or os.environ.get("TUNEVAL_FUZZ") == "long":
        return
    skip = pytest.mark.skip(reason="the long fuzz run: select it with -m fuzz")
    for item in items:
        if "fuzz" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def store(tmp_path: Path):
    from harness.store import Store

    with Store(tmp_path / "tuneval.db") as s:
        yield s


@pytest.fixture(scope="session")
def packaged_model_dir() -> Path:
    """The packaged default model, dequantized once into the user cache (integration tests)."""
    from harness.generation.models import materialize_default

    return materialize_default()


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer trained here on a little text, with a ChatML chat template."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A 2-layer, randomly initialised Llama with the tiny tokenizer."""
    return _tiny_llama(tmp_path_factory.mktemp("tiny-model"), tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def varied_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """Like `tiny_model_dir`, but untied and with larger random weights, so that its greedy answers
    differ from prompt to prompt (the tied one repeats the newline it was prompted with)."""
    return _tiny_llama(
        tmp_path_factory.mktemp("varied-model"),
        tiny_tokenizer_dir,
        tie_word_embeddings=False,
        initializer_range=0.2,
    )


@pytest.fixture(scope="session")
def mha_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """Like `varied_model_dir` with as many key/value heads as query heads (SmolLM2-1.7B's
    layout; the 135M one groups three query heads per key/value head)."""
    return _tiny_llama(
        tmp_path_factory.mktemp("mha-model"),
        tiny_tokenizer_dir,
        tie_word_embeddings=True,
        initializer_range=0.2,
        num_key_value_heads=4,
    )


CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tiny_tokenizer(folder: Path, vocab_size: int = 400) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [json.dumps(c) for c in CASES + TRAIN] + [
        SUITE_YAML,
        "Which module holds the function? The answer is a module of the standard library.",
        "You are a concise Python documentation assistant. Answer in one sentence.",
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return folder


def _tiny_llama(folder: Path, tokenizer_dir: Path, **overrides: Any) -> Path:
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    for f in tokenizer_dir.iterdir():
        shutil.copy(f, folder / f.name)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    settings: dict[str, Any] = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "tie_word_embeddings": True,
    }
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**{**settings, **overrides})).save_pretrained(folder)
    return folder


def cli(
    *args: str, db: Path | None = None, env: dict | None = None, cwd: Path | None = None,
    timeout: float = 1800,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`tuneval ARGS` as a real subprocess: what a user's shell runs."""
    full_env = {**os.environ, **(env or {})}
    if db:
        full_env["TUNEVAL_DB"] = str(db)
    return subprocess.run(
        [TUNEVAL, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`tuneval ARGS` in this process: quicker than a subprocess, same exit codes and messages."""
    from harness.cli import main

    argv = sys.argv
    sys.argv = ["tuneval", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class FakeBackend:
    """Answers from a function of the user message; records what it was asked."""

    def __init__(self, answer: Callable[[str], str]):
        self.answer = answer
        self.calls: list[int] = []

    def render(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(m["content"] for m in messages)

    def generate(self, conversations: Sequence[Any], settings: Any, on_batch: Any) -> None:
        from harness.generation.types import Generation

        self.calls.append(len(conversations))
        for start in range(0, len(conversations), 4):
            idx = list(range(start, min(start + 4, len(conversations))))
            gens = [Generation(self.answer(conversations[i][-1]["content"]), 5) for i in idx]
            on_batch(idx, gens)


@pytest.fixture
def fake_backend() -> type[FakeBackend]:
    return FakeBackend


# A small lm-eval multiple-choice task over a local docs.jsonl.
LM_TASK = """\
task: t
dataset_path: json
dataset_kwargs:
  data_files:
    test: docs.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{q}}"
doc_to_choice: "{{choices}}"
doc_to_target: gold
metric_list:
  - metric: acc
"""


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
