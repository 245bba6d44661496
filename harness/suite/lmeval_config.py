"""lm-eval task YAML read as data, never as code.

lm-eval's own loader resolves `!function module.name` by importing `module.py` from beside the
YAML file, so loading a task executes whatever that file holds. Here a task file is read with
`yaml.SafeLoader` extended only to *record* tags: `!function x` (and any other application tag,
and the `!!python/...` tags) becomes a `CodeRef` carrying its line, and nothing is imported.
`include:` is resolved here too, inside the suite folder only.

`read_task` returns the merged config plus two located lists: `problems` (the task cannot run
in tuneval at all) and `code` (the task would run code, or read data that is not a plain local
file: allowed only with `--trust-suite-code`, and then loaded by lm-eval's own loader), and every
file the task stands on: the task file, its includes, its data files and the local modules its
`!function` tags name, all hashed into the suite fingerprint (a changed include or module is a
changed suite, so cached task scores and comparisons never mix two versions).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import Problem
from harness.safe import files as suite_files
from harness.safe.yamlpos import where
from harness.safe.yamlsafe import StrictLoader
from harness.safe.yamlsafe import load as load_yaml

# `datasets` builders that read local files and run no script.
LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")
# The kinds of lm-eval task tuneval stores case by case.
OUTPUT_TYPES = ("multiple_choice", "generate_until")
TRUST_FLAG = "--trust-suite-code"


@dataclass(frozen=True)
class CodeRef:
    """A tagged YAML value such as `!function utils.process_docs`: a reference to code."""

    tag: str
    value: str
    line: int


class _RecordingLoader(StrictLoader):
    """YAML 1.1 scalars, as lm-eval reads its task files; bounded like every suite file."""


def _record(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> CodeRef:
    value = node.value if isinstance(node, yaml.ScalarNode) else "..."
    return CodeRef(node.tag, str(value), node.start_mark.line + 1)


_RecordingLoader.add_multi_constructor("!", _record)
_RecordingLoader.add_multi_constructor("tag:yaml.org,2002:python/", _record)


@dataclass
class TaskFile:
    path: Path
    config: dict[str, Any]
    root: yaml.Node | None  # the file's own node tree, to locate keys
    problems: list[Problem] = field(default_factory=list)
    code: list[Problem] = field(default_factory=list)
    data_files: dict[str, Path] = field(default_factory=dict)  # name as written -> file
    files: dict[str, Path] = field(default_factory=dict)  # everything above, and what it reads
    # The YAML files read (the task file and its includes): sha256 by name, text by resolved path
    hashes: dict[str, str] = field(default_factory=dict)
    texts: dict[Path, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config.get("task", self.path.stem))

    def where(self, *loc: int | str) -> str:
        return where(self.root, loc)


@dataclass(frozen=True)
class LoadedTask:
    """One lm-eval task as its suite loaded it: the config read as data, and the text of every
    YAML file merged into it (resolved path -> text), as read once at load."""

    path: Path
    config: dict[str, Any]
    texts: dict[Path, str]

    @staticmethod
    def of(task: TaskFile) -> LoadedTask:
        return LoadedTask(task.path, task.config, dict(task.texts))


def read_task(path: Path, folder: Path, data: bytes | None = None) -> TaskFile:
    """Read one task file of a suite folder, with its includes; nothing is imported. `data`: the
    task file's bytes, when the caller has read them already."""
    task = TaskFile(path, {}, None)
    config = _load(path, folder, task, set(), data)
    task.config = config
    if not config:
        return task
    if "task" not in config:
        task.problems.append(Problem(str(path), "", "an lm-eval task file needs a 'task' name"))
    _find_code_refs(config, task)
    _check_shapes(config, task)
    _check_code_keys(config, task)
    _check_data(config, folder, task)
    _check_kind(config, task)
    task.files.update(task.data_files)
    return task


def _load(
    path: Path, folder: Path, task: TaskFile, seen: set[Path], raw: bytes | None = None
) -> dict[str, Any]:
    """The file's mapping with its includes merged under it, as lm-eval merges them."""
    resolved = path.resolve()
    if resolved in seen:
        task.problems.append(Problem(str(path), "include", "includes itself (a cycle)"))
        return {}
    seen.add(resolved)
    try:
        raw = suite_files.read(path, suite_files.YAML_LIMIT) if raw is None else raw
        text = raw.decode("utf-8")
        root, data = load_yaml(text, _RecordingLoader)  # records tags, imports nothing
    except suite_files.FileProblem as e:
        task.problems.append(Problem(str(path), "", str(e)))
        return {}
    except UnicodeDecodeError as e:
        task.problems.append(Problem(str(path), "", f"not UTF-8 text ({e.reason})"))
        return {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"line {mark.line + 1}" if mark else ""
        task.problems.append(Problem(str(path), loc, f"broken YAML: {getattr(e, 'problem', e)}"))
        return {}
    if task.root is None:
        task.root = root
    task.files[_name(path, folder)] = path
    task.hashes[_name(path, folder)] = hashlib.sha256(raw).hexdigest()
    task.texts[resolved] = text
    _note_modules(data, path.parent, folder, task)
    if not isinstance(data, dict):
        task.problems.append(Problem(str(path), "", "an lm-eval task file must be a mapping"))
        return {}
    includes = data.pop("include", None)
    if includes is None:
        return data
    merged: dict[str, Any] = {}
    for name in includes if isinstance(includes, list) else [includes]:
        inc = path.parent / str(name)
        if not _inside(inc, folder):
            task.code.append(
                Problem(str(path), where(root, ("include",)),
                        f"includes '{name}', outside the suite folder ({TRUST_FLAG} allows it)")
            )  # fmt: skip
            continue
        try:
            suite_files.locate(path.parent, str(name))
        except suite_files.FileProblem as e:
            task.problems.append(Problem(str(path), where(root, ("include",)), f"included {e}"))
            continue
        sub = _load(inc, folder, task, seen)
        sub.pop("task_list", None)
        merged.update(sub)
    merged.update(data)
    return merged


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a name too long, a symlink loop: not inside, not readable
        return False


def _name(path: Path, folder: Path) -> str:
    """A file's name in the suite's file list: its path inside the folder (else absolute)."""
    resolved, root = path.resolve(), folder.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)


def _code_refs(value: Any) -> Iterator[CodeRef]:
    if isinstance(value, CodeRef):
        yield value
    elif isinstance(value, dict | list):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _code_refs(v)


def _note_modules(data: Any, base: Path, folder: Path, task: TaskFile) -> None:
    """The local module each `!function module.name` imports, as lm-eval resolves it: the file
    `<module>.py` (dots kept) beside the YAML file that holds the tag. Only files inside the
    suite folder are hashed; anything else is a suite reaching out, refused without trust."""
    for ref in _code_refs(data):
        module = ref.value.rpartition(".")[0]
        if ref.tag != "!function" or not module:
            continue
        file = Path(os.path.normpath(base / f"{module}.py"))
        try:
            file.resolve().relative_to(folder.resolve())
        except ValueError:
            continue
        if file.is_file():
            task.files[_name(file, folder)] = file


def _find_code_refs(config: dict[str, Any], task: TaskFile) -> None:
    for ref in _code_refs(config):
        what = "imports and runs" if ref.tag == "!function" else "would construct"
        task.code.append(
            Problem(str(task.path), f"line {ref.line}",
                    f"{ref.tag} {ref.value} {what} Python code; suites are data "
                    f"({TRUST_FLAG} allows it)")
        )  # fmt: skip


def _check_code_keys(config: dict[str, Any], task: TaskFile) -> None:
    """Keys that make lm-eval import or download code even without a tag."""

    def flag(loc: tuple[int | str, ...], message: str) -> None:
        task.code.append(Problem(str(task.path), task.where(*loc), f"{message} ({TRUST_FLAG})"))

    for key in ("class", "custom_dataset"):
        if key in config:
            flag((key,), f"'{key}' names Python code to run")
    for i, metric in enumerate(_list(config, "metric_list")):
        if not isinstance(metric, dict):
            continue
        name = metric.get("metric")
        if metric.get("hf_evaluate"):
            flag(("metric_list", i, "hf_evaluate"), "an `evaluate` metric is a script it runs")
        elif isinstance(name, str) and not name.replace("_", "").replace("-", "").isalnum():
            flag(("metric_list", i, "metric"), f"metric '{name}' would load a metric script")
        elif isinstance(name, str) and name not in _lm_eval_metrics():
            flag(
                ("metric_list", i, "metric"),
                f"metric '{name}' is not one lm-eval defines, so it would load an `evaluate` "
                "script",
            )
    for i, pipeline in enumerate(_list(config, "filter_list")):
        steps = pipeline.get("filter") if isinstance(pipeline, dict) else None
        for j, step in enumerate(steps if isinstance(steps, list) else []):
            if isinstance(step, dict) and step.get("function") == "custom":
                flag(("filter_list", i, "filter", j, "function"), "a 'custom' filter runs code")
    kwargs = config.get("dataset_kwargs") or {}
    if isinstance(kwargs, dict) and kwargs.get("trust_remote_code"):
        flag(("dataset_kwargs", "trust_remote_code"), "trust_remote_code runs a dataset script")


def _lm_eval_metrics() -> set[str]:
    """The metrics lm-eval defines itself; any other name is fetched as an `evaluate` script."""
    import lm_eval.api.metrics  # noqa: F401 - fills the registry
    from lm_eval.api.registry import metric_registry

    return set(metric_registry)


def _list(config: dict[str, Any], key: str) -> list[Any]:
    """A list-valued key; anything else counts as absent (`_check_shapes` reports it)."""
    value = config.get(key)
    return value if isinstance(value, list) else []


def _check_shapes(config: dict[str, Any], task: TaskFile) -> None:
    for key in ("metric_list", "filter_list"):
        if config.get(key) is not None and not isinstance(config[key], list):
            task.problems.append(Problem(str(task.path), task.where(key), f"{key} must be a list"))
    kwargs = config.get("dataset_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        where = task.where("dataset_kwargs")
        task.problems.append(Problem(str(task.path), where, "dataset_kwargs must be a mapping"))


def _check_data(config: dict[str, Any], folder: Path, task: TaskFile) -> None:
    """Data comes from plain files inside the suite folder, read by a builder with no script."""
    dataset = config.get("dataset_path")
    if dataset not in LOCAL_BUILDERS:
        task.code.append(
            Problem(str(task.path), task.where("dataset_path"),
                    f"dataset_path '{dataset}' is not one of {', '.join(LOCAL_BUILDERS)} reading "
                    f"local files: a hub dataset or a loading script ({TRUST_FLAG})")
        )  # fmt: skip
    kwargs = config.get("dataset_kwargs") or {}
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    loc = task.where("dataset_kwargs", "data_files")
    for name in _file_names(files):
        if not isinstance(name, str):
            task.problems.append(
                Problem(str(task.path), loc, f"data_files: {name!r} is not a file name")
            )
            continue
        file = task.path.parent / name
        if not _inside(file, folder):
            task.code.append(
                Problem(str(task.path), loc,
                        f"data file '{name}' is outside the suite folder ({TRUST_FLAG})")
            )  # fmt: skip
            continue
        try:
            suite_files.locate(task.path.parent, name)
        except suite_files.FileProblem as e:
            task.problems.append(Problem(str(task.path), loc, f"data file {e}"))
            continue
        task.data_files[str(Path(name))] = file


def _file_names(files: Any) -> list[Any]:
    """`data_files` as `datasets` accepts it: a name, a list, or a split -> name(s) mapping."""
    if files is None:
        return []
    entries = list(files.values()) if isinstance(files, dict) else [files]
    return [n for e in entries for n in (e if isinstance(e, list) else [e])]


def _check_kind(config: dict[str, Any], task: TaskFile) -> None:
    """Only the task kinds whose samples tuneval can store as graded cases."""
    kind = config.get("output_type", "generate_until")
    if isinstance(kind, CodeRef):
        return
    if kind not in OUTPUT_TYPES:
        task.problems.append(
            Problem(str(task.path), task.where("output_type"),
                    f"output_type '{kind}' is not supported: tuneval stores "
                    f"{' and '.join(OUTPUT_TYPES)} tasks case by case")
        )  # fmt: skip
        return
    if (config.get("repeats") or 1) != 1:
        task.problems.append(
            Problem(str(task.path), task.where("repeats"), "repeats > 1 is not supported")
        )
    metrics = [m.get("metric") for m in _list(config, "metric_list") if isinstance(m, dict)]
    if kind == "generate_until":
        other = [m for m in metrics if m != "exact_match" and not isinstance(m, CodeRef)]
        if other:
            task.problems.append(
                Problem(str(task.path), task.where("metric_list"),
                        f"generate_until metric {other[0]!r} is not supported: each case needs "
                        "a pass/fail metric, and exact_match is the one lm-eval defines")
            )  # fmt: skip
