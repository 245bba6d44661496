"""`tuneval grade` stores outputs produced elsewhere as a run; `tuneval runs export` writes any
run's cases as JSONL, CSV or Parquet."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import CASES, run_cli


def _outputs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """Answers for every case but the last, as another system gave them."""
    rows = [{"id": c["id"], "output": c["module"]} for c in CASES[:-1]]
    rows[1]["output"] = "no idea"
    return _outputs(tmp_path / "outputs.jsonl", rows)


def test_grade_stores_a_run_that_compare_pairs(
    tmp_path: Path, mini_suite: Path, tiny_model_dir: Path, recorded: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    db = str(tmp_path / "ws.db")
    code, out, err = run_cli(
        "grade", str(mini_suite), "--outputs", str(recorded), "--name", "api-model", "--db", db,
        "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    graded = json.loads(out)
    assert graded["n"] == len(CASES) - 1 and graded["missing"] == 1
    assert graded["grades"] == {"bad": 1, "good": 0, "better": 4}
    assert graded["outputs_sha256"] == hashlib.sha256(recorded.read_bytes()).hexdigest()

    code, out, err = run_cli(
        "eval", str(mini_suite), "--model", str(tiny_model_dir), "--db", db, "--json",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    evaluated = json.loads(out)
    assert set(evaluated) <= set(graded)  # the same object, plus what only grading knows
    assert set(graded) - set(evaluated) == {"missing", "outputs_sha256"}

    from harness.store import Store

    with Store(db) as store:
        run = store.run(graded["run_id"])
    assert run["model_kind"] == "outputs" and run["model"] == "api-model"
    assert run["model_fingerprint"] == graded["outputs_sha256"]

    code, out, err = run_cli(
        "compare", str(tiny_model_dir), "api-model", "--suite", str(mini_suite), "--db", db,
        "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    comparison = json.loads(out)
    assert comparison["n"] == len(CASES) - 1  # paired on the cases both runs have
    assert comparison["unpaired"]


def test_unknown_ids_and_bad_lines_write_nothing(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ws.db"
    lines = [{"id": "a", "output": "x"}, {"id": "zz", "output": "y"}, {"id": "yy", "output": "z"}]
    bad_ids = _outputs(tmp_path / "a.jsonl", lines)
    code, _, err = run_cli("grade", str(mini_suite), "--outputs", str(bad_ids), "--name", "n",
                           "--db", str(db), capsys=capsys)  # fmt: skip
    assert code == 2 and "2 ids are not cases of suite 'mini': zz, yy" in err
    broken = tmp_path / "b.jsonl"
    broken.write_text(
        '{"id": "a", "output": "x"}\nnot json\n{"id": "b"}\n{"id": "a", "output": 1}\n'
        '{"id": "a", "output": "again"}\n{"id": "c", "output": "\\ud800"}\n'
        '{"id": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    )
    code, _, err = run_cli("grade", str(mini_suite), "--outputs", str(broken), "--name", "n",
                           "--db", str(db), capsys=capsys)  # fmt: skip
    assert code == 2
    for expected in (
        "b.jsonl:line 2: invalid JSON",
        "b.jsonl:line 3: each line needs",
        "b.jsonl:line 4: 'output' must be text",
        "b.jsonl:line 5: id 'a' again",
        "b.jsonl:line 6: text with a lone surrogate",
        "b.jsonl:line 7: invalid JSON: nested too deeply",
    ):
        assert expected in err, err  # fmt: skip
    code, _, err = run_cli("grade", str(mini_suite), "--outputs", str(tmp_path), "--name", "n",
                           "--db", str(db), capsys=capsys)  # fmt: skip
    assert code == 2 and "is a folder, not a file" in err
    from harness.store import Store

    with Store(db) as store:
        assert store.runs() == []


def test_a_name_that_means_a_model_is_refused(
    tmp_path: Path, mini_suite: Path, recorded: Path, store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run would become that model's latest run for compare, gate and the leaderboard."""
    from tests.compare_helpers import answers, fake_run

    fake_run(store, mini_suite, "evaluated", answers())  # a model with runs of its own
    for name, why in (
        ("smollm2-135m-instruct", "is the packaged default model"),
        ("evaluated", "already names a model with runs (local)"),
    ):
        code, _, err = run_cli("grade", str(mini_suite), "--outputs", str(recorded), "--name",
                               name, "--db", str(store.path), capsys=capsys)  # fmt: skip
        assert code == 2 and why in err, err
    assert [r["model"] for r in store.runs()] == ["evaluated"]
    for _ in range(2):  # its own name again: another outputs run of the same model
        code, _, err = run_cli("grade", str(mini_suite), "--outputs", str(recorded), "--name",
                               "api", "--db", str(store.path), capsys=capsys)  # fmt: skip
        assert code == 0, err


def test_export_formats(
    tmp_path: Path, mini_suite: Path, recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    db = str(tmp_path / "ws.db")
    code, out, _ = run_cli("grade", str(mini_suite), "--outputs", str(recorded), "--name", "m",
                           "--db", db, "--json", capsys=capsys)  # fmt: skip
    run_id = json.loads(out)["run_id"]

    code, out, err = run_cli("runs", "export", run_id, "--db", db, capsys=capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["case_id"] for r in rows] == [c["id"] for c in CASES[:-1]]
    first = rows[0]
    assert first["prompt"][-1] == {"role": "user", "content": "Which module holds dedent?"}
    assert first["output"] == "textwrap" and first["grade"] == "better"
    assert first["criteria"]["names-module"]["passed"] is True
    assert rows[1]["failed"] == ["names-module", "bare"]

    for fmt in ("csv", "parquet"):
        path = tmp_path / f"run.{fmt}"
        code, _, err = run_cli("runs", "export", run_id, "--format", fmt, "--out", str(path),
                               "--db", db, capsys=capsys)  # fmt: skip
        assert code == 0, err
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
        assert list(frame["case_id"]) == [c["id"] for c in CASES[:-1]]
        assert list(frame["check:names-module"]) == [True, False, True, True, True]
        assert json.loads(frame["criteria"][0])["bare"]["passed"] is True
    code, _, err = run_cli("runs", "export", run_id, "--format", "parquet", "--db", db,
                           capsys=capsys)  # fmt: skip
    assert code == 2 and "--out" in err
