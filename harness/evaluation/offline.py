"""Grade outputs produced elsewhere (an API model, another tool, last month's run) without
loading any model, and store them as an ordinary run.

The outputs file is JSONL, one `{"id": ..., "output": ...}` per case; ids must be the suite's.
The run's model is the given name, its kind `outputs` and its fingerprint the SHA-256 of the
file, so `compare`, `gate` and the report treat it like any model's run. Cases without a line
are left out of the run and counted (`missing`): a comparison pairs the cases both runs have.
A suite's lm-eval tasks are scored from log-likelihoods, which an outputs file cannot give, so
they are left out too (`lm_eval_skipped`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from harness.errors import Problem, UserError
from harness.evaluation.runner import EvalResult, conversation, new_run_row
from harness.grading.grader import Grader, summarize
from harness.grading.judges import judge_fingerprints
from harness.store import ResultRow, Store, result_row
from harness.suite.loader import Suite

KIND = "outputs"


def read_outputs(path: Path) -> dict[str, str]:
    """id -> output, every problem located by line. Read like a suite's data: a regular file under
    the size limit, each line a JSON object holding text (`harness.safe.files`)."""
    from harness.safe import files as suite_files

    try:
        data = suite_files.read(path)
    except suite_files.FileProblem as e:
        raise UserError(f"{path}: {e}") from None
    outputs: dict[str, str] = {}
    lines: dict[str, int] = {}
    problems: list[Problem] = []
    for row in suite_files.read_jsonl(data, str(path), problems):
        where = f"line {row['__line__']}"
        if "id" not in row or "output" not in row:
            problems.append(Problem(str(path), where, 'each line needs {"id": ..., "output": ...}'))
            continue
        if not isinstance(row["output"], str):
            problems.append(Problem(str(path), where, "'output' must be text"))
            continue
        case_id = str(row["id"])
        if case_id in lines:
            again = f"id '{case_id}' again (first on line {lines[case_id]})"
            problems.append(Problem(str(path), where, again))
            continue
        lines[case_id] = row["__line__"]
        outputs[case_id] = row["output"]
    if problems:
        raise UserError(problems)
    if not outputs:
        raise UserError(f"{path}: no outputs")
    return outputs


def grade_outputs(
    suite: Suite, path: Path, name: str, store: Store, *, trust_code: bool = False,
    progress: bool = False,
) -> EvalResult:  # fmt: skip
    """Grade an outputs file against the suite and store it as a run of model `name`;
    `trust_code` is the user's --trust-suite-code (a `metric` criterion runs code). Judges are
    resolved and cached through the store, as in any run."""
    t0 = time.perf_counter()
    suite.check_use(trust_code)
    if not suite.cases:
        raise UserError(f"suite '{suite.name}' has no test cases (data.test) to grade outputs for")
    outputs = read_outputs(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    known = {c["id"] for c in suite.cases}
    unknown = [i for i in outputs if i not in known]
    if unknown:
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        shown = ", ".join(unknown[:20]) + more
        what = f"{len(unknown)} ids are not cases of suite '{suite.name}'"
        raise UserError(f"{path}: {what}: {shown}")
    _check_name(name, store)
    cases = [c for c in suite.cases if c["id"] in outputs]
    positions = {c["id"]: i for i, c in enumerate(suite.cases)}
    settings: dict[str, Any] = {
        "backend": KIND,
        "outputs_file": str(path.resolve()),
        "outputs_sha256": sha,
        "missing": len(suite.cases) - len(cases),
        "must_pass": "recorded",
    }
    judges = judge_fingerprints(suite, store)
    if judges:
        settings["judges"] = judges
    grader = Grader(suite, store, progress)
    graded = grader([outputs[c["id"]] for c in cases], cases)  # before the run is stored
    run_id = _insert_run(store, suite, name, sha, settings, len(cases))
    results: list[ResultRow] = [
        result_row(
            run_id,
            c["id"],
            positions[c["id"]],
            json.dumps(conversation(suite, c)),
            outputs[c["id"]],
            grade,
            criteria,
            must_pass=c.get("must_pass") is True,
        )
        for c, (grade, criteria) in zip(cases, graded, strict=True)
    ]
    store.save_results(results)
    seconds = time.perf_counter() - t0
    store.finish_run(run_id, {"seconds": seconds, "graded": len(results)})
    extra: dict[str, Any] = {"missing": settings["missing"], "outputs_sha256": sha}
    if suite.spec.lm_eval:
        extra["lm_eval_skipped"] = list(suite.spec.lm_eval)
    return EvalResult(
        run_id, suite.name, name, summarize(store.results(run_id)), 0, 0, seconds, False, extra
    )


def _check_name(name: str, store: Store) -> None:
    """The run becomes its model's latest run for compare, gate and the leaderboard: a name
    that already means a model (registered, the packaged default, or one with runs of its own)
    is refused."""
    from harness.evaluation.names import check_name

    check_name(name, "--name", store)
    registered = store.model(name)
    if registered is not None:
        kind = registered["kind"]
        raise UserError(f"'{name}' is a registered {kind} model: choose another --name")
    kinds = sorted({r["model_kind"] for r in store.runs(None, name)} - {KIND})
    if kinds:
        raise UserError(
            f"'{name}' already names a model with runs ({', '.join(kinds)}): choose another --name"
        )


def _insert_run(
    store: Store, suite: Suite, name: str, sha: str, settings: dict[str, Any], n: int
) -> str:
    key = hashlib.sha256(json.dumps([KIND, suite.fingerprint, sha, name]).encode()).hexdigest()
    row = new_run_row(suite, name, sha, KIND, settings, key, n)
    store.insert_run(row)
    return row["id"]
