"""`similarity`: all-MiniLM-L6-v2 from its package folder, batched and cached."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import criteria

# (reference, paraphrase, unrelated)
TRIPLES = [
    (
        "Remove any common leading whitespace from every line in text.",
        "Strips the indentation that all lines of a string share.",
        "The train to Lisbon leaves at nine in the morning.",
    ),
    (
        "Return the square root of x.",
        "Computes the square root of a number.",
        "Open a connection to an SMTP mail server.",
    ),
    (
        "Serialize obj as a JSON formatted string.",
        "Converts a Python object into a JSON string.",
        "Tomatoes grow best in warm, sunny weather.",
    ),
    (
        "Return a randomly selected element from a non-empty sequence.",
        "Picks one item at random from a list.",
        "Return the current working directory.",
    ),
]


@pytest.fixture(scope="module")
def scorer():
    return criteria.get("similarity")(reference="{answer}", min=0.5)


def test_paraphrase_scores_above_unrelated(scorer) -> None:
    cases = [{"answer": ref} for ref, _, _ in TRIPLES for _ in range(2)]
    outputs = [o for _, para, other in TRIPLES for o in (para, other)]
    results = scorer(outputs, cases)
    for k, (ref, _, _) in enumerate(TRIPLES):
        para, other = results[2 * k], results[2 * k + 1]
        assert para.score is not None and other.score is not None
        assert para.score > other.score + 0.2, (ref, para, other)
        assert para.passed and not other.passed, (ref, para, other)
        assert 0.0 <= other.score <= 1.0


def test_identical_text_scores_one_and_empty_scores_zero(scorer) -> None:
    ref = TRIPLES[0][0]
    same, empty = scorer([ref, "  "], [{"answer": ref}] * 2)
    assert same.score == pytest.approx(1.0, abs=1e-3) and same.passed
    assert empty.score == 0.0 and not empty.passed
    assert empty.detail == "similarity 0.00 < 0.5"


def test_embeddings_are_cached(scorer, monkeypatch) -> None:
    from harness.criteria import similarity

    scorer([TRIPLES[1][1]], [{"answer": TRIPLES[1][0]}])
    calls: list[list[str]] = []
    original = similarity.EMBEDDER._encode
    monkeypatch.setattr(similarity.EMBEDDER, "_encode", lambda t: calls.append(t) or original(t))
    scorer([TRIPLES[1][1], "a sentence never seen before"], [{"answer": TRIPLES[1][0]}] * 2)
    assert calls == [["a sentence never seen before"]]


def test_threshold_is_validated() -> None:
    with pytest.raises(Exception, match="less than or equal to 1"):
        criteria.get("similarity")(reference="{answer}", min=1.5)


def test_importing_the_criterion_does_not_import_torch() -> None:
    code = "import harness.criteria as c, sys; c.get('similarity'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
