"""Shared by the importer tests: import a specimen, then grade given outputs case by case."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeBackend, run_cli

SPECIMENS = Path(__file__).resolve().parent / "specimens"


def import_suite(
    capsys: pytest.CaptureFixture[str], fmt: str, source: Path, out: Path, *extra: str
) -> dict[str, Any]:
    code, stdout, err = run_cli(
        "suites", "import", fmt, str(source), "--out", str(out), "--json", *extra, capsys=capsys
    )
    assert code == 0, err
    return json.loads(stdout)


def verdicts(folder: Path, outputs: dict[str, str]) -> dict[str, bool]:
    """Whether each case (by id) passes with the given output, as tuneval grades it."""
    from harness.grading.grader import Grader
    from harness.suite.loader import load_suite

    suite = load_suite(folder)
    by_id = {c["id"]: c for c in suite.cases}
    grader = Grader(suite)
    ids = list(outputs)
    graded = grader([outputs[i] for i in ids], [by_id[i] for i in ids])
    return {i: grade != "bad" for i, (grade, _) in zip(ids, graded, strict=True)}


def assert_verdicts(folder: Path, table: list[tuple[str, str, bool]]) -> None:
    """Every (case id, output, source tool's verdict) row must agree with tuneval's grade."""
    wrong = []
    for case_id, output, expected in table:
        got = verdicts(folder, {case_id: output})[case_id]
        if got != expected:
            wrong.append(f"{case_id} {output!r}: tuneval says {got}, the source tool {expected}")
    assert not wrong, "\n".join(wrong)


def eval_and_compare(folder: Path, model_dir: Path, db: Path, answer: Any, capsys: Any) -> dict:
    """import -> eval (two fake models on the tiny model's identity) -> compare, as a user would."""
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation.models import resolve
    from harness.store import Store
    from harness.suite.loader import load_suite

    suite = load_suite(folder)
    with Store(db) as store:
        base = resolve(str(model_dir), store)
        cand = replace(base, name="candidate", fingerprint="f" * 64)
        opts = EvalOptions(progress=False)
        run_a = evaluate_suite(suite, base, store, opts, backend=FakeBackend(lambda _: ""))
        run_b = evaluate_suite(suite, cand, store, opts, backend=FakeBackend(answer))
    code, stdout, err = run_cli(
        "compare", run_a.run_id, run_b.run_id, "--db", str(db), "--json", capsys=capsys
    )
    assert code == 0, err
    return json.loads(stdout)
