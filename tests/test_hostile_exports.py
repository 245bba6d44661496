"""CSV export of hostile outputs: every row reads back whole (Python's csv and pandas), and no
cell starts like a spreadsheet formula."""

from __future__ import annotations

import csv
from pathlib import Path

from harness import export

OUTPUTS = ["plain", "lone\rreturn", "line\nbreak", "=HYPERLINK(\"http://x\")", "+1+1", "-2+3",
           "@SUM(A1)", "\tTAB", "quote \" inside", "7"]  # fmt: skip


def test_csv_reads_back_whole_and_formula_safe(tmp_path: Path) -> None:
    import pandas as pd

    rows = [{"case_id": f"c{i}", "output": o, "passed": i % 2 == 0, "seconds": 0.5,
             "prompt": [], "criteria": {"k": {"passed": True}}, "failed": []}
            for i, o in enumerate(OUTPUTS)]  # fmt: skip
    path = tmp_path / "run.csv"
    export._write(rows, "csv", path)
    with path.open(newline="", encoding="utf-8") as f:
        read = list(csv.DictReader(f))
    assert [r["case_id"] for r in read] == [f"c{i}" for i in range(len(OUTPUTS))]
    frame = pd.read_csv(path, keep_default_na=False)
    assert len(frame) == len(OUTPUTS) and list(frame["passed"])[:2] == [True, False]
    for got, sent in zip(read, OUTPUTS, strict=True):
        risky = sent[0] in "=+-@\t\r"
        assert got["output"] == ("'" + sent if risky else sent)


def test_outputs_never_replace_a_database_or_suite_data(tmp_path: Path) -> None:
    """`runs export --out other.db`, `data synth --out qa/test.jsonl`: refused, files intact."""
    import sqlite3

    import pytest

    from harness import outfile
    from harness.errors import UserError

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.close()
    suite = tmp_path / "qa"
    suite.mkdir()
    (suite / "suite.yaml").write_text("name: qa\n")
    (suite / "test.jsonl").write_text('{"id": "a"}\n')
    for target, why in ((other, "SQLite database"), (suite / "test.jsonl", "file of the suite")):
        before = target.read_bytes()
        with pytest.raises(UserError, match=why):
            outfile.write_text(target, "x")
        assert target.read_bytes() == before
    outfile.write_text(suite / "new.jsonl", "{}\n")  # a new file beside a suite is fine
    outfile.write_text(tmp_path / "plain.txt", "x")
    outfile.write_text(tmp_path / "plain.txt", "y")  # and replacing an ordinary file
