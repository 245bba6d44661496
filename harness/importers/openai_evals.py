"""OpenAI evals: one eval of a registry YAML file and its samples JSONL, for the three basic
eval classes (evals/elsuite/basic/):

- `Match`: passes when the completion starts with one of the ideal answers (no trimming);
- `Includes`: passes when an ideal answer occurs in the completion (`ignore_case`: both sides
  lower-cased);
- `FuzzyMatch`: passes when, after normalisation, the completion and an ideal answer contain
  one another (see `harness.criteria.match`).

A registry file may define several evals (`name: {id: name.dev.v0}` aliases and the specs they
point to): `--eval NAME` picks one. Sample files are looked up as evals does, under the
registry's `data/` folder, and also beside the YAML file. Model-graded and custom eval classes
run their own code or a judge and are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import Problem, UserError
from harness.importers import Imported, ImportOptions, at, chat_messages
from harness.importers import source as files
from harness.safe import yamlsafe

CLASSES = {
    "evals.elsuite.basic.match:Match": ("match", "starts-with"),
    "evals.elsuite.basic.includes:Includes": ("includes", "contains"),
    "evals.elsuite.basic.fuzzy_match:FuzzyMatch": ("fuzzy-match", "fuzzy-match"),
}
MAX_TOKENS = {"match": 500, "fuzzy-match": 100}  # the classes' own defaults


def read(source: Path, options: ImportOptions) -> Imported:
    registry = _yaml(source)
    name, spec = _pick(registry, options.eval, source)
    cls = spec.get("class")
    if not isinstance(cls, str) or cls not in CLASSES:
        what = "a model-graded eval needs a judge" if "modelgraded" in str(cls) else "custom code"
        raise UserError(f"{source}: eval '{name}' uses {cls} ({what}); tuneval imports "
                        f"{', '.join(c.rsplit(':', 1)[1] for c in CLASSES)}")  # fmt: skip
    args = spec.get("args") or {}
    if not isinstance(args, dict):
        raise UserError(f"{source}: eval '{name}': args must be a mapping")
    args = dict(args)
    check_id, criterion = CLASSES[str(cls)]
    imported = Imported("OpenAI evals", str(_base(registry, name).get("description") or ""),
                        {"messages": "input"}, [], {})  # fmt: skip
    imported.sources.append(source)
    samples_path = _data_file(str(args.pop("samples_jsonl", "")), source)
    imported.sources.append(samples_path)
    few_shot = _few_shot(args, check_id, source, imported)
    rubric: dict[str, Any] = {"id": check_id, "type": criterion, "value": "{ideal}"}
    if check_id == "includes":
        rubric.update(case_sensitive=not args.pop("ignore_case", False), fold="lower")
    elif criterion == "starts-with":
        rubric["case_sensitive"] = True
    max_tokens = _count(args.pop("max_tokens", MAX_TOKENS.get(check_id)), "max_tokens", source)
    if max_tokens:
        imported.generation = {"max_new_tokens": max_tokens}
    if args:
        imported.notes.append(f"eval arguments not imported: {', '.join(sorted(args))}")
    imported.rubric = {"good": [rubric]}
    for n, sample in _samples(samples_path):
        with at(f"{samples_path}:line {n}"):
            _add_case(imported, n, sample, samples_path, few_shot, check_id)
    imported.mapped[f"{str(cls).rsplit(':', 1)[1]} -> {criterion}"] = len(imported.cases)
    imported.notes.append("text inputs are the user's message (evals sends them to chat models as "
                          "a system message)")  # fmt: skip
    return imported


def _yaml(path: Path) -> dict[str, Any]:
    data = files.load_yaml(path, yamlsafe.StrictLoader)  # evals reads YAML 1.1 (PyYAML)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a registry file maps eval names to specs")
    return data


def _base(registry: dict[str, Any], name: str) -> dict[str, Any]:
    entry = registry.get(name.split(".")[0]) or {}
    return entry if isinstance(entry, dict) else {}


def _pick(registry: dict[str, Any], wanted: str | None, source: Path) -> tuple[str, dict]:
    """The eval spec `wanted` names (following aliases, as evals' registry does)."""
    bases = [k for k, v in registry.items() if isinstance(v, dict) and "id" in v]
    if wanted is None:
        candidates = bases or [k for k, v in registry.items() if isinstance(v, dict)]
        if len(candidates) != 1:
            raise UserError(f"{source} defines evals {', '.join(candidates)}: pick one with --eval")
        wanted = candidates[0]
    name, seen = wanted, set()
    while True:
        if name not in registry:
            raise UserError(f"{source}: no eval '{name}' (it defines {', '.join(registry)})")
        entry = registry[name]
        alias = entry if isinstance(entry, str) else None
        if isinstance(entry, dict):
            alias = entry.get("id")
        if alias is not None and not isinstance(alias, str):
            raise UserError(f"{source}: eval '{name}': id must be the name of an eval")
        if alias is None or name in seen:
            break
        seen.add(name)
        name = alias
    if not isinstance(registry[name], dict) or "class" not in registry[name]:
        raise UserError(f"{source}: eval '{name}' has no class")
    return name, registry[name]


def _data_file(rel: str, source: Path) -> Path:
    if not rel:
        raise UserError(f"{source}: the eval has no samples_jsonl")
    for root in (source.parent.parent / "data", source.parent / "data", source.parent):
        if (root / rel).is_file():
            return files.regular(root / rel)
    raise UserError(f"{source}: samples file '{rel}' not found under the registry's data/")


def _samples(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for n, line in enumerate(files.read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except (ValueError, RecursionError) as e:
                why = "nested too deeply" if isinstance(e, RecursionError) else e
                raise UserError(f"{path}:line {n}: invalid JSON: {why}") from None
    return out


def _count(value: Any, key: str, source: Path) -> int:
    """A whole number of the eval's args, or one located line (`max_tokens: abc`, `1e400`)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**7:
        return value
    raise UserError(f"{source}: args.{key}: {str(value)[:40]!r} is not a whole number (0 to 10^7)")


def _few_shot(args: dict[str, Any], check_id: str, source: Path, imported: Imported) -> list:
    """Match's few-shot messages (each few-shot sample's `sample` conversation)."""
    n = _count(args.pop("num_few_shot", 0), "num_few_shot", source)
    path = args.pop("few_shot_jsonl", None)
    if not n:
        return []
    if check_id != "match" or not path:
        raise UserError(f"{source}: num_few_shot needs Match and few_shot_jsonl")
    file = _data_file(str(path), source)
    imported.sources.append(file)
    return [m for _, s in _samples(file)[:n] for m in chat_messages(s.get("sample")) or []]


def _add_case(
    imported: Imported, n: int, sample: Any, path: Path, few_shot: list, check_id: str
) -> None:
    where = Problem(str(path), f"line {n}", "")
    messages = chat_messages(sample.get("input") if isinstance(sample, dict) else None)
    ideal = sample.get("ideal") if isinstance(sample, dict) else None
    ideal = [ideal] if isinstance(ideal, str) else ideal
    if messages is None or messages[-1]["role"] != "user":
        imported.refused.append(
            Problem(
                where.file,
                where.where,
                "'input' must be text or chat messages ending with the user's turn",
            )  # fmt: skip
        )
        return
    if not isinstance(ideal, list) or not all(isinstance(i, str) for i in ideal):
        imported.refused.append(Problem(where.file, where.where, "'ideal' must be text or a list"))
        return
    if few_shot:  # evals: input[:-1] + the few-shot conversations + input[-1:]
        messages = messages[:-1] + few_shot + messages[-1:]
    extra = {k: v for k, v in sample.items() if k not in ("input", "ideal")}
    imported.cases.append({
        "id": str(extra.pop("id", f"line-{n}")),
        "input": messages,
        "ideal": ideal,
        "source": {"file": path.name, "line": n},
        "metadata": extra,
    })  # fmt: skip
