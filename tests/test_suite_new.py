"""`tuneval suites new`: a suite folder from a JSONL or Parquet table, split without leakage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

FUNCTIONS = {
    "dedent": "textwrap", "dumps": "json", "getcwd": "os", "sqrt": "math", "choice": "random",
    "deepcopy": "copy", "compile": "re", "exit": "sys", "sleep": "time", "rmtree": "shutil",
}  # fmt: skip


NEAR = (  # one word apart: Jaccard 0.89 on character 5-grams
    "In the Python standard library, which module holds the function that removes common "
    "leading whitespace?",
    "In the Python standard library, which module holds a function that removes common "
    "leading whitespace?",
)


def _rows() -> list[dict]:
    """Three phrasings per function, two the same but for case and punctuation; a near-duplicate
    pair; two rows without an input or a target."""
    rows = []
    for fn, module in FUNCTIONS.items():
        rows.append({"q": f"Which module holds {fn}?", "a": module, "fn": fn})
        rows.append({"q": f"which module holds {fn} ??", "a": module, "fn": fn})
        rows.append({"q": f"Name the module that defines {fn}", "a": module})
    rows += [{"q": q, "a": "textwrap"} for q in NEAR]
    return [*rows, {"q": "", "a": "nothing asked"}, {"q": "Nothing answered", "a": None}]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return path


@pytest.fixture(scope="module")
def made(source: Path) -> Path:
    """`suites new` on the JSONL source, once for the module (its outputs are only read)."""
    from harness.suite import new as suite_new

    out = source.parent / "made"
    src = suite_new.read_source(str(source))
    suite_new.write(out, "made", src, str(source), "q", "a", 8, 0, "tuneval suites new made")
    return out


def _split_of(folder: Path) -> dict[str, str]:
    return {
        r["q"]: split
        for split in ("test", "validation", "train")
        for r in map(json.loads, (folder / f"{split}.jsonl").read_text().splitlines())
    }


def test_new_from_jsonl_validates_and_keeps_near_duplicates_together(
    made: Path, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.suite.leakage import near_groups
    from harness.suite.loader import load_suite

    s = load_suite(made)
    assert len(s.cases) == 8 and len(s.validation or []) == 3 and len(s.train or []) == 21
    assert [c.type for c in s.spec.rubric.good] == ["exact"]  # one-word targets: labels
    bad = [c.id for c in s.spec.rubric.bad]
    assert {"too-long", "repetitive", "misspelled"} <= set(bad)
    where = _split_of(made)
    for fn in FUNCTIONS:  # each duplicate pair lands on one side
        assert where[f"Which module holds {fn}?"] == where[f"which module holds {fn} ??"]
    assert where[NEAR[0]] == where[NEAR[1]]
    texts = list(where)
    groups = near_groups(texts)
    for side, text in zip(groups, texts, strict=True):
        assert {where[t] for g, t in zip(groups, texts, strict=True) if g == side} == {where[text]}
    assert sum(1 for g in set(groups) if groups.count(g) > 1) == 11  # the pairs, and no more
    ids = [c["id"] for c in s.cases]
    assert all(i.isdigit() for i in ids) and "fn" in s.cases[0]  # row index; other columns kept
    readme = (made / "README.md").read_text()
    assert "| test | 8 |" in readme and "2 left out" in readme and "sha256 `" in readme

    # through the command line: the same split for the same seed, another for another seed
    args = ["suites", "new", "again", "--from", str(source), "--input", "q", "--target", "a"]
    code, out, err = run_cli(*args, "--test-size", "8", "--out", str(tmp_path / "a"), capsys=capsys)
    assert code == 0 and "8 test, 3 validation, 21 train" in out, err
    assert _split_of(tmp_path / "a") == where
    code, _, err = run_cli(
        *args, "--test-size", "8", "--seed", "7", "--out", str(tmp_path / "b"), capsys=capsys
    )
    assert code == 0, err
    assert _split_of(tmp_path / "b") != where
    code, out, _ = run_cli("suites", "validate", str(tmp_path / "b"), capsys=capsys)
    assert code == 0 and "ok" in out


def test_new_from_parquet_with_sentence_targets(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.suite import new as suite_new
    from harness.suite.loader import load_suite

    rows = [
        {"id": f"q{i}", "question": f"What does {fn} do?",
         "answer": f"It is the {module} function called {fn}, used for task number {i}."}
        for i, (fn, module) in enumerate(FUNCTIONS.items())
    ]  # fmt: skip
    path = tmp_path / "qa.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    src = suite_new.read_source(str(path))
    summary = suite_new.write(
        tmp_path / "qa", "qa", src, str(path), "question", "answer", None, 1, "cmd"
    )
    assert summary["counts"] == {"test": 2, "validation": 1, "train": 7}
    s = load_suite(tmp_path / "qa")
    assert [c.type for c in s.spec.rubric.good] == ["similarity"]
    assert {c["id"] for c in s.cases} <= {r["id"] for r in rows}  # the source's own ids


def test_bad_input_exits_2_and_writes_nothing(
    source: Path, made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["suites", "new", "x", "--from", str(source), "--out", str(tmp_path / "x")]
    for extra, message in (
        (["--input", "nope", "--target", "a"], "--input nope: no such column (columns: q, a, fn)"),
        (["--input", "q", "--target", "a", "--test-size", "40"], "leaves no training rows"),
    ):
        code, _, err = run_cli(*base, *extra, capsys=capsys)
        assert code == 2 and message in err and "Traceback" not in err, err
        assert not (tmp_path / "x").exists()
    args = ["suites", "new", "x", "--input", "q", "--target", "a"]
    code, _, err = run_cli(*args, "--from", "missing/none.csv", capsys=capsys)
    assert code == 2 and "no such file, nor a Hub dataset id" in err
    code, _, err = run_cli(*args, "--from", str(source), "--out", str(made), capsys=capsys)
    assert code == 2 and "already exists" in err


@pytest.mark.slow  # trains two steps: over ten seconds on a shared CPU
def test_loop_runs_on_a_new_suite(
    made: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["loop", str(made), "--base", str(tiny_model_dir), "--db", str(tmp_path / "t.db")]
    for item in ("max_steps=2", "batch_size=2", "max_length=64", "val_examples=0"):
        args += ["--set", item]
    code, out, err = run_cli(*args, "--limit", "8", "--json", capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["comparison"]["n"] == 8 and result["train"]["steps"] == 2
