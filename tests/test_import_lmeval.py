"""lm-eval specimens: a generate_until task's pipelines become criteria that agree with lm-eval's
own filters and exact_match (checked against the installed lm-eval), multiple choice rides along
as a task, and a task that needs code or few-shot prompts is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.import_helpers import SPECIMENS, assert_verdicts, eval_and_compare, import_suite

LM = SPECIMENS / "lm-eval"

OUTPUTS = [
    "40 + 2 = 42\n#### 42",
    "The answer is $1,234.",
    "#### 1,234",
    "So 42 apples.",
    "I do not know",
    "#### -7.",
    "",
]


def _lm_eval_verdicts(task_yaml: Path, outputs: list[str]) -> dict[str, list[bool]]:
    """lm-eval's own filter pipelines and exact_match, run on the outputs for the first doc."""
    import yaml
    from lm_eval.api.instance import Instance
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters import build_filter_ensemble

    cfg = yaml.safe_load(task_yaml.read_text())
    options = {k: v for k, v in cfg["metric_list"][0].items()
               if k not in ("metric", "aggregation", "higher_is_better")}  # fmt: skip
    gold = "40 + 2 = 42\n#### 42"
    out = {}
    for pipeline in cfg["filter_list"]:
        steps = [[f["function"], {k: v for k, v in f.items() if k != "function"}]
                 for f in pipeline["filter"]]  # fmt: skip
        ensemble = build_filter_ensemble(pipeline["name"], steps)
        instances = [
            Instance("generate_until", {}, ("", {}), i, resps=[o]) for i, o in enumerate(outputs)
        ]
        ensemble.apply(instances)
        answers = [inst.filtered_resps[pipeline["name"]] for inst in instances]
        out[pipeline["name"]] = [
            exact_match_hf_evaluate([a], [gold], **options)["exact_match"] == 1.0 for a in answers
        ]
    return out


def test_pipelines_agree_with_lm_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.grading.grader import Grader
    from harness.suite.loader import load_suite

    summary = import_suite(capsys, "lm-eval", LM / "gsm_mini.yaml", tmp_path / "gsm")
    assert set(summary["mapped"]) == {
        "strict-match (exact_match) -> filtered-match",
        "flexible-extract (exact_match) -> filtered-match",
    }
    suite = load_suite(tmp_path / "gsm")
    assert suite.spec.generation.stop == ["Question:", "</s>"]
    assert suite.spec.generation.max_new_tokens == 64
    case = suite.cases[0]
    graded = Grader(suite)(OUTPUTS, [case] * len(OUTPUTS))
    ours = {
        name: [criteria[name]["passed"] for _, criteria in graded]
        for name in ("strict-match", "flexible-extract")
    }
    theirs = _lm_eval_verdicts(LM / "gsm_mini.yaml", OUTPUTS)
    assert ours == theirs
    assert any(theirs["strict-match"]) and not all(theirs["strict-match"])  # a real test


def test_target_choice_description_and_numpy_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.evaluation.runner import conversation
    from harness.suite.loader import load_suite

    import_suite(capsys, "lm-eval", LM / "capitals_gen.yaml", tmp_path / "cap")
    suite = load_suite(tmp_path / "cap")
    fr = suite.cases[0]
    assert fr["target"] == "Paris" and fr["id"] == "fr"
    assert conversation(suite, fr) == [
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert suite.spec.generation.stop == ["\n"]
    assert [c.id for _, c in suite.criteria()] == ["exact_match"]
    assert_verdicts(tmp_path / "cap", [
        ("fr", "PARIS!", True),  # ignore_case and ignore_punctuation
        ("fr", " Paris", False),  # white space is not ignored
        # numpy lower-cases into the array's fixed width: "İstanbul" becomes "i̇stanbu" (cut),
        # so lm-eval's exact_match fails it, and so does tuneval's
        ("tr", "İstanbul", False), ("tr", "ISTANBUL", True),
    ])  # fmt: skip
    from lm_eval.api.metrics import exact_match_hf_evaluate

    assert exact_match_hf_evaluate(["İstanbul"], ["istanbul"], ignore_case=True)["exact_match"] == 0


def test_multiple_choice_rides_along(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_dir: Path
) -> None:
    from harness.suite.loader import load_suite

    summary = import_suite(capsys, "lm-eval", LM / "capitals_mc.yaml", tmp_path / "mc")
    assert summary["lm_eval_tasks"] == ["capitals_mc.yaml"] and summary["cases"] == 0
    suite = load_suite(tmp_path / "mc")
    assert suite.spec.lm_eval == ["capitals_mc.yaml"] and not suite.needs_code
    assert (tmp_path / "mc" / "capitals.jsonl").is_file()
    db = tmp_path / "mc.db"
    code, out, err = run_cli("eval", str(tmp_path / "mc"), "--model", str(tiny_model_dir),
                             "--db", str(db), "--json", capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert '"correct-norm"' in out


def test_code_and_few_shot_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, expected in (
        ("with_code.yaml", "with_code.yaml:line 8: !function utils.process_docs"),
        ("fewshot.yaml", "num_fewshot 3"),
    ):
        code, _, err = run_cli("suites", "import", "lm-eval", str(LM / name), "--out",
                               str(tmp_path / name), capsys=capsys)  # fmt: skip
        assert code == 2 and expected in err, err
        assert not (tmp_path / name).exists()


def test_import_eval_compare(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "gsm"
    import_suite(capsys, "lm-eval", LM / "gsm_mini.yaml", folder)

    def answer(prompt: str) -> str:
        return "#### 42" if "apples" in prompt else "#### 1234"

    result = eval_and_compare(folder, tiny_model_dir, tmp_path / "db.db", answer, capsys)
    assert result["n"] == 2 and result["pass_rate"]["b"] == 1.0


GEN_TASK = """\
task: broken_docs
dataset_path: json
dataset_kwargs:
  data_files:
    test: docs.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Q: {{question}}"
doc_to_target: answer
metric_list:
  - metric: exact_match
"""


@pytest.mark.parametrize(
    ("docs", "task_change", "expected"),
    [
        ('{"question": "a", "answer": "b"}\n{"answer": "c"}\n', None,
         "docs.jsonl: document 1: UndefinedError: 'question' is undefined"),
        ('{"question": "a", "answer": "b"}\n{"question": "x", "answer": "c"\n', None,
         "docs.jsonl:line 2: invalid JSON"),
        ('{"question": "a", "answer": "yes", "choices": ["no", "yes"]}\n',
         ("doc_to_target: answer", "doc_to_target: answer\ndoc_to_choice: choices"),
         "docs.jsonl: document 0: TypeError"),
        ('[{"question": "a"}, 3]', None, "docs.jsonl: document 1: a document must be a JSON"),
    ],
)  # fmt: skip
def test_a_document_that_cannot_be_imported_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], docs: str,
    task_change: tuple[str, str] | None, expected: str,
) -> None:  # fmt: skip
    source = tmp_path / "src"
    source.mkdir()
    (source / "task.yaml").write_text(GEN_TASK.replace(*task_change) if task_change else GEN_TASK)
    (source / "docs.jsonl").write_text(docs)
    out = tmp_path / "out"
    code, _, err = run_cli("suites", "import", "lm-eval", str(source / "task.yaml"), "--out",
                           str(out), capsys=capsys)  # fmt: skip
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
