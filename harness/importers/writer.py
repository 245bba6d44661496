"""Write an imported test set as a suite folder, then validate it with the ordinary loader."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from harness.errors import Problem, UserError
from harness.importers import Imported, suite_name


def write(imported: Imported, out: Path, name: str | None, command: str) -> dict[str, Any]:
    """Create `out` (which must not exist or be empty) and return the import summary."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not an empty folder; choose another --out")
    suite = name or suite_name(out.resolve().name)
    spec: dict[str, Any] = {"name": suite, "version": 1, "description": imported.description}
    if imported.cases:
        spec["prompt"] = imported.prompt
        if imported.generation:
            spec["generation"] = imported.generation
        spec["data"] = {"test": "test.jsonl"}
        spec["rubric"] = imported.rubric
    if imported.lm_eval:
        spec["lm_eval"] = imported.lm_eval
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / "suite.yaml").write_text(
            yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8"
        )
        if imported.cases:
            lines = [json.dumps(c, ensure_ascii=False) + "\n" for c in imported.cases]
            (out / "test.jsonl").write_text("".join(lines), encoding="utf-8")
        for rel, data in imported.extra_files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
        summary = _summary(imported, suite, out)
        (out / "README.md").write_text(_readme(imported, summary, command), encoding="utf-8")
        from harness.suite import load_suite

        load_suite(out)
    except BaseException as e:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        if isinstance(e, UserError):
            head = Problem("", "", "the imported suite does not validate:")
            raise UserError([head, *e.problems]) from None
        raise
    return summary


def _summary(imported: Imported, suite: str, out: Path) -> dict[str, Any]:
    return {
        "suite": suite,
        "path": str(out),
        "tool": imported.tool,
        "cases": len(imported.cases),
        "lm_eval_tasks": list(imported.lm_eval),
        "mapped": dict(sorted(imported.mapped.items())),
        "refused": [str(p) for p in imported.refused],
        "notes": list(imported.notes),
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _readme(imported: Imported, summary: dict[str, Any], command: str) -> str:
    sources = "\n".join(f"- `{p}` (sha256 `{_sha(p)[:16]}`)" for p in imported.sources)
    mapped = "\n".join(f"| {k} | {v} |" for k, v in summary["mapped"].items()) or "| (none) | |"
    refused = "\n".join(f"- {r}" for r in summary["refused"]) or "- nothing"
    notes = "\n".join(f"- {n}" for n in summary["notes"]) or "- nothing"
    return f"""# {summary["suite"]}

Imported from {imported.tool} by `{command}` on {time.strftime("%Y-%m-%d")}.
{imported.description}

## Provenance

{sources}

Licence: that of the source files above; this folder only converts them.
Rebuild: run the import command again on the same source.

Each case keeps the source's own identity in its `source` field (file, line or index, and the
source's id or description) and the source's metadata in `metadata`.

## Checks

Each source check became the criterion that gives the same verdict on the same output:

| source check -> criterion | cases |
|---|---|
{mapped}

Refused (a model, code, or a meaning tuneval cannot reproduce):

{refused}

Notes:

{notes}

Measure a model with `tuneval eval {summary["path"]} --model SPEC`; grade outputs produced
elsewhere with `tuneval grade {summary["path"]} --outputs FILE.jsonl --name NAME`.
"""
