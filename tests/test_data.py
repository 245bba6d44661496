"""Data preparation (chat examples, answer-only labels) and the leakage check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.generation.tokenize import IGNORE, tokenize_examples
from harness.suite.leakage import near_matches
from harness.suite.loader import load_suite
from harness.training.data import chat_examples, check_report
from tests.conftest import CASES, REPO, SUITE_YAML, TRAIN, cli, write_suite


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_chat_examples_fill_the_prompt_and_the_answer(mini_suite: Path) -> None:
    convs = chat_examples(load_suite(mini_suite), "train")
    assert len(convs) == len(TRAIN)
    assert convs[0] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": f"Which module holds {TRAIN[0]['function']}?"},
        {"role": "assistant", "content": TRAIN[0]["module"]},
    ]


def test_labels_cover_the_answer_only(mini_suite: Path, tokenizer) -> None:
    convs = chat_examples(load_suite(mini_suite), "train")
    for conv, ex in zip(convs, tokenize_examples(tokenizer, convs, 256), strict=True):
        assert len(ex["input_ids"]) == len(ex["labels"]) == len(ex["attention_mask"])
        trained = [
            t for t, label in zip(ex["input_ids"], ex["labels"], strict=True) if label != IGNORE
        ]
        assert [x for x in ex["labels"] if x != IGNORE] == trained
        text = tokenizer.decode(trained)
        assert text.startswith(conv[-1]["content"]) and tokenizer.eos_token in text
        # Everything before the answer is masked: the prompt, including the assistant header.
        first = ex["labels"].index(next(x for x in ex["labels"] if x != IGNORE))
        assert tokenizer.decode(ex["input_ids"][:first]).endswith("assistant\n")
        assert conv[1]["content"] in tokenizer.decode(ex["input_ids"][:first])


def test_truncation_and_padding(mini_suite: Path, tokenizer) -> None:
    convs = chat_examples(load_suite(mini_suite), "train")
    full = tokenize_examples(tokenizer, convs, 4096)
    short = tokenize_examples(tokenizer, convs, 8)
    assert all(len(e["input_ids"]) == 8 for e in short)
    assert all(set(e["labels"]) == {IGNORE} for e in short)  # the prompt alone is longer than 8
    longest = max(len(e["input_ids"]) for e in full)
    padded = tokenize_examples(tokenizer, convs, longest + 5, pad=True)
    for f, p in zip(full, padded, strict=True):
        n = len(f["input_ids"])
        assert len(p["input_ids"]) == longest + 5
        assert p["input_ids"][:n] == f["input_ids"] and p["labels"][:n] == f["labels"]
        assert p["attention_mask"] == [1] * n + [0] * (longest + 5 - n)
        assert set(p["labels"][n:]) <= {IGNORE}


def test_no_chat_template_uses_the_plain_layout(mini_suite: Path, tokenizer) -> None:
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = None
    convs = chat_examples(load_suite(mini_suite), "train")
    ex = tokenize_examples(tokenizer, convs, 256)[0]
    trained = [t for t, label in zip(ex["input_ids"], ex["labels"], strict=True) if label != IGNORE]
    assert tokenizer.decode(trained) == TRAIN[0]["module"] + tokenizer.eos_token


def test_check_finds_exact_and_near_leaks(tmp_path: Path) -> None:
    yaml_text = SUITE_YAML.replace('"Which module holds {function}?"', '"{question}"')
    cases = [dict(c, question=f"Which module holds {c['function']}?") for c in CASES]
    cases[1]["question"] = "Which standard library module serializes a Python object to JSON text?"
    train = [dict(t, question=f"Name the module of {t['function']}.") for t in TRAIN]
    train.append(dict(CASES[0], question=cases[0]["question"].upper()))  # exact, modulo case
    # Near: one word changed in a long prompt.
    train.append(dict(CASES[1], question=cases[1]["question"].replace("text", "data")))
    train.append(dict(TRAIN[0], question=f"Name the module of {TRAIN[0]['function']}."))
    train.append(
        dict(TRAIN[1], module="pickle", question=f"Name the module of {TRAIN[1]['function']}.")
    )
    train.append(dict(TRAIN[2], module="", question="Where is listdir?"))
    report = check_report(load_suite(write_suite(tmp_path / "s", yaml_text, cases, train)))
    assert report["exact_overlap"] == 1 and report["exact_examples"][0]["test_id"] == "a"
    assert report["near_overlap"] == 1 and report["near_examples"][0]["test_id"] == "b"
    assert report["train_duplicates"] == 1 and report["train_conflicts"] == 1
    assert report["empty_answers"] == {"train": 1}


def test_near_matches_threshold() -> None:
    pool = ["the quick brown fox jumps over the lazy dog", "completely different words here"]
    assert near_matches(["the quick brown fox jumps over the lazy dog!"], pool) == [(0, 0, 1.0)]
    assert near_matches(["the quick brown cat jumps over a lazy dog"], pool) == []
    assert near_matches(["nothing shared at all"], pool) == []


def test_near_matches_finds_what_all_pairs_finds() -> None:
    """The prefix filter only skips pairs that cannot reach the threshold: on template-like
    prompts (every one shares most shingles) it returns what comparing every pair returns."""
    import random

    from harness.suite.leakage import shingles

    rng = random.Random(3)
    words = "sort list dict path json time os sys open read write split join".split()

    def prompt() -> str:
        n = rng.randint(1, 4)
        return f"What does {' '.join(rng.choice(words) for _ in range(n))} {rng.randint(0, 9)} do?"

    queries, pool = [prompt() for _ in range(150)], [prompt() for _ in range(150)]
    for threshold in (0.5, 0.8, 0.95):
        expected = []
        for i, q in enumerate(queries):
            sq, sets = shingles(q), [shingles(p) for p in pool]
            best = max((len(sq & sp) / len(sq | sp), j) for j, sp in enumerate(sets))
            if best[0] >= threshold:
                expected.append((i, best[1], round(best[0], 3)))
        assert near_matches(queries, pool, threshold) == expected


def test_leaked_cases_name_each_test_case(tmp_path: Path) -> None:
    from harness.suite.leakage import leaked_cases

    train = [*TRAIN, dict(TRAIN[0], function="dedent"), dict(TRAIN[0], function="dedents")]
    suite = load_suite(write_suite(tmp_path / "s", cases=CASES[:2], train=train))
    assert leaked_cases(suite) == {
        "a": {"kind": "exact", "train": "Which module holds dedent?", "jaccard": 1.0},
    }
    cases = [dict(CASES[0], function="dedentx")]
    near = leaked_cases(load_suite(write_suite(tmp_path / "n", cases=cases, train=train)))
    assert near["a"]["kind"] == "near" and near["a"]["jaccard"] >= 0.8


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    clean = write_suite(tmp_path / "clean")
    r = cli("data", "check", str(clean), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["exact_overlap"] == 0
    leaky = write_suite(tmp_path / "leaky", train=TRAIN + [CASES[2]])
    r = cli("data", "check", str(leaky), "--json", cwd=tmp_path)
    assert r.returncode == 1 and json.loads(r.stdout)["exact_overlap"] == 1
    r = cli("data", "check", str(tmp_path / "missing"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not (tmp_path / ".tuneval").exists()  # checking data never creates a store


def test_cli_prepare_reports_tokens_and_steps(
    mini_suite: Path, tiny_model_dir: Path, tmp_path
) -> None:
    args = ["data", "prepare", str(mini_suite), "--model", str(tiny_model_dir), "--json"]
    r = cli(*args, "--max-length", "64", "--batch-size", "3", "--epochs", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    train = report["splits"]["train"]
    assert train["examples"] == len(TRAIN) and train["truncated"] == 0
    assert report["steps_per_epoch"] == 2 and report["steps"] == 4
    assert train["trained_tokens"] == train["answer_tokens"] > 0
    r = cli(*args, "--max-length", "10", cwd=tmp_path)
    assert json.loads(r.stdout)["splits"]["train"]["truncated_share"] == 1.0
    r = cli(*args, "--max-length", "1", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_shipped_python_docs_has_no_exact_leak() -> None:
    r = cli("data", "check", str(REPO / "suites" / "python-docs"), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["exact_overlap"] == 0
    assert report["train"] + report["validation"] + report["test"] >= 1000
