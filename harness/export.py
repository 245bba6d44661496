"""A run's cases as a table: JSONL (nested values as they are), CSV or Parquet (through pandas;
nested values as JSON text, plus one `check:<criterion>` column of pass/fail per criterion).

CSV is written for spreadsheets as well as parsers: every text cell is quoted (a lone carriage
return in an output would otherwise end the row for Python's csv and pandas), and a text cell
that begins with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's
advice against formula injection), so a spreadsheet shows it as text instead of running it.
JSONL and Parquet keep every value exactly."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from harness.comparison.sampling import case_fields
from harness.errors import UserError
from harness.store import Store

FORMATS = ("jsonl", "csv", "parquet")
NESTED = ("prompt", "criteria", "failed", "samples")  # JSON text in CSV and Parquet


def export_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    run = store.run(run_id)
    if run is None:
        raise UserError(f"no run '{run_id}' in {store.path} (see `tuneval runs list`)")
    rows = []
    for r in store.results(run_id):
        rows.append(
            {
                "run_id": run_id,
                "suite": run["suite"],
                "model": run["model"],
                "case_id": r["case_id"],
                "position": r["position"],
                "prompt": json.loads(r["prompt"]),
                "output": r["output"],
                "grade": r["grade"],
                "passed": r["grade"] != "bad",
                "criteria": r["criteria"],
                "failed": [k for k, c in r["criteria"].items() if not c["passed"]],
                "must_pass": r["must_pass"],
                "cached": r["cached"],
                "prompt_tokens": r["prompt_tokens"],
                "output_tokens": r["output_tokens"],
                "seconds": r["seconds"],
                **case_fields(r),  # k samples per case: pass share, pass@k, pass^k, each answer
            }
        )
    return rows


def _flat(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    checks = sorted({cid for r in rows for cid in r["criteria"]})
    flat = []
    for r in rows:
        row = {k: json.dumps(v, ensure_ascii=False) if k in NESTED else v
               for k, v in r.items()}  # fmt: skip
        for cid in checks:
            row[f"check:{cid}"] = r["criteria"][cid]["passed"] if cid in r["criteria"] else None
        flat.append(row)
    return pd.DataFrame(flat)


def write(
    rows: list[dict[str, Any]], fmt: str, out: Path | None, store: Path | None = None
) -> None:
    """Write to `out` (whole or not at all, never over the store), or to stdout (JSONL and CSV
    only)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}' ({', '.join(FORMATS)})")
    if fmt == "parquet" and out is None:
        raise UserError("parquet is binary: give --out FILE")
    if out is None:
        _write(rows, fmt, None)
        return
    from harness import outfile

    with outfile.replacing(out, store) as tmp:
        _write(rows, fmt, tmp)


def _write(rows: list[dict[str, Any]], fmt: str, out: Path | None) -> None:
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
        return
    frame = _flat(rows)
    if fmt == "csv":
        frame = frame.map(formula_safe)
        options: dict[str, Any] = {"index": False, "quoting": csv.QUOTE_NONNUMERIC}
        frame.to_csv(sys.stdout if out is None else out, **options)
        return
    frame.to_parquet(out, index=False)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: Any) -> Any:
    """A text cell a spreadsheet will not read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
