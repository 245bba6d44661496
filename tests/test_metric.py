"""The `metric` criterion through Hugging Face `evaluate`, on local metric modules written here
(metric scripts otherwise live on the Hub, which tests never reach)."""

from __future__ import annotations

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
    longest = criteria.get("metric")(metric=str(suite / "metrics" / "longest"), max=10)
    results = longest(outputs, cases)
    assert [r.score for r in results] == [23.0, 13.0, 7.0]
    assert [r.passed for r in results] == [False, False, True]

    several = criteria.get("metric")(metric=str(suite / "metrics" / "word_overlap"),
                                     reference="{answer}", min=0.5)  # fmt: skip
    with pytest.raises(UserError, match="several figures .*choose one with key"):
        several(outputs, cases)
    with pytest.raises(UserError, match="not found"):
        criteria.get("metric")(metric="./missing_metric", min=1)(outputs, cases)
    with pytest.raises(UserError, match="Hugging Face Hub and tuneval works offline"):
        criteria.get("metric")(metric="no_such_metric_xyz", min=1)(outputs, cases)


def test_metric_needs_a_threshold() -> None:
    with pytest.raises(ValueError, match="set min or max"):
        criteria.get("metric")(metric="accuracy")
