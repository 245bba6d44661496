"""Inspect AI: a dataset of Samples (JSONL, JSON or CSV with Inspect's default field names
`input`, `target`, `choices`, `id`, `metadata`) scored by a built-in scorer named on the command
line, since Inspect's data carries none (`--scorer match|includes|exact|choice`).

`input` is text (the user's message) or chat messages; `target` text or a list (any one
matches); CSV `choices` split on commas, or on white space when there is no comma, as Inspect
reads them. `choice` renders the question as Inspect's `multiple_choice` solver does (its
single- or multiple-answer template, options lettered "A) ...", past Z "1) ..." to "9) ...") and
grades the "ANSWER: X" line with Inspect's parser; a sample with more than 35 choices is refused,
since its letters would stop being single characters.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from harness.errors import Problem, UserError
from harness.importers import Imported, ImportOptions, at, chat_messages
from harness.importers import source as files

SCORERS = {
    "match": {"id": "match", "type": "answer-match", "value": "{target}"},
    "includes": {"id": "includes", "type": "contains", "value": "{target}"},
    "exact": {"id": "exact", "type": "exact-normalized", "value": "{target}"},
    "choice": {"id": "choice", "type": "answer-letter", "answer": "{target}", "choices": "choices"},
}
MAX_CHOICES = 35  # A..Z, then 1..9: each answer one character
SINGLE = (
    "Answer the following multiple choice question. The entire content of your response should "
    "be of the following format: 'ANSWER: $LETTER' (without quotes) where LETTER is one of "
    "{letters}.\n\n{question}\n\n{choices}"
)
MULTIPLE = (
    "Answer the following multiple choice question where multiple answers may be correct. The "
    "entire content of your response should be of the following format: 'ANSWER: $LETTERS' "
    "(without quotes) where LETTERS is one or more of {letters}.\n\n{question}\n\n{choices}"
)


def read(source: Path, options: ImportOptions) -> Imported:
    if options.scorer not in SCORERS:
        raise UserError(
            "Inspect data names no scorer: pass --scorer " + " | ".join(SCORERS) + " (the task's)"
        )
    rows = _records(source)
    imported = Imported("Inspect AI", f"Imported from {source.name}", {"messages": "input"}, [], {})
    imported.sources.append(source)
    criterion: dict[str, Any] = dict(SCORERS[options.scorer])
    several = any(
        len(_letters(r.get("target"))) > 1
        for _, r in rows
        if len(_choices(r.get("choices")) or []) <= MAX_CHOICES  # the rest are refused
    )
    multiple = options.scorer == "choice" and several
    if multiple:
        criterion["multiple"] = True
    imported.rubric = {"good": [criterion]}
    for where, record in rows:
        with at(f"{source}:{where}"):
            _add_case(imported, where, record, options.scorer, multiple, source)
    imported.mapped[f"{options.scorer} -> {criterion['type']}"] = len(imported.cases)
    return imported


def _records(source: Path) -> list[tuple[str, dict[str, Any]]]:
    text = files.read_text(source, encoding="utf-8-sig")
    if source.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text), dialect="unix")
        try:
            return [(f"line {reader.line_num}", dict(row)) for row in reader]
        except csv.Error as e:  # a cell over csv's field limit, a NUL byte
            raise UserError(f"{source}:line {reader.line_num}: unreadable CSV: {e}") from None
    if source.suffix == ".json":
        data = _json(text, source, "")
        out = [(f"[{i}]", r) for i, r in enumerate(data if isinstance(data, list) else [data])]
    else:
        out = [(f"line {n}", _json(line, source, f":line {n}"))
               for n, line in enumerate(text.splitlines(), start=1) if line.strip()]  # fmt: skip
    for where, record in out:
        if not isinstance(record, dict):
            raise UserError(f"{source}:{where}: a sample must be a JSON object")
    return out


def _json(text: str, source: Path, where: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else e
        raise UserError(f"{source}{where}: invalid JSON: {why}") from None


def _target(value: Any) -> list[str]:
    if value is None or value != value:  # None or NaN: Inspect reads ""
        return [""]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _letters(value: Any) -> list[str]:
    return [ch for ch in "".join(_target(value)) if ch not in (",", " ")]


def _choices(value: Any) -> list[str] | None:
    """Inspect's read_choices."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [str(c) for c in value if str(c).strip()]
    if isinstance(value, str):
        parts = value.split(",")
        parts = value.split() if len(parts) == 1 else parts
        return [p.strip() for p in parts if p.strip()]
    return [str(value)]


def _add_case(
    imported: Imported, where: str, record: dict[str, Any], scorer: str, multiple: bool,
    source: Path,
) -> None:  # fmt: skip
    messages = chat_messages(record.get("input"))
    if messages is None or messages[-1]["role"] != "user":
        imported.refused.append(
            Problem(
                str(source),
                where,
                "'input' must be text or chat messages (system, user, "
                "assistant with text content) ending with the user's turn",
            )  # fmt: skip
        )
        return
    choices = _choices(record.get("choices"))
    if scorer == "choice":
        if not choices:
            imported.refused.append(Problem(str(source), where, "the choice scorer needs choices"))
            return
        if len(choices) > MAX_CHOICES:
            imported.refused.append(Problem(str(source), where, (
                f"{len(choices)} choices: Inspect letters them A to Z, then 1 to 9, so at most "
                f"{MAX_CHOICES} (a 36th would be '10', read as the letters 1 and 0)"
            )))  # fmt: skip
            return
        messages[-1] = {"role": "user", "content": _mc_prompt(messages[-1]["content"], choices,
                                                              multiple)}  # fmt: skip
    metadata = record.get("metadata")
    if isinstance(metadata, str) and metadata.strip():
        metadata = _json(metadata, source, f":{where}: metadata")
    known = ("input", "target", "choices", "id", "metadata")
    extra = {k: v for k, v in record.items() if k not in known}
    position = len(imported.cases) + 1
    sample_id = record.get("id")
    case = {
        "id": str(sample_id) if sample_id not in (None, "") else str(position),
        "input": messages,
        "target": _target(record.get("target")),
        "source": {"file": source.name, "where": where, "id": sample_id},
        "metadata": {**(metadata if isinstance(metadata, dict) else {}), **extra},
    }
    if choices is not None:
        case["choices"] = choices
    imported.cases.append(case)


def _mc_prompt(question: str, choices: list[str], multiple: bool) -> str:
    """Inspect's multiple_choice prompt: its template, options as "A) text"."""
    from harness.criteria.match import letter

    options = "\n".join(f"{letter(i)}) {c}" for i, c in enumerate(choices))
    letters = ",".join(letter(i) for i in range(len(choices)))
    return (MULTIPLE if multiple else SINGLE).format(
        question=question, choices=options, letters=letters
    )
