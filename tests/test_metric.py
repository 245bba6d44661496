"""The `metric` criterion through Hugging Face `evaluate`, on local metric modules written here
(metric scripts otherwise live on the Hub, which tests never reach)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import criteria
from harness.errors import UserError

PER_CASE = """
import datasets
import evaluate


class WordOverlap(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="share of the reference's words found in the prediction",
            citation="",
            inputs_description="predictions and references, strings",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, lowercase=False):
        scores = []
        for p, r in zip(predictions, references):
            if lowercase:
                p, r = p.lower(), r.lower()
            want = set(r.split())
            scores.append(len(want & set(p.split())) / max(len(want), 1))
        return {"overlap": scores, "mean": sum(scores) / len(scores)}
"""

# An aggregate metric (one figure per call), as most of evaluate's are.
AGGREGATE = """
import datasets
import evaluate


class Longest(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="length of the longest prediction", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions):
        return {"longest": max(len(p) for p in predictions)}
"""


def module(folder: Path, name: str, source: str) -> Path:
    (folder / name).mkdir(parents=True)
    (folder / name / f"{name}.py").write_text(source)
    return folder / name


def test_metric_per_case_scores_threshold_and_errors(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    module(suite / "metrics", "word_overlap", PER_CASE)
    module(suite / "metrics", "longest", AGGREGATE)
    cases = [{"answer": "Textwrap dedent"}, {"answer": "json dumps"}, {"answer": "os getcwd"}]
    outputs = ["textwrap dedent removes", "dumps objects", "nothing"]

    overlap = criteria.get("metric")(
        metric="metrics/word_overlap", reference="{answer}", key="overlap", min=0.5,
        args={"lowercase": True},
    )  # fmt: skip
    with criteria.using(criteria.Context(suite_path=suite)):  # relative to the suite folder
        results = overlap(outputs, cases)
    assert [r.score for r in results] == [1.0, 0.5, 0.0]
    assert [r.passed for r in results] == [True, True, False]
    assert results[2].detail == "overlap 0 < 0.5"

    # an aggregate figure is computed one case at a time, so each case still gets its own
    longest = criteria.get("metric")(metric="metrics/longest", max=10)
    several = criteria.get("metric")(metric="metrics/word_overlap", reference="{answer}", min=0.5)
    with criteria.using(criteria.Context(suite_path=suite)):
        results = longest(outputs, cases)
        assert [r.score for r in results] == [23.0, 13.0, 7.0]
        assert [r.passed for r in results] == [False, False, True]

        with pytest.raises(UserError, match="several figures .*choose one with key"):
            several(outputs, cases)
        with pytest.raises(UserError, match="not found"):
            criteria.get("metric")(metric="./missing_metric", min=1)(outputs, cases)
        with pytest.raises(UserError, match="Hugging Face Hub and tuneval works offline"):
            criteria.get("metric")(metric="no_such_metric_xyz", min=1)(outputs, cases)


def test_metric_needs_a_threshold() -> None:
    with pytest.raises(ValueError, match="set min or max"):
        criteria.get("metric")(metric="accuracy")


# A metric module that leaves a mark when it is imported: what `evaluate.load` does to it.
PLANTED = (
    """
from pathlib import Path

Path(MARK).write_text("imported")
"""
    + PER_CASE
)

METRIC_RUBRIC = """\
name: metric-suite
version: 1
prompt: {user: "{question}"}
data: {test: test.jsonl}
rubric:
  good:
RULES"""


def _metric_suite(tmp_path: Path, rules: str, cases: list[dict] | None = None) -> Path:
    folder = tmp_path / "suite"
    mark = tmp_path / "IMPORTED"
    module(folder / "metrics", "word_overlap", PLANTED.replace("MARK", repr(str(mark))))
    (folder / "suite.yaml").write_text(METRIC_RUBRIC.replace("RULES", rules))
    rows = cases or [{"id": "a", "question": "dedent?", "answer": "textwrap dedent"}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


OVERLAP = (
    '{type: metric, metric: metrics/word_overlap, reference: "{answer}", key: overlap, min: 0.5}'
)


@pytest.mark.parametrize(
    ("rules", "cases", "where"),
    [
        (f"    - {{id: overlap, {OVERLAP[1:]}\n", None, "suite.yaml:line 7 (rubric.good[0])"),
        (f"    - {{id: all, type: weighted, checks: [{{type: empty}}, {OVERLAP}]}}\n", None,
         "suite.yaml:line 7 (rubric.good[0].checks[1])"),
        ("    - {id: own, type: weighted, checks_from: checks}\n",
         [{"id": "a", "question": "q", "answer": "a b", "checks": [{"type": "empty"}]},
          {"id": "b", "question": "q", "answer": "a b",
           "checks": [{"type": "metric", "metric": "bleu", "min": 0.1}]}],
         "test.jsonl:line 2"),
    ],
)  # fmt: skip
def test_a_suite_using_metric_needs_trust(
    tmp_path: Path, rules: str, cases: list[dict] | None, where: str
) -> None:
    """A metric runs code (a local module or a hub script), wherever the rubric names it."""
    from harness.suite.loader import load_suite

    suite = load_suite(_metric_suite(tmp_path, rules, cases))
    found = [str(p) for p in suite.needs_code]
    assert len(found) == 1 and where in found[0], found
    assert "runs an `evaluate` metric module" in found[0] and "--trust-suite-code" in found[0]
    with pytest.raises(UserError, match="trust-suite-code"):
        suite.check_use(False)
    suite.check_use(True)


def test_grade_and_validate_refuse_a_metric_without_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import run_cli

    folder = _metric_suite(tmp_path, f"    - {{id: overlap, {OVERLAP[1:]}\n")
    mark = tmp_path / "IMPORTED"
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"id": "a", "output": "textwrap dedent it"}) + "\n")
    db = tmp_path / "ws.db"
    grade = ("grade", str(folder), "--outputs", str(outputs), "--name", "api", "--db", str(db))
    code, _, err = run_cli("suites", "validate", str(folder), capsys=capsys)
    assert code == 2 and "--trust-suite-code" in err
    code, _, err = run_cli(*grade, capsys=capsys)
    assert code == 2 and "rubric.good[0]" in err and "--trust-suite-code" in err
    assert not mark.exists() and not db.exists(), "nothing runs, nothing is written"

    code, out, err = run_cli(*grade, "--trust-suite-code", "--json", capsys=capsys)
    assert code == 0, err
    assert mark.read_text() == "imported" and json.loads(out)["pass_rate"] == 1.0


def test_metric_module_stays_in_the_suite_and_is_fingerprinted(tmp_path: Path) -> None:
    from harness.suite.loader import load_suite

    folder = _metric_suite(tmp_path, f"    - {{id: overlap, {OVERLAP[1:]}\n")
    before = load_suite(folder)
    assert "metrics/word_overlap/word_overlap.py" in before.files
    source = folder / "metrics" / "word_overlap" / "word_overlap.py"
    source.write_text(source.read_text() + "\n# changed\n")
    assert load_suite(folder).fingerprint != before.fingerprint

    for spec in ("/tmp/word_overlap.py", "~/word_overlap.py", "../word_overlap.py"):
        with pytest.raises(ValueError, match="a local module is a path inside the suite folder"):
            criteria.get("metric")(metric=spec, min=0.5)
        (folder / "suite.yaml").write_text(
            METRIC_RUBRIC.replace(
                "RULES", f"    - {{id: m, type: metric, metric: '{spec}', min: 1}}\n"
            )
        )
        with pytest.raises(UserError, match="inside the suite folder"):
            load_suite(folder)

    outside = tmp_path / "elsewhere"
    module(outside, "sneaky", PER_CASE)
    (folder / "linked").symlink_to(outside / "sneaky")
    (folder / "suite.yaml").write_text(
        METRIC_RUBRIC.replace("RULES", "    - {id: m, type: metric, metric: ./linked, min: 1}\n")
    )
    with pytest.raises(UserError, match="outside the suite folder"):
        load_suite(folder)


def test_evaluate_suite_refuses_a_metric_without_trust(tmp_path: Path, store) -> None:
    """eval, loop and checkpoint evaluations all go through evaluate_suite."""
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation.models import ModelRef
    from harness.suite.loader import load_suite
    from tests.conftest import FakeBackend

    folder = _metric_suite(tmp_path, f"    - {{id: overlap, {OVERLAP[1:]}\n")
    suite = load_suite(folder)
    ref = ModelRef("fake", "fake", folder, "local", "fp-fake")
    backend = FakeBackend(lambda prompt: "textwrap dedent")
    opts = EvalOptions(progress=False, dtype="float32")
    with pytest.raises(UserError, match="trust-suite-code"):
        evaluate_suite(suite, ref, store, opts, backend=backend)
    assert store.runs() == [] and not (tmp_path / "IMPORTED").exists()
    trusted = EvalOptions(progress=False, dtype="float32", trust_code=True)
    result = evaluate_suite(suite, ref, store, trusted, backend=backend)
    assert result.summary["pass_rate"] == 1.0
