"""Model and run names: no markup, control characters, path separators, or clashes with run ids,
local model folders or the packaged default; refused before anything is stored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.evaluation.names import check_name

BAD = {
    "[b]smollm2-135m-instruct[/b]": "no markup",
    "[link=file:///etc/passwd]x": "no markup",
    "[link=x]y": "no markup",
    "a\x1b[31mred": "no markup",
    "a\x1bred": "no markup",
    "a:b?c": "letters, digits",
    "two\nlines": "no markup",
    "": "empty",
    "  ": "empty",
    "smollm2-135m-instruct": "packaged default",
    "a/b": "path separator",
    "x" * 101: "longer than",
}


@pytest.mark.parametrize("name", list(BAD), ids=[ascii(n)[:30] for n in BAD])
def test_bad_names_refused(name: str) -> None:
    with pytest.raises(UserError, match=BAD[name]):
        check_name(name, "--name")


def test_plain_names_pass_and_clashes_refused(
    tmp_path: Path, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("api", "gpt-4o mini", "model_v2.1", "Qwen2.5:7b", "modèle"):
        check_name(name, "--name", store)
    monkeypatch.chdir(tmp_path)
    os.mkdir("local-model")
    with pytest.raises(UserError, match="a folder here"):
        check_name("local-model", "--name")


def test_grade_refuses_a_markup_name_before_storing(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import run_cli

    outputs = tmp_path / "out.jsonl"
    outputs.write_text('{"id": "a", "output": "textwrap"}\n')
    db = tmp_path / "ws.db"
    for name, code_wanted in (("[b]smollm2-135m-instruct[/b]", 2), ("api", 0)):
        args = ("--outputs", str(outputs), "--name", name, "--db", str(db))
        code, _, err = run_cli("grade", str(mini_suite), *args, capsys=capsys)
        assert code == code_wanted and "Traceback" not in err, err
        if code == 2:
            assert "no markup" in err
