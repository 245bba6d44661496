"""Write an imported test set as a suite folder, then validate it with the ordinary loader."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from harness.errors import Problem, UserError
from harness.importers import Imported, suite_name


def write(imported: Imported, out: Path, name: str | None, command: str) -> dict[str, Any]:
    """Create `out` (which must not exist or be empty) and return the import summary. The suite
    is written into a temporary folder beside `out`, validated there, and renamed into place:
    an interrupted import (even `kill -9`) leaves no half-written `out` behind."""
    parent = _check_out(out)
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
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name[:100]}.", suffix=".part", dir=parent))
    except OSError as e:  # /proc, a read-only folder, a file where a folder should be
        raise UserError(f"cannot create {out}: {e.strerror or e}") from None
    try:
        _write_files(imported, spec, tmp)
        summary = _summary(imported, suite, out)
        (tmp / "README.md").write_text(_readme(imported, summary, command), encoding="utf-8")
        from harness.suite.loader import load_suite

        load_suite(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; a suite folder is not
        os.rename(tmp, out)  # atomic; replaces `out` only if it is an empty folder
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, UserError):
            head = Problem("", "", "the imported suite does not validate:")
            raise UserError([head, *e.problems]) from None
        if isinstance(e, OSError):  # a full disk; `out` made meanwhile
            raise UserError(f"cannot create {out}: {e.strerror or e}") from None
        raise
    return summary


def _check_out(out: Path) -> Path:
    """The folder `out` will be created in; `out` must be absent or an empty folder."""
    try:
        if out.is_symlink():
            raise UserError(f"{out}: is a symbolic link; choose another --out")
        if out.suffix in (".db", ".sqlite", ".sqlite3"):  # where a store would be created
            raise UserError(f"{out}: a suite folder named like a database; choose another --out")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UserError(
                f"{out}: already exists and is not an empty folder; choose another --out"
            )
        return out.absolute().parent
    except OSError as e:  # a name too long, no permission
        raise UserError(f"cannot create {out}: {e.strerror or e}") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_files(imported: Imported, spec: dict[str, Any], folder: Path) -> None:
    (folder / "suite.yaml").write_text(
        yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8"
    )
    if imported.cases:
        lines = [json.dumps(c, ensure_ascii=False) + "\n" for c in imported.cases]
        (folder / "test.jsonl").write_text("".join(lines), encoding="utf-8")
    for rel, data in imported.extra_files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


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
