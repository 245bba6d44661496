"""Suites are data: an lm-eval task file that would run code is refused, located, unless the user
passes --trust-suite-code; the flag is never implied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli

TASK = """\
task: planted
dataset_path: json
dataset_kwargs:
  data_files:
    test: docs.jsonl
test_split: test
output_type: multiple_choice
process_docs: !function evil.process
doc_to_text: "Question: {{q}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: gold
metric_list:
  - metric: acc
"""

EVIL = """\
from pathlib import Path

MARK = Path({mark!r})
MARK.write_text("imported")  # runs on import, before any function is called


def process(dataset):
    MARK.write_text("called")
    return dataset
"""

DOCS = [
    {"id": "a", "q": "2+2?", "choices": ["4", "5"], "gold": 0},
    {"id": "b", "q": "3+3?", "choices": ["5", "6"], "gold": 1},
]


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A suite whose task file names a module that writes a file when imported."""
    folder = tmp_path / "planted"
    folder.mkdir()
    mark = tmp_path / "PLANTED"
    (folder / "suite.yaml").write_text("name: planted\nversion: 1\nlm_eval: [task.yaml]\n")
    (folder / "task.yaml").write_text(TASK)
    (folder / "evil.py").write_text(EVIL.format(mark=str(mark)))
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return folder, mark


def test_eval_refuses_a_task_that_imports_code(
    planted: tuple[Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder, mark = planted
    db = tmp_path / "ws.db"
    r = cli("eval", "planted", "--model", str(tiny_model_dir), "--db", str(db), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert not mark.exists(), "the planted module ran"
    assert "task.yaml:line 8" in r.stderr and "!function evil.process" in r.stderr
    assert "--trust-suite-code" in r.stderr and "Traceback" not in r.stderr

    r = cli("suites", "validate", "planted", cwd=tmp_path)
    assert r.returncode == 2 and "--trust-suite-code" in r.stderr and not mark.exists()
    r = cli("suites", "validate", "planted", "--trust-suite-code", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not mark.exists(), "validating must not import the module even when trusted"

    assert not db.exists(), "refused before the store is created"


def test_trust_flag_lets_it_run(
    planted: tuple[Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder, mark = planted
    db = tmp_path / "ws.db"
    r = cli(
        "eval", "planted", "--model", str(tiny_model_dir), "--db", str(db), "--json",
        "--trust-suite-code", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert mark.read_text() == "called"
    assert json.loads(r.stdout)["n"] == len(DOCS)


def _suite(tmp_path: Path, task: str, **files: str) -> Path:
    folder = tmp_path / "s"
    folder.mkdir(exist_ok=True)
    (folder / "suite.yaml").write_text("name: s\nversion: 1\nlm_eval: [task.yaml]\n")
    (folder / "task.yaml").write_text(task)
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _needs_code(folder: Path) -> list[str]:
    from harness.suite.loader import load_suite

    return [str(p) for p in load_suite(folder).needs_code]


PLAIN = TASK.replace("process_docs: !function evil.process\n", "")


def test_plain_task_needs_no_trust(tmp_path: Path) -> None:
    assert _needs_code(_suite(tmp_path, PLAIN)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("metric_list:\n  - metric: acc\n", "metric_list:\n  - metric: ./my_metric\n"),
         "task.yaml:line 12 (metric_list[0].metric): metric './my_metric' would load"),
        (("metric_list:\n  - metric: acc\n",
          "metric_list:\n  - metric: acc\n    hf_evaluate: true\n"),
         "task.yaml:line 13 (metric_list[0].hf_evaluate)"),
        (("output_type:", "class: !function tasks.MyTask\noutput_type:"),
         "task.yaml:line 7: !function tasks.MyTask imports and runs Python code"),
        (("dataset_path: json", "dataset_path: ./loader"), "dataset_path './loader' is not one"),
        (("    test: docs.jsonl", "    test: ../outside.jsonl"), "outside the suite folder"),
        (("task: planted\n", "task: planted\ninclude: ../base.yaml\n"), "includes '../base.yaml'"),
        (("doc_to_target: gold", "doc_to_target: !!python/name:os.system"),
         "tag:yaml.org,2002:python/name:os.system"),
    ],
)  # fmt: skip
def test_what_needs_trust_is_located(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    (tmp_path / "outside.jsonl").write_text(json.dumps(DOCS[0]) + "\n")
    (tmp_path / "base.yaml").write_text("output_type: multiple_choice\n")
    found = _needs_code(_suite(tmp_path, PLAIN.replace(*change)))
    assert any(expected in line for line in found), found
    assert all("--trust-suite-code" in line for line in found)


def test_includes_inside_the_folder_are_read_as_data(tmp_path: Path) -> None:
    from harness.suite.lmeval_config import read_task

    base = "output_type: multiple_choice\ndoc_to_target: wrong\nmetric_list:\n  - metric: acc\n"
    task = "include: base.yaml\n" + PLAIN.replace("output_type: multiple_choice\n", "")
    folder = _suite(tmp_path, task, **{"base.yaml": base})
    read = read_task(folder / "task.yaml", folder)
    assert read.problems == [] and read.code == []
    assert read.config["output_type"] == "multiple_choice"
    assert read.config["doc_to_target"] == "gold"  # the including file wins


def test_unsupported_task_kind_is_a_problem(tmp_path: Path) -> None:
    from harness.errors import UserError
    from harness.suite.loader import load_suite

    folder = _suite(tmp_path, PLAIN.replace("multiple_choice", "loglikelihood_rolling"))
    with pytest.raises(UserError, match="output_type 'loglikelihood_rolling' is not supported"):
        load_suite(folder)
    folder = _suite(tmp_path, PLAIN.replace("multiple_choice", "generate_until").replace(
        "- metric: acc", "- metric: bleu"))  # fmt: skip
    with pytest.raises(UserError, match="metric 'bleu' is not supported"):
        load_suite(folder)


def test_template_cannot_reach_python(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Without the flag, lm-eval's Jinja templates render in a sandbox."""
    mark = tmp_path / "JINJA"
    payload = "{{ cycler.__init__.__globals__.os.system('touch " + str(mark) + "') }}{{q}}"
    folder = _suite(tmp_path, PLAIN.replace('"Question: {{q}}\\nAnswer:"', json.dumps(payload)))
    r = cli("eval", str(folder), "--model", str(tiny_model_dir), "--db", str(tmp_path / "d.db"))
    assert r.returncode == 2, r.stderr
    assert "--trust-suite-code" in r.stderr and "Traceback" not in r.stderr
    assert not mark.exists()


def test_includes_and_named_modules_are_part_of_the_fingerprint(tmp_path: Path) -> None:
    """A changed include or `!function` module is a changed suite: the per-task cache and
    compare key on the fingerprint."""
    from harness.suite.loader import load_suite

    base = "output_type: multiple_choice\nmetric_list:\n  - metric: acc\n"
    task = "include: base.yaml\n" + TASK.replace("output_type: multiple_choice\n", "")
    folder = _suite(
        tmp_path, task, **{"base.yaml": base, "evil.py": "def process(d):\n  return d\n"}
    )
    first = load_suite(folder)
    assert {"task.yaml", "base.yaml", "docs.jsonl", "evil.py"} <= set(first.files)

    (folder / "base.yaml").write_text(base.replace("acc\n", "acc\n  - metric: acc_norm\n"))
    second = load_suite(folder)
    assert second.fingerprint != first.fingerprint

    (folder / "evil.py").write_text("def process(d):\n  return d[:1]\n")
    assert load_suite(folder).fingerprint != second.fingerprint


def test_a_dotted_module_is_hashed_where_lm_eval_imports_it(tmp_path: Path) -> None:
    """`!function pkg.mod.fn` imports `pkg.mod.py` beside the task (lm-eval keeps the dots);
    that file, not `pkg/mod.py`, is the one the fingerprint must follow. A module named outside
    the folder is never read."""
    from harness.suite.loader import load_suite

    task = TASK.replace("!function evil.process", "!function pkg.mod.process")
    folder = _suite(tmp_path, task, **{"pkg.mod.py": "def process(d):\n  return d\n"})
    first = load_suite(folder)
    assert "pkg.mod.py" in first.files
    (folder / "pkg.mod.py").write_text("def process(d):\n  return d[:1]\n")
    assert load_suite(folder).fingerprint != first.fingerprint

    outside = tmp_path / "elsewhere.py"
    outside.write_text("def process(d):\n  return d\n")
    task = TASK.replace("!function evil.process", "!function ../elsewhere.process")
    (tmp_path / "b").mkdir()
    files = load_suite(_suite(tmp_path / "b", task)).files
    assert not any("elsewhere" in name for name in files)
