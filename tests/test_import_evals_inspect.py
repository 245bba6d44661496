"""OpenAI evals and Inspect AI specimens: imported checks give those tools' verdicts.

Expected verdicts follow openai/evals (evals/api.py record_and_check_match, evals/elsuite/utils.py
get_answer, normalize, fuzzy_match) and Inspect (scorer/_common.py match_str, _match.py,
_classification.py exact, _choice.py with solver/_multiple_choice.py parse_answers).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.import_helpers import SPECIMENS, assert_verdicts, eval_and_compare, import_suite

REGISTRY = SPECIMENS / "openai-evals" / "registry" / "evals" / "capitals.yaml"
INSPECT = SPECIMENS / "inspect"


def _imported(tmp: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Path:
    import_suite(capsys, args[0], Path(args[1]), tmp / "s", *args[2:])
    return tmp / "s"


def test_match_is_starts_with(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _imported(tmp_path, capsys, "openai-evals", str(REGISTRY), "--eval", "capitals-match")
    assert_verdicts(folder, [
        ("line-1", "Paris", True), ("line-1", "Paris is the capital", True),
        ("line-1", " Paris", False), ("line-1", "paris", False),
        ("line-1", "The capital is Paris", False),
        ("line-2", "Washington", True), ("line-2", "Washington, D.C.", True),
        ("line-2", "washington", False),
    ])  # fmt: skip
    from harness.suite.loader import load_suite

    suite = load_suite(folder)
    assert suite.spec.generation.max_new_tokens == 20
    case = {c["id"]: c for c in suite.cases}["line-3"]
    assert case["source"] == {"file": "samples.jsonl", "line": 3}
    assert case["metadata"] == {"category": "europe"}


def test_includes_and_its_ignore_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _imported(tmp_path, capsys, "openai-evals", str(REGISTRY), "--eval",
                       "capitals-includes.dev.v0")  # fmt: skip
    assert_verdicts(folder, [
        ("line-1", "the capital is PARIS", True), ("line-1", "Pari", False),
        ("line-3", "rome", True),
    ])  # fmt: skip
    cased = _imported(tmp_path / "c", capsys, "openai-evals", str(REGISTRY), "--eval",
                      "capitals-includes-cased")  # fmt: skip
    assert_verdicts(cased, [("line-3", "rome", False), ("line-3", "It is Rome.", True)])


def test_fuzzy_match_normalisation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _imported(tmp_path, capsys, "openai-evals", str(REGISTRY), "--eval", "capitals-fuzzy")
    assert_verdicts(folder, [
        ("line-1", "The answer is Paris.", True),
        ("line-1", "Par", True),  # either side may contain the other
        ("line-1", "", False),  # one empty side matches nothing
        ("line-2", "Washington DC", True),  # "Washington, D.C." loses its punctuation
        ("line-2", "the", False),  # an article alone normalises to nothing
        ("line-3", "Milan", False),
    ])  # fmt: skip


def test_few_shot_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.evaluation.runner import conversation
    from harness.suite.loader import load_suite

    folder = _imported(tmp_path, capsys, "openai-evals", str(REGISTRY), "--eval",
                       "capitals-fewshot")  # fmt: skip
    suite = load_suite(folder)
    assert [m["content"] for m in conversation(suite, suite.cases[0])] == [
        "Answer with the city name.",
        "Capital of Spain?",
        "Madrid",
        "Capital of France?",
    ]
    out = str(tmp_path / "x")
    code, _, err = run_cli("suites", "import", "openai-evals", str(REGISTRY), "--out", out,
                           capsys=capsys)  # fmt: skip
    assert code == 2 and "pick one with --eval" in err
    code, _, err = run_cli("suites", "import", "openai-evals", str(REGISTRY), "--out", out,
                           "--eval", "capitals-graded", capsys=capsys)  # fmt: skip
    assert code == 2 and "needs a judge" in err and not Path(out).exists()


def test_inspect_match_includes_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = str(INSPECT / "samples.jsonl")
    match = _imported(tmp_path / "m", capsys, "inspect", samples, "--scorer", "match")
    assert_verdicts(match, [
        ("fr", "The capital is Paris.", True), ("fr", "Paris is the capital", False),
        ("fr", "  PARIS!  ", True), ("2", "It is Jupiter", True), ("2", "Jupiter, I think", False),
        ("3", "The answer is 4", True), ("3", "4.", True), ("3", "4 apples", False),
    ])  # fmt: skip
    includes = _imported(tmp_path / "i", capsys, "inspect", samples, "--scorer", "includes")
    assert_verdicts(includes, [("fr", "paris!", True), ("fr", "Pari", False)])
    exact = _imported(tmp_path / "e", capsys, "inspect", samples, "--scorer", "exact")
    assert_verdicts(exact, [
        ("fr", "Paris.", True), ("fr", "The Paris", True), ("fr", "Paris France", False),
        ("3", "4.0", True),  # numbers compare as floats
        ("3", "four", False),
    ])  # fmt: skip
    from harness.evaluation.runner import conversation
    from harness.suite.loader import load_suite

    suite = load_suite(match)
    by_id = {c["id"]: c for c in suite.cases}
    assert conversation(suite, by_id["2"])[0] == {"role": "system", "content": "Be brief."}
    assert by_id["fr"]["metadata"] == {"region": "europe"}
    code, _, err = run_cli("suites", "import", "inspect", samples, "--out", str(tmp_path / "n"),
                           capsys=capsys)  # fmt: skip
    assert code == 2 and "--scorer" in err


def test_inspect_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _imported(tmp_path, capsys, "inspect", str(INSPECT / "mc.jsonl"), "--scorer", "choice")
    assert_verdicts(folder, [
        ("q1", "ANSWER: C", True), ("q1", "ANSWER: c", True), ("q1", "The answer is C", False),
        ("q1", "ANSWER: C, D", False), ("q1", "ANSWER: E", False),
        ("q2", "ANSWER: B, D", True), ("q2", "ANSWER: BD", True), ("q2", "ANSWER: B", False),
        ("q2", "ANSWER: B and D", True),
    ])  # fmt: skip
    from harness.evaluation.runner import conversation
    from harness.suite.loader import load_suite

    suite = load_suite(folder)
    prompt = conversation(suite, suite.cases[0])[-1]["content"]
    assert prompt.startswith("Answer the following multiple choice question where multiple")
    assert prompt.endswith("one or more of A,B,C,D.\n\nWhich is a prime?\n\nA) 4\nB) 6\nC) 7\nD) 9")


def test_inspect_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.suite.loader import load_suite

    folder = _imported(tmp_path, capsys, "inspect", str(INSPECT / "samples.csv"), "--scorer",
                       "match")  # fmt: skip
    cases = {c["id"]: c for c in load_suite(folder).cases}
    assert cases["c1"]["choices"] == ["red", "green", "blue"]  # split on commas
    assert cases["c2"]["choices"] == ["red", "green", "blue"]  # no comma: on white space
    assert cases["c1"]["metadata"] == {"kind": "colour"}
    assert_verdicts(folder, [("c1", "It is blue.", True), ("c2", "GREEN", True)])


@pytest.mark.parametrize("fmt", ["openai-evals", "inspect"])
def test_import_eval_compare(
    fmt: str, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--eval", "capitals-match") if fmt == "openai-evals" else ("--scorer", "match")
    source = REGISTRY if fmt == "openai-evals" else INSPECT / "samples.jsonl"
    folder = _imported(tmp_path, capsys, fmt, str(source), *args)
    answers = {"France": "Paris", "States": "Washington", "Italy": "Rome", "planet": "Jupiter"}

    def answer(prompt: str) -> str:
        return next((a for k, a in answers.items() if k in prompt), "?")

    result = eval_and_compare(folder, tiny_model_dir, tmp_path / "db.db", answer, capsys)
    assert result["n"] == 3 and result["pass_rate"]["b"] > result["pass_rate"]["a"]


def test_messages_without_text_content_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both importers read a sample's messages alike: content must be text (None is not "None")."""
    import json

    registry = tmp_path / "registry"
    (registry / "evals").mkdir(parents=True)
    (registry / "data" / "q").mkdir(parents=True)
    (registry / "evals" / "q.yaml").write_text(
        "q:\n  id: q.dev.v0\nq.dev.v0:\n  class: evals.elsuite.basic.match:Match\n"
        "  args:\n    samples_jsonl: q/samples.jsonl\n"
    )
    samples = [
        {"input": [{"role": "user", "content": "Capital of France?"}], "ideal": "Paris"},
        {"input": [{"role": "user", "content": None}], "ideal": "Rome"},
    ]
    (registry / "data" / "q" / "samples.jsonl").write_text(
        "".join(json.dumps(s) + "\n" for s in samples)
    )
    inspect = tmp_path / "inspect.jsonl"
    inspect.write_text("".join(json.dumps({"input": s["input"], "target": s["ideal"]}) + "\n"
                               for s in samples))  # fmt: skip
    for fmt, source, extra in (
        ("openai-evals", registry / "evals" / "q.yaml", ()),
        ("inspect", inspect, ("--scorer", "match")),
    ):
        code, _, err = run_cli("suites", "import", fmt, str(source), "--out",
                               str(tmp_path / fmt), *extra, capsys=capsys)  # fmt: skip
        assert code == 2 and "line 2" in err and "must be text or chat messages" in err, err
