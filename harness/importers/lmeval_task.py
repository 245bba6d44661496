"""lm-eval: a task YAML with local `data_files`, read as data (no `!function`: see
`harness.suite.lmeval_config`).

- `generate_until`: each document of the test split becomes a case: its prompt rendered with
  lm-eval's rules (a field name or a Jinja template, rendered in a sandbox; the task's
  `description` as the system message), its target (`doc_to_choice` picks by index; a list is
  several accepted answers), the generation settings (`until` as stop strings, `max_gen_toks`).
  Each `filter_list` pipeline becomes one `filtered-match` criterion named after it, applying
  that pipeline and the task's exact_match options; without a filter_list, lm-eval's single
  pipeline is named after the metric.
- `multiple_choice`: ranked by log-likelihood, which a generation suite cannot reproduce, so the
  task file (includes merged) and its data are copied into the suite and run through lm-eval
  (`lm_eval:` in suite.yaml), where every document is still stored as a case.
"""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path
from typing import Any

import yaml

from harness.errors import Problem, UserError
from harness.importers import Imported, ImportOptions
from harness.importers import source as files
from harness.suite.lmeval_config import TaskFile, read_task

_METRIC_OPTIONS = {"ignore_case", "ignore_punctuation", "ignore_numbers", "regexes_to_ignore"}
# What filling one document's templates and target can raise, besides jinja2's TemplateError
_DOC_ERRORS = (KeyError, IndexError, TypeError, ValueError, SyntaxError, ArithmeticError)


def read(source: Path, options: ImportOptions) -> Imported:
    task = read_task(source, source.parent)
    if task.problems:
        raise UserError(task.problems)
    if task.code:
        raise UserError([*task.code, Problem("", "", "a task that runs code is not imported")])
    cfg = task.config
    imported = Imported("lm-evaluation-harness", f"lm-eval task {task.name}", {}, [], {})
    imported.sources += [source, *task.data_files.values()]
    if cfg.get("output_type") == "multiple_choice":
        return _copy_task(task, imported)
    if _number(cfg, "num_fewshot", source, int) > 0:
        raise UserError(f"{source}: num_fewshot {cfg['num_fewshot']}: few-shot prompts are not "
                        "imported (import the zero-shot task)")  # fmt: skip
    docs = _docs(task)
    _generation(cfg, imported, source)
    imported.rubric = {"good": _criteria(cfg, source, imported, len(docs))}
    with files.template_limit(str(source)):
        _add_cases(imported, task, cfg, docs)
    imported.notes.append("prompts go through the model's chat template (lm-eval's default "
                          "sends raw text; the checks are the same)")  # fmt: skip
    return imported


def _add_cases(imported: Imported, task: TaskFile, cfg: dict[str, Any], docs: list) -> None:
    from jinja2 import TemplateError

    env = _jinja()
    description = cfg.get("description") or ""
    # With a description, each case carries its conversation (lm-eval's system message is the
    # rendered description, left out when it renders empty); without, one user template.
    imported.prompt = {"messages": "input"} if description else {"user": "{input}"}
    for i, (where, doc) in enumerate(docs):
        try:
            text = str(_field(cfg.get("doc_to_text"), doc, env))
            system = str(_field(description, doc, env)) if description else ""
            target = _target(cfg, doc, env)
        except (*_DOC_ERRORS, TemplateError) as e:  # a template or target it cannot fill
            raise UserError(f"{where}: {_why(e)}") from None
        prompt: Any = text
        if description:
            prompt = [{"role": "system", "content": system}] if system else []
            prompt.append({"role": "user", "content": text})
        imported.cases.append({
            "id": str(doc.get("id", i)),
            "input": prompt,
            "target": target,
            "source": {"task": task.name, "doc_id": i},
            "metadata": {k: v for k, v in doc.items() if isinstance(v, str | int | float)},
        })  # fmt: skip


def _copy_task(task: TaskFile, imported: Imported) -> Imported:
    name = f"{task.name}.yaml"
    imported.extra_files[name] = yaml.safe_dump(task.config, sort_keys=False).encode()
    for rel, path in task.data_files.items():
        imported.extra_files[rel] = files.read_bytes(path)
    imported.lm_eval = [name]
    listed = task.config.get("metric_list") or []
    metrics = [m.get("metric") if isinstance(m, dict) else m for m in listed] or ["acc", "acc_norm"]
    imported.mapped[f"multiple_choice ({', '.join(map(str, metrics))}) -> lm-eval task"] = 1
    imported.notes.append("multiple choice is scored by log-likelihood through lm-eval")
    return imported


def _why(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"no field {e}"
    return f"{type(e).__name__}: {e}"


def _docs(task: TaskFile) -> list[tuple[str, dict[str, Any]]]:
    """(where, document) for each document of the test split, where naming file and index."""
    cfg = task.config
    split = cfg.get("test_split") or cfg.get("validation_split")
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(files, dict):
        names = files.get(split)
    else:
        names = files if split == "train" else None
    if not names:
        raise UserError(f"{task.path}: no local data file for the '{split}' split")
    docs: list[tuple[str, dict[str, Any]]] = []
    for name in [names] if isinstance(names, str) else names:
        path = task.path.parent / name
        for k, doc in enumerate(_read_docs(path, str(cfg.get("dataset_path")))):
            if not isinstance(doc, dict):
                raise UserError(f"{path}: document {k}: a document must be a JSON object")
            docs.append((f"{path}: document {k}", doc))
    return docs


def _read_docs(path: Path, builder: str) -> list[Any]:
    if builder not in ("json", "csv"):
        raise UserError(f"{path}: dataset_path '{builder}': json and csv data are imported")
    try:
        if builder == "csv":
            import pandas as pd  # what `datasets` reads CSV with: same type inference

            frame = pd.read_csv(io.BytesIO(files.read_bytes(path)))
            return [{k: (None if v != v else v) for k, v in row.items()}
                    for row in frame.to_dict("records")]  # fmt: skip
        text = files.read_text(path)
    except (OSError, ValueError) as e:  # pandas' ParserError is a ValueError
        raise UserError(f"{path}: cannot read: {e}") from None
    if text.lstrip().startswith("["):
        try:
            return list(json.loads(text))
        except ValueError as e:
            raise UserError(f"{path}: invalid JSON: {e}") from None
    docs = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                docs.append(json.loads(line))
            except ValueError as e:
                raise UserError(f"{path}:line {n}: invalid JSON: {e}") from None
    return docs


def _jinja() -> Any:
    """lm-eval's template environment, sandboxed: data cannot reach Python objects, and what a
    template builds is bounded (`harness.importers.source`)."""
    from harness.safe.regex import template_replace

    env = files.jinja_env()
    env.filters["regex_replace"] = template_replace
    return env


def _field(spec: Any, doc: dict[str, Any], env: Any) -> Any:
    """lm-eval's doc_to_text / doc_to_target: a field name, a template, or a constant."""
    if not isinstance(spec, str):
        return spec
    return doc[spec] if spec in doc else files.render(env, spec, doc)


def _target(cfg: dict[str, Any], doc: dict[str, Any], env: Any) -> str | list[str]:
    spec = cfg.get("doc_to_target")
    gold = _field(spec, doc, env)
    rendered = isinstance(spec, str) and spec not in doc
    if cfg.get("doc_to_choice") is not None:
        choice_spec = cfg["doc_to_choice"]
        choices = _field(choice_spec, doc, env)
        if isinstance(choice_spec, str) and choice_spec not in doc:
            choices = ast.literal_eval(choices)
        if rendered and str(gold).isdigit():
            gold = int(gold)
        return str(choices[gold])
    if rendered and len(str(gold)) >= 2 and str(gold)[0] == "[" and str(gold)[-1] == "]":
        try:
            gold = ast.literal_eval(str(gold))
        except (SyntaxError, ValueError):
            pass
    return [str(g) for g in gold] if isinstance(gold, list) else str(gold)


def _number(cfg: dict[str, Any], key: str, source: Path, kind: type, default: Any = 0) -> Any:
    """cfg[key] as an int or float, or one located line (`num_fewshot: lots`)."""
    value = cfg.get(key)
    if value is None:
        return default
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = kind(value)
        if number != number or abs(number) == float("inf"):
            raise ValueError
        return number
    except (ValueError, OverflowError):
        what = "a whole number" if kind is int else "a number"
        raise UserError(f"{source}: {key}: {str(value)[:40]!r} is not {what}") from None


def _generation(cfg: dict[str, Any], imported: Imported, source: Path) -> None:
    kwargs = cfg.get("generation_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise UserError(f"{source}: generation_kwargs must be a mapping")
    kwargs = dict(kwargs)
    until = kwargs.pop("until", [cfg.get("fewshot_delimiter", "\n\n")])
    stop = [until] if isinstance(until, str) else until
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise UserError(f"{source}: generation_kwargs.until must be text or a list of text")
    imported.generation = {
        "max_new_tokens": _number(kwargs, "max_gen_toks", source, int, 256),
        "stop": stop,
        "temperature": _number(kwargs, "temperature", source, float, 0.0),
    }
    kwargs.pop("max_gen_toks", None)
    kwargs.pop("temperature", None)
    kwargs.pop("do_sample", None)
    if kwargs:
        imported.notes.append(f"generation_kwargs not imported: {', '.join(sorted(kwargs))}")


def _criteria(
    cfg: dict[str, Any], source: Path, imported: Imported, n: int
) -> list[dict[str, Any]]:
    metrics = [m for m in cfg.get("metric_list") or [{"metric": "exact_match"}]]
    if not all(isinstance(m, dict) for m in metrics):
        raise UserError(f"{source}: metric_list: each entry must be a mapping with a 'metric'")
    options = {k: v for k, v in metrics[0].items()
               if k not in ("metric", "aggregation", "higher_is_better")}  # fmt: skip
    unknown = sorted(set(options) - _METRIC_OPTIONS)
    if unknown:
        raise UserError(f"{source}: exact_match option '{unknown[0]}' is not imported")
    pipelines = cfg.get("filter_list") or [{"name": "none", "filter": [{"function": "take_first"}]}]
    out = []
    for i, p in enumerate(pipelines if isinstance(pipelines, list) else [pipelines]):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise UserError(f"{source}: filter_list[{i}]: a pipeline is a mapping with a 'name'")
        name = "exact_match" if p["name"] == "none" else str(p["name"])
        out.append({"id": name, "type": "filtered-match", "reference": "{target}",
                    "filters": list(p.get("filter") or []), **options})  # fmt: skip
        imported.mapped[f"{p['name']} (exact_match) -> filtered-match"] = n
    return out
