"""Hostile suite folders: each is refused by `suites validate` with exit 2 and one located line
per problem (never a traceback), or loads as the user meant. The README's reliability table
points here."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CASES, LM_TASK, SUITE_YAML, run_cli, write_suite

DOC = json.dumps({"q": "2+2?", "choices": ["4", "5"], "gold": 0}) + "\n"


def _yaml(old: str, new: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / "suite.yaml"
        path.write_text(path.read_text().replace(old, new, 1))

    return change


def _test_file(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "test.jsonl").write_text(text)


def _task(text: str | bytes, *, link: str | None = None) -> Callable[[Path], None]:
    """The suite also names an lm-eval task file holding `text` (or a link to `link`)."""

    def change(folder: Path) -> None:
        (folder / "suite.yaml").write_text(SUITE_YAML + "lm_eval: [task.yaml]\n")
        (folder / "docs.jsonl").write_text(DOC)
        task = folder / "task.yaml"
        if link:
            task.symlink_to(link)
        elif isinstance(text, bytes):
            task.write_bytes(text)
        else:
            task.write_text(text)

    return change


def _link_data(target: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        (folder / "train.jsonl").unlink()
        (folder / "train.jsonl").symlink_to(target)

    return change


def _outside(folder: Path) -> None:
    (folder.parent / "outside.jsonl").write_text(json.dumps(CASES[0]) + "\n")
    _yaml("test: test.jsonl", "test: ../outside.jsonl")(folder)


def _sparse_train(folder: Path) -> None:
    with open(folder / "train.jsonl", "wb") as f:
        f.truncate(3 << 30)  # 3 GiB that take no disk: refused before a byte is read


def _fifo(folder: Path) -> None:
    (folder / "train.jsonl").unlink()
    os.mkfifo(folder / "train.jsonl")


BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'lol'}]\n" for i in range(9))
ALIAS_BOMB = SUITE_YAML.replace(
    '    - {id: bare, type: exact, value: "{module}"}\n',
    "    - {id: bare, type: contains, value: *l8}\n",
)

# (id, what to do to a good suite, a text the error line must hold)
HOSTILE: list[tuple[str, Callable[[Path], None], str]] = [
    ("name-too-long", _yaml("test: test.jsonl", "test: " + "a" * 300 + ".jsonl"), "too long"),
    ("tag-int", _yaml("version: 1", "version: !!int x"), "line 2, column 10"),
    ("tag-float", _yaml("version: 1", "version: !!float x"), "float 'x'"),
    ("tag-bool", _yaml("version: 1", "version: !!bool maybe"), "bool 'maybe'"),
    ("python-tag", _yaml("version: 1", "version: !!python/object:os.system x"), "broken YAML"),
    ("version-yes", _yaml("version: 1", "version: yes"), "(version): Input should be"),
    ("version-sexagesimal", _yaml("version: 1", "version: 1:20"), "(version): Input should"),
    ("duplicate-key", _yaml("version: 1", "version: 1\nversion: 2"), "duplicate key 'version'"),
    (
        "deep-yaml",
        _yaml("description:", "x: " + "[" * 5000 + "]" * 5000 + "\ndescription:"),
        "nesting",
    ),
    ("alias-bomb", lambda f: (f / "suite.yaml").write_text(BOMB + ALIAS_BOMB), "aliases expand"),
    (
        "deep-json",
        _test_file('{"id": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
        "test.jsonl:line 1",
    ),
    ("nested-json", _test_file('{"id": "a", "x": ' + "[" * 500 + "]" * 500 + "}\n"), "nested"),
    ("huge-int", _test_file('{"id": ' + "9" * 5000 + "}\n"), "test.jsonl:line 1"),
    (
        "lone-surrogate",
        _test_file('{"id": "a", "function": "f\\ud800", "module": "m"}\n'),
        "lone surrogate",
    ),
    ("empty-test", _test_file(""), "no cases"),
    ("not-utf8", lambda f: (f / "test.jsonl").write_bytes(b'{"id": "caf\xe9"}\n'), "not UTF-8"),
    ("absolute-data", _yaml("test: test.jsonl", "test: /etc/passwd"), "absolute path"),
    ("dotdot-data", _outside, "outside the suite folder"),
    ("symlink-data", _link_data("/etc/passwd"), "outside the suite folder"),
    ("proc-kmsg", _link_data("/proc/kmsg"), "outside the suite folder"),
    ("fifo-data", _fifo, "not a regular file"),
    (
        "folder-data",
        lambda f: ((f / "train.jsonl").unlink(), (f / "train.jsonl").mkdir()),
        "not a regular file",
    ),
    ("3-gib-data", _sparse_train, "3.0 GiB, over the"),
    ("task-list", _task("- a\n- b\n"), "must be a mapping"),
    ("task-scalar", _task("just text\n"), "must be a mapping"),
    (
        "task-data-files-5",
        _task(LM_TASK.replace("    test: docs.jsonl", "    test: 5")),
        "5 is not a file name",
    ),
    ("task-not-utf8", _task(b"task: caf\xe9\n"), "not UTF-8"),
    ("task-link-passwd", _task("", link="/etc/passwd"), "outside the suite folder"),
    (
        "task-data-passwd",
        _task(LM_TASK.replace("test: docs.jsonl", "test: /etc/passwd")),
        "outside the suite folder",
    ),
    (
        "task-metric-list-5",
        _task(LM_TASK.replace("metric_list:\n  - metric: acc", "metric_list: 5")),
        "metric_list must be a list",
    ),
    (
        "task-unknown-metric",
        _task(LM_TASK.replace("metric: acc", "metric: bleurt")),
        "not one lm-eval defines",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_suite_is_one_located_line_each(
    tmp_path: Path, change: Callable[[Path], None], expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    folder = write_suite(tmp_path / "s")
    change(folder)
    code, out, err = run_cli("suites", "validate", str(folder), capsys=capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), err
    assert all(str(tmp_path) in line for line in lines), err  # each names its file
    assert any(expected in line for line in lines), err
    assert "Traceback" not in err


def test_many_keys_are_reported_briefly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """50,000 stray keys: linear work, and the report stops at 50 lines and a count."""
    folder = write_suite(tmp_path / "s", SUITE_YAML + "".join(f"k{i}: 1\n" for i in range(50_000)))
    code, _, err = run_cli("suites", "validate", str(folder), capsys=capsys)
    assert code == 2 and "and 49950 more problems" in err and len(err.splitlines()) == 51


def test_anchors_merges_and_yaml_12_scalars_still_work(tmp_path: Path) -> None:
    from harness.suite.loader import load_suite

    text = SUITE_YAML.replace(
        "    - {id: empty, type: empty}\n", "    - &empty {id: empty, type: empty}\n"
    )
    text = text.replace("  better:\n", "  better:\n    - {<<: *empty, id: empty-too}\n")
    text = text.replace(
        'value: "{module}"}\n  better', 'value: "{module}", case_sensitive: no}\n  better'
    )
    s = load_suite(write_suite(tmp_path / "s", text))
    assert s.spec.rubric.better[0].id == "empty-too" and s.spec.rubric.better[0].type == "empty"
    assert s.spec.rubric.good[0].params()["case_sensitive"] == "no"  # YAML 1.2: text, not false


def test_validate_reports_every_suite_and_goes_on(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_suite(tmp_path / "bad")
    _yaml("version: 1", "version: !!int x")(bad)
    worse = write_suite(tmp_path / "worse")
    _test_file('{"id": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")(worse)
    code, out, err = run_cli(
        "suites", "validate", str(bad), str(mini_suite), str(worse), capsys=capsys
    )
    assert code == 2 and f"ok {mini_suite}" in out
    assert str(bad) in err and str(worse) in err and "Traceback" not in err


def test_suites_list_on_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli("suites", "list", str(tmp_path / "nope"), capsys=capsys)
    assert code == 2 and "no such folder" in err


def test_a_file_inside_a_suite_is_not_the_suite(
    mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli("eval", str(mini_suite / "test.jsonl"), capsys=capsys)
    assert code == 2 and "a file inside a suite, not the suite folder" in err


@pytest.mark.parametrize("size", ["0", "-1", "1000000000000"])
def test_eval_batch_size_out_of_range(
    tmp_path: Path, mini_suite: Path, size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tuneval.db"
    code, _, err = run_cli(
        "eval", str(mini_suite), "--batch-size", size, "--db", str(db), capsys=capsys
    )
    assert code == 2 and "--batch-size" in err and "Traceback" not in err and not db.exists()


def test_without_libyaml_the_composer_is_bounded_too() -> None:
    """PyYAML built without libyaml composes in Python, one recursion per level."""
    import yaml

    from harness.safe import yamlsafe

    class PurePython(yamlsafe.Strict, yaml.SafeLoader):
        pass

    with pytest.raises(yaml.YAMLError, match="nested more than 64 levels"):
        yamlsafe.load("x: " + "[" * 5000 + "]" * 5000, PurePython)
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'"):
        yamlsafe.load("a: 1\na: 2\n", PurePython)
    assert yamlsafe.load("a: [1, {b: c}]\n", PurePython)[1] == {"a": [1, {"b": "c"}]}
