"""Real `transformers.Trainer` runs on the tiny model for the integration tests: a dataset of the
suite's conversations (prompt masked), a Trainer over it, and a
suite whose untrained answers pass and whose training data breaks them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import CASES, write_suite

# Nothing in the tiny model's vocabulary writes "zz": untrained, it passes every case; trained on
# answers that say "zz", it fails them (the planted regression).
ZZ_SUITE = """\
name: zz
version: 1
description: Answers must not say zz.
prompt:
  system: Answer briefly.
  user: "Which module holds {function}?"
  assistant: "{module}"
generation: {max_new_tokens: 12}
data:
  test: test.jsonl
  train: train.jsonl
rubric:
  bad:
    - {id: empty, type: empty}
  good:
    - {id: no-zz, type: regex, pattern: "^(?!(?s:.*)zz)"}
  better:
    - {id: short, type: length, max_words: 4}
"""


def zz_suite(folder: Path, wrong: bool = True) -> Path:
    """The zz suite; its train split answers every test question with "zz" (or rightly)."""
    rows = [
        {"function": c["function"], "module": "zz zz zz zz" if wrong else c["module"]}
        for c in CASES
    ]
    return write_suite(folder, ZZ_SUITE, train=rows)


def dataset(model_dir: Path, suite_dir: Path) -> Any:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from harness.generation.tokenize import tokenize_examples
    from harness.suite.loader import load_suite
    from harness.training.data import chat_examples

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = tokenize_examples(tok, chat_examples(load_suite(suite_dir)), 64)
    return Dataset.from_list(rows)


def collate(tok: Any) -> Any:
    import torch

    def fn(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)
        out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
        for b in batch:
            pad = width - len(b["input_ids"])
            out["input_ids"].append(b["input_ids"] + [tok.pad_token_id] * pad)
            out["attention_mask"].append(b["attention_mask"] + [0] * pad)
            out["labels"].append(b["labels"] + [-100] * pad)
        return {k: torch.tensor(v) for k, v in out.items()}

    return fn


def trainer(
    model_dir: Path, suite_dir: Path, out: Path, callbacks: Any = (), lora: bool = False,
    **args: Any,
) -> Any:  # fmt: skip
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    data = dataset(model_dir, suite_dir)
    settings: dict[str, Any] = {
        "output_dir": str(out), "per_device_train_batch_size": 6, "learning_rate": 1e-2,
        "max_steps": 6, "logging_steps": 2, "report_to": [], "save_strategy": "no",
        "use_cpu": True, "seed": 0, "disable_tqdm": True, "remove_unused_columns": False,
    }  # fmt: skip
    settings.update(args)
    t = Trainer(
        model=model, args=TrainingArguments(**settings), train_dataset=data,
        eval_dataset=data, data_collator=collate(tok), processing_class=tok,
    )  # fmt: skip
    for cb in callbacks:
        t.add_callback(cb)
    return t


def log_keys(log_history: list[dict[str, Any]]) -> set[str]:
    return {k for row in log_history for k in row}


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
