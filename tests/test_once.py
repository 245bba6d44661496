"""Each thing done once: a task file read once per load and its text the one scored, scorers
built once and handed to the grader, the trust and variant check run once per use, and the
criterion context carrying the loaded suite (spelling never reloads it from disk)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness import criteria
from harness.safe import files as suite_files
from harness.suite import loader
from harness.suite.loader import load_suite
from tests.conftest import LM_TASK, SUITE_YAML, run_cli, write_suite

BASE_YAML = "output_type: multiple_choice\nmetric_list:\n  - metric: acc\n"
TASK_YAML = "include: base.yaml\n" + LM_TASK.replace("output_type: multiple_choice\n", "")
DOCS = [
    {"q": "2+2?", "choices": ["4", "5"], "gold": 0},
    {"q": "3+3?", "choices": ["5", "6"], "gold": 1},
]
VARIANT = '  variants:\n    terse: {system: "One word."}\n'


def with_task(folder: Path) -> Path:
    """The mini suite with a prompt variant and an lm-eval task that includes a base file."""
    text = SUITE_YAML.replace('  assistant: "{module}"\n', '  assistant: "{module}"\n' + VARIANT)
    write_suite(folder, text + "lm_eval: [task.yaml]\n")
    (folder / "task.yaml").write_text(TASK_YAML)
    (folder / "base.yaml").write_text(BASE_YAML)
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return folder


def count_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every suite file read, by file name."""
    reads: Counter[str] = Counter()
    read = suite_files.read

    def counted(path: Path, limit: int | None = None) -> bytes:
        reads[Path(path).name] += 1
        return read(path, limit)

    monkeypatch.setattr(suite_files, "read", counted)
    return reads


def count_builds(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every scorer built, by criterion type."""
    builds: Counter[str] = Counter()
    get = criteria.get

    def counted_get(name: str) -> Any:
        factory = get(name)

        def build(**params: Any) -> Any:
            builds[name] += 1
            return factory(**params)

        return build

    monkeypatch.setattr(criteria, "get", counted_get)
    return builds


def count_checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, str]]:
    """Every run of the trust and variant check."""
    checks: list[tuple[bool, str]] = []
    check = loader._check_use

    def counted(suite: Any, trust_code: bool, prompt: str) -> Any:
        checks.append((trust_code, prompt))
        return check(suite, trust_code, prompt)

    monkeypatch.setattr(loader, "_check_use", counted)
    return checks


def test_a_task_file_is_read_once_and_its_loaded_text_is_the_one_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task file edited between load and eval: the eval uses the text that was loaded, the
    one the suite fingerprint and the run's file hashes name (trusted or not)."""
    from harness.lmeval.run import task_configs

    reads = count_reads(monkeypatch)
    suite = load_suite(with_task(tmp_path / "s"))
    assert reads["task.yaml"] == 1 and reads["base.yaml"] == 1
    loaded = (tmp_path / "s" / "task.yaml").read_bytes()
    assert suite.files["task.yaml"] == hashlib.sha256(loaded).hexdigest()

    (tmp_path / "s" / "task.yaml").write_text(TASK_YAML.replace("{{q}}", "EDITED {{q}}"))
    (tmp_path / "s" / "base.yaml").write_text(BASE_YAML.replace("acc", "acc_norm"))
    for trust in (False, True):
        (cfg,) = task_configs(suite, trust)
        assert cfg["doc_to_text"] == "{{q}}" and cfg["output_type"] == "multiple_choice"
        assert cfg["metric_list"] == [{"metric": "acc"}]
        assert cfg["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "s" / "docs.jsonl")
    assert reads["task.yaml"] == 1 and reads["base.yaml"] == 1
    assert suite.tasks[0].config["dataset_kwargs"]["data_files"] == {"test": "docs.jsonl"}


def test_the_grader_scores_with_the_scorers_the_suite_built(
    mini_suite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.grading.grader import Grader

    builds = count_builds(monkeypatch)
    suite = load_suite(mini_suite)
    assert builds == Counter({"empty": 1, "repetition": 1, "contains": 1, "exact": 1})
    for _ in range(2):
        grader = Grader(suite)
        assert [s for _, _, s in grader.scorers] == [
            suite.scorers[c.id] for _, c in suite.criteria()
        ]
        graded = grader(["textwrap", "no idea"], suite.cases[:2])
        assert [g for g, _ in graded] == ["better", "bad"]
    assert sum(builds.values()) == 4


def test_one_eval_checks_trust_and_variant_once(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`tuneval eval --prompt V` on a suite with cases and an lm-eval task: the command line,
    the runner and the lm-eval bridge all need the suite checked; it is checked once, its task
    files read once and its scorers built once."""
    folder = with_task(tmp_path / "s")
    checks, reads, builds = (
        count_checks(monkeypatch),
        count_reads(monkeypatch),
        count_builds(monkeypatch),
    )
    code, out, err = run_cli(
        "eval", str(folder), "--model", str(tiny_model_dir), "--prompt", "terse", "--limit", "2",
        "--db", str(tmp_path / "d.db"), "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["n"] == 4  # two cases, two task samples
    assert checks == [(False, "terse")]
    assert reads["task.yaml"] == 1 and reads["base.yaml"] == 1
    assert sum(builds.values()) == 4


def test_a_check_that_fails_is_not_kept(tmp_path: Path) -> None:
    from harness.errors import UserError

    suite = load_suite(with_task(tmp_path / "s"))
    for _ in range(2):
        with pytest.raises(UserError, match="no prompt variant 'nope'"):
            suite.check_use(False, "nope")
    assert suite.check_use(False, "terse") is suite.check_use(False, "terse")
    assert suite.check_use(False) is not None and suite.check_use(False).system == "Answer briefly."


def test_spelling_reads_the_loaded_suite_never_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `suite` vocabulary comes from the rows the grader's suite holds: the files edited
    after load change nothing, and nothing loads the suite again."""
    from harness.grading.grader import Grader

    rubric = "rubric:\n  good:\n    - {id: spelled, type: spelling}\n"
    text = SUITE_YAML[: SUITE_YAML.index("rubric:")] + rubric
    folder = write_suite(tmp_path / "s", text, train=[{"function": "zorbulate", "module": "frob"}])
    suite = load_suite(folder)
    write_suite(folder, text, train=[{"function": "quuxify", "module": "frob"}])

    def no_reload(*args: Any) -> Any:
        raise AssertionError("the suite was loaded again")

    monkeypatch.setattr(loader, "load_suite", no_reload)
    case = suite.cases[0]
    (zorb, quux) = Grader(suite)(["It will zorbulate.", "It will quuxify."], [case, case])
    assert zorb[1]["spelled"]["passed"]
    assert not quux[1]["spelled"]["passed"] and "'quuxify'" in quux[1]["spelled"]["detail"]


def test_only_the_one_check_reads_what_the_suite_would_run() -> None:
    """A trust check written again anywhere else (the lm-eval bridge, a command) reads
    `needs_code`: only `check_use`'s function may, in all of harness/."""
    import ast

    root = Path(loader.__file__).resolve().parent.parent
    inside: list[int] = []
    elsewhere: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        checks = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        span = next(
            (range(n.lineno, (n.end_lineno or n.lineno) + 1) for n in checks
             if n.name == "_check_use" and path.name == "loader.py"),
            range(0),
        )  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "needs_code":
                if node.lineno in span:
                    inside.append(node.lineno)
                else:
                    elsewhere.append(f"{path.relative_to(root)}:{node.lineno}")
    assert inside and elsewhere == []
