"""`tuneval data synth`: passages from text, pairs by template or model, dedupe, leakage; and the
generated share and diversity that `data check` reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.suite.loader import load_suite
from harness.training.diversity import distinct
from harness.training.synth import parse_pair, read_passages, synthesize
from tests.conftest import run_cli

QA_SUITE = """\
name: qa
version: 1
prompt:
  system: Answer in one sentence.
  user: "{question}"
  assistant: "{answer}"
data: {test: test.jsonl, train: train.jsonl}
rubric:
  good:
    - {id: nonempty, type: empty}
"""

GUIDE = """\
# Widgets

A widget holds one value. Widgets redraw when the value changes.

```python
w = Widget(3)
```

Frobnication
============

Frobnication turns every widget upside down.

    indented_code_is_skipped()

## Frobnication

Frobnication again: a duplicate question.
"""

MODULE = '''\
"""Tools for frames."""


def dedent_frame(frame):
    """Remove the common margin of a frame.

    More detail that is not the summary."""


def leaky(x):
    """Appears in the test split."""


class Frame:
    """A rectangle of text."""

    def width(self):
        """Return the width of the frame."""

    def _hidden(self):
        """Private: skipped."""
'''


@pytest.fixture
def qa(tmp_path: Path) -> Path:
    folder = tmp_path / "qa"
    folder.mkdir()
    (folder / "suite.yaml").write_text(QA_SUITE)
    test = [
        {"id": "t1", "question": "What does leaky() do?", "answer": "x"},
        {"id": "t2", "question": "What does the documentation say about widget?", "answer": "x"},
    ]
    train = [{"question": "What is Frame?", "answer": "Already in the training data."}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    return folder


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "guide.md").write_text(GUIDE)
    (src / "frame.py").write_text(MODULE)
    (src / "notes.txt").write_text("A plain paragraph.\n\nAnother paragraph.\n")
    return src


def test_passages_from_markdown_rst_text_and_docstrings(sources: Path) -> None:
    passages = read_passages([sources])
    titles = [(p.kind, p.title) for p in passages]
    assert ("section", "Widgets") in titles and ("section", "Frobnication") in titles
    assert ("function", "dedent_frame") in titles and ("function", "Frame.width") in titles
    assert ("class", "Frame") in titles and ("module", "frame") in titles
    assert not any(t and "hidden" in t for _, t in titles)
    text = " ".join(p.text for p in passages)
    assert "Widget(3)" not in text and "indented_code" not in text and "More detail" not in text
    assert [p.text for p in passages if p.title is None] == [
        "A plain paragraph.",
        "Another paragraph.",
    ]
    assert passages[0].origin.endswith("frame.py:1")


def test_template_pairs_deduped_and_leak_free(qa: Path, sources: Path) -> None:
    rows, counts = synthesize(load_suite(qa), [sources])
    questions = [r["question"] for r in rows]
    assert "What does dedent_frame() do?" in questions
    assert "What does leaky() do?" not in questions  # exact leak into the test split
    assert "What does the documentation say about Widgets?" not in questions  # near a test prompt
    assert "What is Frame?" not in questions  # already a training row
    assert questions.count("What does the documentation say about Frobnication?") == 1
    assert all(r["source"] == "generated" and ":" in r["origin"] for r in rows)
    assert counts == {
        "passages": 10, "untitled": 2, "pairs": 8, "duplicates": 2, "leaked": 2, "written": 4,
    }  # fmt: skip


def test_model_pairs_parse_and_are_cached(qa: Path, sources: Path, store, monkeypatch) -> None:
    from harness.generation import dispatch
    from tests.conftest import FakeBackend

    def answer(user: str) -> str:
        if "Widgets" in user:
            return "I cannot help with that."
        return "Q: What does this passage cover?\n" + "A: " + user.split("\n")[1][:40] + "\n\nQ: x"

    backend = FakeBackend(answer)
    monkeypatch.setattr(dispatch, "backend_for", lambda *a, **k: backend)
    tiny = Path(__file__)  # never loaded: the fake backend answers
    monkeypatch.setattr("harness.generation.models.resolve", lambda spec, store=None: _ref())
    rows, counts = synthesize(
        load_suite(qa), [sources], model=str(tiny), store=store, progress=False
    )
    assert counts["unparsed"] == 1 and counts["passages"] == 10
    assert all(r["answer"] and "Q: x" not in r["answer"] for r in rows)
    assert counts["duplicates"] == counts["pairs"] - 1  # every question the same: one survives
    asked = sum(backend.calls)
    synthesize(load_suite(qa), [sources], model=str(tiny), store=store, progress=False)
    assert sum(backend.calls) == asked  # all from the cache


def _ref():
    from harness.generation.models import ModelRef

    return ModelRef("writer", "writer", Path("."), "local", "fp-writer")


def test_parse_pair_is_strict() -> None:
    assert parse_pair("Q: What is x?\nA: It is y.\n\nmore") == {
        "question": "What is x?",
        "answer": "It is y.",
    }
    assert parse_pair("What is x? It is y.") is None


def test_suite_prompt_must_use_question_and_answer(sources: Path, mini_suite: Path) -> None:
    with pytest.raises(UserError, match="builds its prompt from function, module"):
        synthesize(load_suite(mini_suite), [sources])


def test_cli_synth_then_check_reports_generated_share(qa: Path, sources: Path, capsys) -> None:
    out_file = qa / "generated.jsonl"
    code, out, err = run_cli("data", "synth", str(sources), "--suite", str(qa), "--out",
                             str(out_file), capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert "leaking into the test split, dropped: 2" in out and "written" in out
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    train = json.loads((qa / "train.jsonl").read_text())
    (qa / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [train, *rows]))
    code, out, err = run_cli("data", "check", str(qa), "--json", capsys=capsys)
    div = json.loads(out)["train_diversity"]
    assert div["generated"] == 4 and div["generated_share"] == pytest.approx(4 / 5, abs=1e-4)
    assert div["by_source"]["generated"]["rows"] == 4 and div["by_source"]["other"]["rows"] == 1
    assert 0 < div["all"]["distinct_2"] <= 1
    code, out, err = run_cli("data", "check", str(qa), capsys=capsys)
    assert 'generated rows in train ("source": "generated"): 4 (80.0%)' in out


def test_distinct_n() -> None:
    assert distinct(["a b c", "a b c"], 1) == 0.5
    assert distinct(["a b c", "d e f"], 2) == 1.0
    assert distinct([""], 2) is None
