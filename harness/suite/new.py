"""`tuneval suites new`: an ordinary suite folder from a table of inputs and targets.

The rows are split by seed into test, validation and train with the leakage rule of
`harness.training.data` applied across splits: exact and near-duplicate inputs form one group, and a
group lands whole on one side. The starter rubric follows the targets (labels, short answers or
sentences) with the three error detectors (too long, repetitive, misspelled) in `bad`; the README
records where the data came from, the counts and what to edit next.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import Problem, UserError
from harness.safe import files as suite_files
from harness.suite import splits as suite_datasets

_HUB = re.compile(r"^(?:hf:)?([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([\w./-]+))?$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Source:
    rows: list[dict[str, Any]]
    columns: list[str]
    provenance: list[str] = field(default_factory=list)  # README lines


def read_source(text: str, config: str | None = None, split: str | None = None) -> Source:
    """The rows of a JSONL, CSV, Parquet, JSON or Arrow file, or of a Hub dataset's split."""
    path = Path(text)
    data_file = path.suffix.lower() in (".jsonl", *suite_datasets.BUILDERS)
    hub = _HUB.match(text)
    try:
        if path.is_file() or data_file or not hub:
            return _read_file(path)
        repo, revision = hub.group(1), hub.group(2)
        files: dict[str, str] = {}
        table, commit = suite_datasets.load_hub(repo, revision, config, split or "train", files)
    except (suite_datasets.LoadProblem, suite_files.FileProblem) as e:
        raise UserError(f"{text}: {e}") from None
    asked = f" (asked for '{revision}')" if revision else ""
    lines = [f"Hub dataset `{repo}`, split `{split or 'train'}`"
             + (f", configuration `{config}`" if config else "")
             + f", commit `{commit}`{asked}"]  # fmt: skip
    lines += [f"- `{name.split('/', 2)[-1]}` sha256 `{sha[:16]}`" for name, sha in files.items()]
    return _from_table(table, lines)


def _read_file(path: Path) -> Source:
    if not path.exists():
        raise UserError(f"{path}: no such file, nor a Hub dataset id (org/name[@revision])")
    try:
        data = suite_files.read(path)
    except suite_files.FileProblem as e:
        raise UserError(f"{path}: {e}") from None
    lines = [f"`{path}` (sha256 `{hashlib.sha256(data).hexdigest()[:16]}`)"]
    if path.suffix.lower() == ".jsonl":
        problems: list[Problem] = []
        rows = suite_files.read_jsonl(data, str(path), problems)
        if problems:
            raise UserError(problems)
        columns = list(dict.fromkeys(k for r in rows for k in r if k != "__line__"))
        for r in rows:
            r.pop("__line__", None)
        return Source(rows, columns, lines)
    return _from_table(suite_datasets.load_file(path), lines)


def _from_table(table: Any, lines: list[str]) -> Source:
    keep = [c for c in table.column_names if c not in suite_datasets.binary_columns(table)]
    rows = [
        {k: suite_datasets.plain(v) for k, v in r.items()} for r in table.select(keep).to_pylist()
    ]
    return Source(rows, list(table.column_names), lines)


@dataclass
class Plan:
    """Which rows go where, and why."""

    splits: dict[str, list[dict[str, Any]]]
    dropped: int  # rows without an input or a target
    groups: int  # groups of more than one near-duplicate input, each kept on one side
    grouped_rows: int


def plan_splits(
    src: Source, input_col: str, target_col: str, test_size: int | None, seed: int
) -> tuple[Plan, str, str]:
    """Cases from the rows, split by seed with near-duplicate inputs kept on one side; returns
    the plan and the case fields holding the input and the target."""
    from harness.suite.leakage import near_groups

    for flag, col in (("--input", input_col), ("--target", target_col)):
        if col not in src.columns:
            raise UserError(f"{flag} {col}: no such column (columns: {', '.join(src.columns)})")
    in_field = input_col if _FIELD.match(input_col) else "input"
    out_field = target_col if _FIELD.match(target_col) else "target"
    if in_field == out_field:
        raise UserError("--input and --target must be two different columns")
    ids = [r.get("id") for r in src.rows]
    own_ids = all(isinstance(i, str | int) and str(i) for i in ids) and len(set(ids)) == len(ids)
    cases, dropped = [], 0
    for i, row in enumerate(src.rows):
        x, y = row.get(input_col), row.get(target_col)
        if x is None or y is None or not str(x).strip() or not str(y).strip():
            dropped += 1
            continue
        extra = {
            k: v for k, v in row.items() if k not in (input_col, target_col, "id", "must_pass")
        }
        extra = {k: v for k, v in extra.items() if v is not None and _FIELD.match(k)}
        case_id = str(row["id"]) if own_ids else str(i)  # the source's row index otherwise
        cases.append({"id": case_id, in_field: str(x), out_field: str(y), **extra})
    n = len(cases)
    if n < 3:
        raise UserError(f"{n} usable rows (with an input and a target); a suite needs at least 3")
    n_test = test_size if test_size is not None else min(200, max(1, n // 5))
    n_val = min(100, n // 10) if n >= 10 else 0
    if n_test + n_val >= n:
        raise UserError(f"--test-size {n_test} leaves no training rows ({n} usable rows)")
    group_of = near_groups([c[in_field] for c in cases])
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_of):
        members.setdefault(g, []).append(i)
    order = list(members.values())
    random.Random(seed).shuffle(order)
    where: dict[int, str] = {}
    sizes = {"test": 0, "validation": 0}
    for group in order:
        side = next(
            (s for s, cap in (("test", n_test), ("validation", n_val))
             if sizes[s] + len(group) <= cap),
            "train",
        )  # fmt: skip
        sizes[side] = sizes.get(side, 0) + len(group)
        where.update((i, side) for i in group)
    splits: dict[str, list[dict[str, Any]]] = {"test": [], "validation": [], "train": []}
    for i, case in enumerate(cases):
        splits[where[i]].append(case)
    if not splits["train"] or not splits["test"]:
        raise UserError("near-duplicate inputs leave no train or test split: give more rows")
    big = [g for g in members.values() if len(g) > 1]
    plan = Plan(splits, dropped, len(big), sum(len(g) for g in big))
    return plan, in_field, out_field


def starter_rubric(targets: list[str], target: str) -> tuple[dict[str, Any], str]:
    """A rubric for the kind of targets (labels, short answers, sentences), and why."""
    words = sorted(len(t.split()) for t in targets)
    median = statistics.median(words)
    bad = [
        {"id": "empty", "type": "empty"},
        {"id": "too-long", "type": "length", "reference": f"{{{target}}}", "max_ratio": 3.0},
        {"id": "repetitive", "type": "repetition", "n": 3, "max_ratio": 0.3},
        {"id": "misspelled", "type": "spelling"},
    ]
    ref = f"{{{target}}}"
    if words[-1] <= 1:
        kind = "every target is one word (a label): the answer must be exactly it"
        good = [{"id": "exact", "type": "exact", "value": ref, "case_sensitive": False}]
        better: list[dict[str, Any]] = []
    elif median <= 5:
        kind = f"targets are short (median {median:g} words): the answer must contain the target"
        good = [{"id": "has-target", "type": "contains", "value": ref}]
        better = [{"id": "exact", "type": "exact", "value": ref, "case_sensitive": False}]
    else:
        kind = f"targets are sentences (median {median:g} words): judged by similarity and length"
        good = [{"id": "on-topic", "type": "similarity", "reference": ref, "min": 0.5}]
        better = [
            {"id": "faithful", "type": "similarity", "reference": ref, "min": 0.75},
            {"id": "concise", "type": "length", "reference": ref, "max_ratio": 1.5},
        ]
    rubric: dict[str, Any] = {"bad": bad, "good": good}
    if better:
        rubric["better"] = better
    return rubric, kind


def max_tokens(targets: list[str]) -> int:
    """Room for three times a long (95th percentile) target, at ~1.5 tokens a word."""
    words = sorted(len(t.split()) for t in targets)
    p95 = words[int(0.95 * (len(words) - 1))]
    return max(16, min(512, int(p95 * 1.5 * 3) + 8))


def write(
    out: Path, name: str, src: Source, source: str, input_col: str, target_col: str,
    test_size: int | None, seed: int, command: str,
) -> dict[str, Any]:  # fmt: skip
    """Create the suite folder `out` (absent or empty), validate it and check it for leakage."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not an empty folder")
    plan, in_field, out_field = plan_splits(src, input_col, target_col, test_size, seed)
    targets = [c[out_field] for rows in plan.splits.values() for c in rows]
    rubric, kind = starter_rubric(targets, out_field)
    stop = [] if any("\n\n" in t for t in targets) else ["\n\n"]
    spec = {
        "name": name,
        "version": 1,
        "description": f"Made from {source} by `tuneval suites new`: edit me.",
        "prompt": {"user": f"{{{in_field}}}", "assistant": f"{{{out_field}}}"},
        "generation": {"max_new_tokens": max_tokens(targets), "stop": stop},
        "data": {s: f"{s}.jsonl" for s in ("test", "train", "validation") if plan.splits[s]},
        "rubric": rubric,
    }
    summary = {
        "suite": name, "path": str(out), "source": source, "seed": seed,
        "counts": {s: len(rows) for s, rows in plan.splits.items()},
        "dropped": plan.dropped, "near_duplicate_groups": plan.groups,
        "grouped_rows": plan.grouped_rows, "rubric": kind,
    }  # fmt: skip
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        header = "# Written by `tuneval suites new`; see README.md for what to edit next.\n"
        # flow style for the innermost lists and mappings: one line per criterion
        text = yaml.dump(
            spec, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
            default_flow_style=None,
        )  # fmt: skip
        (out / "suite.yaml").write_text(header + text, encoding="utf-8")
        for split, rows in plan.splits.items():
            if rows:
                lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                (out / f"{split}.jsonl").write_text(lines, encoding="utf-8")
        summary["leakage"] = _check(out)
        (out / "README.md").write_text(_readme(summary, src, command, in_field, out_field))
    except BaseException as e:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        if isinstance(e, UserError):
            head = Problem("", "", "the new suite does not validate:")
            raise UserError([head, *e.problems]) from None
        raise
    return summary


class _Dumper(yaml.SafeDumper):
    """Text with a line break in double quotes, "\\n\\n", not folded across lines."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _check(out: Path) -> dict[str, int]:
    """The written suite loads, and no test input is an exact or near duplicate of a training or
    validation one (the grouping guarantees it; this is the ordinary check, run on the files)."""
    from harness.suite.leakage import overlaps
    from harness.suite.loader import load_suite

    suite = load_suite(out)
    _, _, exact, near = overlaps(suite)
    if exact or near:  # a bug here, not the user's data
        raise RuntimeError(f"split leaks: {len(exact)} exact, {len(near)} near duplicates")
    return {"exact": len(exact), "near": len(near)}


def _readme(
    summary: dict[str, Any], src: Source, command: str, in_field: str, out_field: str
) -> str:
    counts = summary["counts"]
    provenance = "\n".join(src.provenance)
    return f"""# {summary["suite"]}

Made by `{command}` on {time.strftime("%Y-%m-%d")}.

## Provenance

{provenance}

Licence: that of the source above; this folder only splits it. Rebuild: run the command again on
the same source with the same seed ({summary["seed"]}).

## Counts

| split | cases |
|---|---|
| test | {counts["test"]} |
| validation | {counts["validation"]} |
| train | {counts["train"]} |

{len(src.rows)} rows read; {summary["dropped"]} left out (no input or no target). The input is
field `{in_field}`, the target `{out_field}`. Exact and near-duplicate inputs (Jaccard >= 0.8 on
character 5-grams, the rule `tuneval data check` applies) were kept on one side of the split:
{summary["near_duplicate_groups"]} such groups, {summary["grouped_rows"]} rows. Checked on the
written files: {summary["leakage"]["exact"]} exact and {summary["leakage"]["near"]} near
duplicates between test and train + validation.

## Rubric

Chosen from the data: {summary["rubric"]}. `bad` holds the three error detectors (too long,
over 3x the target's length; repetitive; misspelled) and `empty`.

## What to edit next

1. `description` in suite.yaml: what the task is, in one sentence.
2. A `prompt.system` message, if the task needs instructions the input does not carry.
3. The rubric: run `tuneval eval {summary["path"]} --model SPEC`, read the grades with
   `tuneval report`, and tighten or loosen the thresholds; then bump `version`.
4. `tuneval data check {summary["path"]}` before training; `tuneval loop {summary["path"]}`
   for base -> candidate -> verdict.
"""
