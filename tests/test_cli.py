"""The command line as a user meets it: exit codes, messages, no tracebacks, nothing written on
bad input, and no torch on the --help path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SUITE_YAML, cli, run_cli, write_suite


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; sys.argv=['tuneval','--help']\n"
        "from harness.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('torch', 'transformers', 'streamlit', 'scipy') if m in sys.modules]\n"
        "print('HEAVY', bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    ).stdout
    assert "HEAVY []" in out
    assert "eval" in out and "suites" in out


def test_validate_ok_and_bad(tmp_path: Path, mini_suite: Path) -> None:
    ok = cli("suites", "validate", str(mini_suite))
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = write_suite(tmp_path / "bad", SUITE_YAML.replace("type: contains", "type: containz"))
    res = cli("suites", "validate", str(mini_suite), str(bad))
    assert res.returncode == 2
    assert "suite.yaml:line" in res.stderr and "containz" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_bad_suite_writes_nothing(tmp_path: Path) -> None:
    bad = write_suite(tmp_path / "bad")
    (bad / "test.jsonl").write_text('{"id": "a", "function": "f", "module": "m"}\n{"id": "a"\n')
    db = tmp_path / "store" / "t.db"
    res = cli("eval", str(bad), "--model", "smollm2-135m-instruct", db=db)
    assert res.returncode == 2
    assert "test.jsonl:line 2: invalid JSON" in res.stderr
    assert "Traceback" not in res.stderr
    assert not db.exists()


def test_unknown_model_exit_2(tmp_path: Path, mini_suite: Path) -> None:
    res = cli("eval", str(mini_suite), "--model", str(tmp_path / "nothing"), db=tmp_path / "t.db")
    assert res.returncode == 2 and "not found" in res.stderr and "Traceback" not in res.stderr


def test_eval_json_and_runs(tmp_path: Path, mini_suite: Path, tiny_model_dir: Path) -> None:
    db = tmp_path / "t.db"
    res = cli("eval", str(mini_suite), "--model", str(tiny_model_dir), "--json", db=db)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) >= {"run_id", "suite", "model", "n", "grades", "criteria", "cached"}
    assert data["n"] == 6 and sum(data["grades"].values()) == 6 and data["cached"] == 0
    listed = json.loads(cli("runs", "list", "--json", db=db).stdout)
    assert [r["run_id"] for r in listed] == [data["run_id"]]
    shown = json.loads(cli("runs", "show", data["run_id"], "--json", db=db).stdout)
    assert shown["run_id"] == data["run_id"] and len(shown["cases"]) == 6
    case = shown["cases"][0]
    assert set(case) == {"id", "output", "grade", "criteria"}
    assert set(case["criteria"]["empty"]) == {"passed", "score", "detail"}
    table = cli("eval", str(mini_suite), "--model", str(tiny_model_dir), db=db)
    assert table.returncode == 0 and "pass rate" in table.stdout and "6 from cache" in table.stdout
    missing = cli("runs", "show", "run-nope", db=db)
    assert missing.returncode == 2 and "no run 'run-nope'" in missing.stderr


def test_limit_must_be_positive(tmp_path: Path, mini_suite: Path) -> None:
    res = cli("eval", str(mini_suite), "--limit", "0", db=tmp_path / "t.db")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_options_out_of_range_are_usage_errors(tmp_path: Path, mini_suite: Path) -> None:
    db = tmp_path / "t.db"
    for args in (["gate", "a", "b", "--alpha", "1.5"], ["compare", "a", "b", "--alpha", "0"]):
        res = cli(*args, db=db)
        assert res.returncode == 2 and "--alpha" in res.stderr and "Traceback" not in res.stderr
    res = cli("loop", str(mini_suite), "--prompt-baseline", "", db=db)
    assert res.returncode == 2 and "--prompt-baseline" in res.stderr and not db.exists()


def test_main_run_twice_in_one_process_registers_commands_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The tests call `main` in-process hundreds of times: a registration per call doubled every
    command each time, and each later call grew slower (the whole suite with it)."""
    from harness.cli import app

    run_cli("suites", "list", "/nonexistent", capsys=capsys)
    before = [len(app.registered_commands), len(app.registered_groups)]
    run_cli("suites", "list", "/nonexistent", capsys=capsys)
    assert [len(app.registered_commands), len(app.registered_groups)] == before
