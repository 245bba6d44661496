"""Importers: other tools' test sets as ordinary tuneval suite folders.

Each importer is a module with `read(source: Path, options: ImportOptions) -> Imported`, one per
format, registered in `FORMATS`. An importer maps every check of the source to a registered
criterion that gives the source tool's verdict on the same output, or refuses it with a located
problem (checks that need a model, run code, or mean something tuneval cannot reproduce).
`harness.importers.writer` turns the result into a suite folder (suite.yaml, test.jsonl, a
README with provenance and the mapping) that `load_suite` then validates.

May import: harness.errors, harness.safe, harness.criteria, harness.suite, harness.generation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from harness.errors import Problem, UserError

# What malformed input can raise from deep in an importer (a value of the wrong type, a 100,000-deep
# document); MemoryError is not among them: the readers' size bounds keep it from happening.
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError,
              ArithmeticError)  # fmt: skip

_AT: ContextVar[str] = ContextVar("import_at", default="")

FORMATS = {
    "promptfoo": "harness.importers.promptfoo",
    "openai-evals": "harness.importers.openai_evals",
    "inspect": "harness.importers.inspect_data",
    "lm-eval": "harness.importers.lmeval_task",
}


@dataclass(frozen=True)
class ImportOptions:
    name: str | None = None  # suite name; default: from the output folder
    eval: str | None = None  # openai-evals: which eval of a registry file
    scorer: str | None = None  # inspect: match | includes | exact | choice
    prompt: int = 0  # promptfoo: which of the config's prompts
    skip_refused: bool = False  # import the rest when some checks are refused


@dataclass
class Imported:
    """What an importer read: everything the suite folder will hold, and how it was mapped."""

    tool: str
    description: str
    prompt: dict[str, Any]  # suite.yaml's prompt: section
    cases: list[dict[str, Any]]
    rubric: dict[str, list[dict[str, Any]]]
    generation: dict[str, Any] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)  # files read, for provenance
    extra_files: dict[str, bytes] = field(default_factory=dict)  # copied as they are
    lm_eval: list[str] = field(default_factory=list)  # task files among extra_files
    mapped: Counter[str] = field(default_factory=Counter)  # "contains -> contains" -> count
    refused: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def map(self, source: str, target: str) -> None:
        self.mapped[f"{source} -> {target}"] += 1


def chat_messages(value: Any) -> list[dict[str, str]] | None:
    """A sample's input as chat messages: text is one user message; a list must hold
    {role, content} messages (system, user or assistant, text content). None otherwise."""
    from harness.suite.loader import ROLES

    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        return None
    out = []
    for m in value:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return None
        if not isinstance(m.get("content"), str):
            return None
        out.append({"role": m["role"], "content": m["content"]})
    return out


@contextmanager
def at(where: str) -> Iterator[None]:
    """The record an importer is reading (`samples.jsonl:line 12`), named by the catch-all in
    `read` should something below it fail in a way no check anticipated. A failure leaves it
    set, on purpose: that is where the catch-all looks."""
    token = _AT.set(where)
    yield
    _AT.reset(token)


def read(fmt: str, source: Path, options: ImportOptions) -> Imported:
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    if not source.exists():
        raise UserError(f"{source}: no such file or folder")
    _AT.set("")
    try:
        imported: Imported = import_module(FORMATS[fmt]).read(source, options)
    except _MALFORMED as e:
        # A shape of input no check above anticipated: still the input's fault, said in one line
        # naming the source and the record being read, never a traceback.
        why = "nested too deeply" if isinstance(e, RecursionError) else f"{type(e).__name__}: {e}"
        place = _AT.get() or str(source)
        raise UserError(f"{place}: cannot import this {fmt} source: {why}"[:400]) from None
    if imported.refused and not options.skip_refused:
        more = "; pass --skip-refused to import the rest without them"
        raise UserError(
            [*imported.refused, Problem("", "", f"{len(imported.refused)} refused{more}")]
        )
    return imported


def suite_name(text: str) -> str:
    """A valid suite name from a folder or file name."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-._")
    return name or "imported"


def literal(text: str) -> str:
    """Text that tuneval's `{field}` templating leaves exactly as it is."""
    return text.replace("{", "{{").replace("}", "}}")
