"""Suites: a folder with suite.yaml, JSONL data and a README. Loading never executes code.

`load_suite` validates everything it can and raises one `UserError` listing every problem, each
naming the file, the line (or YAML path) and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from harness import criteria
from harness.errors import Problem, UserError
from harness.safe import files as suite_files
from harness.safe import yamlsafe
from harness.safe.files import FileProblem, read_jsonl, row_at
from harness.safe.templating import Loc, placeholders, walk_strings
from harness.safe.yamlpos import where as yaml_where
from harness.suite import splits as suite_datasets
from harness.suite.code import check_criteria_code
from harness.suite.lmeval_config import LoadedTask, read_task
from harness.suite.prompts import BASE, Prompt, prompt_for
from harness.suite.schema import CriterionSpec, SuiteSpec, VariantSpec

SUITE_FILE = "suite.yaml"
MAX_SHOWN = 50  # schema problems listed from one file; 50,000 stray keys make one line more


@dataclass
class Suite:
    spec: SuiteSpec
    path: Path
    cases: list[dict[str, Any]]
    train: list[dict[str, Any]] | None
    validation: list[dict[str, Any]] | None
    fingerprint: str
    files: dict[str, str] = field(default_factory=dict)  # relative name -> sha256
    # What in its lm-eval task files would run code (refused without --trust-suite-code)
    needs_code: list[Problem] = field(default_factory=list)
    shots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # variant -> examples
    tasks: list[LoadedTask] = field(default_factory=list)  # lm_eval's files, as read at load
    # Each criterion's scorer by id, built once when the suite loads; the grader scores with them
    scorers: dict[str, criteria.Scorer] = field(default_factory=dict, repr=False)
    _checked: dict[tuple[bool, str], Prompt | None] = field(
        default_factory=dict, repr=False, compare=False
    )  # check_use's answers

    @property
    def name(self) -> str:
        return self.spec.name

    def criteria(self) -> list[tuple[str, CriterionSpec]]:
        return [(sec, c) for sec, specs in self.spec.rubric.sections() for c in specs]

    def check_use(self, trust_code: bool, prompt: str = BASE) -> Prompt | None:
        """The one check of how this suite is about to be used: it runs code only with
        --trust-suite-code (`trust_code`), and a prompt variant named must be one of its own.
        Returns the prompt its cases are asked with (None: no prompt, an lm-eval-only suite).
        The answer is kept: the command line asks before the store is touched, the runner asks
        again for its library callers, and the check itself runs once per loaded suite."""
        key = (trust_code, prompt)
        if key not in self._checked:
            self._checked[key] = _check_use(self, trust_code, prompt)
        return self._checked[key]


def _check_use(suite: Suite, trust_code: bool, prompt: str) -> Prompt | None:
    if suite.needs_code and not trust_code:
        raise UserError(suite.needs_code)
    return prompt_for(suite, prompt) if prompt != BASE or suite.spec.prompt else None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _where(root: yaml.Node | None, loc: tuple[int | str, ...]) -> str:
    return yaml_where(root, loc)


def _check_ids(rows: list[dict[str, Any]], label: str, problems: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for row in rows:
        at = row_at(row)
        if "id" not in row or row["id"] in (None, ""):
            problems.append(Problem(label, at, "missing field 'id'"))
            continue
        if not isinstance(row["id"], str | int) or isinstance(row["id"], bool):
            problems.append(Problem(label, at, "field 'id' must be a string or integer"))
            continue
        row["id"] = case_id = str(row["id"])
        if case_id in seen:
            first = f"(first on {seen[case_id]})"
            problems.append(Problem(label, at, f"duplicate id '{case_id}' {first}"))
        else:
            seen[case_id] = at
        if "must_pass" in row and not isinstance(row["must_pass"], bool):
            problems.append(Problem(label, at, "field 'must_pass' must be true or false"))


Template = tuple[Loc, str]  # where in suite.yaml, and the text with {field} placeholders


def _check_placeholders(
    templates: list[Template],
    rows: list[dict[str, Any]],
    data_label: str,
    where: Callable[[Loc], str],
    suite_label: str,
    problems: list[Problem],
    own: Mapping[Loc, frozenset[str]] | None = None,
) -> None:
    """`own`: per criterion location (a rubric entry, or a check nested in one), the
    placeholders that criterion fills itself; a template belongs to the innermost one."""
    for loc, text in templates:
        owner = next((loc[:k] for k in range(len(loc), 2, -1) if own and loc[:k] in own), None)
        filled_by_criterion = own[owner] if own and owner is not None else frozenset()
        for name in placeholders(text):
            if name in filled_by_criterion:  # a judge's {output}, not a case field
                continue
            missing = [row_at(r) for r in rows if name not in r]
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                problems.append(
                    Problem(
                        suite_label,
                        where(loc),
                        f"placeholder {{{name}}} has no field '{name}' in {data_label} "
                        f"{missing[0]}{more}",
                    )
                )


def _check_criteria(
    spec: SuiteSpec, label: str, root: yaml.Node | None, problems: list[Problem]
) -> dict[str, criteria.Scorer]:
    """Every criterion builds from its parameters; returns the built scorers by id (the suite
    keeps them: nothing builds them again)."""
    ids: dict[str, str] = {}
    built: dict[str, criteria.Scorer] = {}
    for section, specs in spec.rubric.sections():
        for i, c in enumerate(specs):
            loc: tuple[int | str, ...] = ("rubric", section, i)
            if c.id in ids:
                problems.append(
                    Problem(label, _where(root, (*loc, "id")), f"duplicate criterion id '{c.id}'")
                )
            ids[c.id] = section
            try:
                factory = criteria.get(c.type)
            except KeyError as e:
                problems.append(Problem(label, _where(root, (*loc, "type")), str(e.args[0])))
                continue
            try:
                built[c.id] = factory(**c.params())
            except ValidationError as e:
                for err in e.errors():
                    where = _where(root, (*loc, *[x for x in err["loc"] if isinstance(x, str)][:1]))
                    name = ".".join(str(x) for x in err["loc"])
                    text = f"{c.type}: {name}: {err['msg']}" if name else f"{c.type}: {err['msg']}"
                    problems.append(Problem(label, where, text))
            except (ValueError, TypeError) as e:
                problems.append(Problem(label, _where(root, loc), f"{c.type}: {e}"))
            except Exception as e:  # a malformed regex and the like
                problems.append(
                    Problem(label, _where(root, loc), f"{c.type}: {type(e).__name__}: {e}")
                )
    return built


def _check_cases(
    built: dict[str, criteria.Scorer], rows: list[dict[str, Any]] | None, data_label: str,
    problems: list[Problem],
) -> None:  # fmt: skip
    """Criteria that read part of their parameters from the case check each case."""
    for cid, scorer in built.items():
        check = getattr(scorer, "check_case", None)
        if check is None:
            continue
        for row in rows or []:
            for message in check(row):
                problems.append(Problem(data_label, row_at(row), f"{cid}: {message}"))


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite folder (or its suite.yaml)."""
    folder = _suite_folder(Path(path))
    label = str(folder / SUITE_FILE)
    try:
        raw_bytes = suite_files.read(suite_files.locate(folder, SUITE_FILE), suite_files.YAML_LIMIT)
    except FileProblem as e:
        raise UserError([Problem(label, "", str(e))]) from None
    files = {SUITE_FILE: _sha(raw_bytes)}
    root, spec = _read_spec(raw_bytes, label)

    def where(loc: Loc) -> str:
        return _where(root, loc)

    problems: list[Problem] = []
    _check_layout(spec, label, where, problems)
    built = _check_criteria(spec, label, root, problems)
    splits = _read_splits(spec, folder, label, where, files, problems)
    if spec.data.test:
        _check_cases(built, splits["test"], spec.data.label(folder, "test"), problems)
    needs_code: list[Problem] = []
    tasks = _read_lm_eval(spec, folder, label, where, files, problems, needs_code)
    labels = (label, spec.data.label(folder, "test"))
    check_criteria_code(spec, splits["test"], folder, labels, where, files, problems, needs_code)
    _check_templates(spec, splits, folder, label, where, problems)
    shots = _check_variants(spec, splits, folder, label, where, problems)
    if problems:
        raise UserError(problems)
    for rows in splits.values():
        for row in rows or []:
            row.pop("__line__", None)
            row.pop("__at__", None)
    fingerprint = _sha(json.dumps(sorted(files.items())).encode())
    return Suite(
        spec=spec,
        path=folder.resolve(),
        cases=splits["test"] or [],
        train=splits["train"],
        validation=splits["validation"],
        fingerprint=fingerprint,
        files=files,
        needs_code=needs_code,
        shots=shots,
        tasks=tasks,
        scorers=built,
    )


def _suite_folder(path: Path) -> Path:
    """The suite folder a path names: the folder itself, or the folder of its suite.yaml."""
    try:
        if path.is_file() and path.name == SUITE_FILE:
            return path.parent
        if not (path / SUITE_FILE).is_file():
            inside = path.is_file()
            what = "a file inside a suite, not the suite folder" if inside else "not a suite"
            raise UserError([Problem(str(path), "", f"no {SUITE_FILE} here: {what}")])
    except OSError as e:  # a name too long, no permission
        raise UserError([Problem(str(path)[:200], "", e.strerror or str(e))]) from None
    return path


def _read_spec(raw_bytes: bytes, label: str) -> tuple[yaml.Node | None, SuiteSpec]:
    """suite.yaml parsed and validated against the schema; every problem located."""
    try:
        root, raw = yamlsafe.load(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError([Problem(label, "", f"not UTF-8 text ({e.reason})")]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        msg = getattr(e, "problem", None) or str(e)
        raise UserError([Problem(label, where, f"broken YAML: {msg}")]) from None
    if not isinstance(raw, dict):
        raise UserError([Problem(label, "", "must be a YAML mapping (name, version, prompt, ...)")])
    wrong = suite_files.value_problem(raw)
    if wrong:
        raise UserError([Problem(label, "", wrong)])
    try:
        return root, SuiteSpec.model_validate(raw)
    except ValidationError as e:
        errors = e.errors()
        problems = [
            Problem(label, _where(root, tuple(err["loc"])), err["msg"])
            for err in errors[:MAX_SHOWN]
        ]
        if len(errors) > MAX_SHOWN:
            problems.append(Problem(label, "", f"and {len(errors) - MAX_SHOWN} more problems"))
        raise UserError(problems) from None


def _check_layout(
    spec: SuiteSpec, label: str, where: Callable[[Loc], str], problems: list[Problem]
) -> None:
    """What a suite must hold: cases or lm-eval tasks, and a prompt for any data."""
    if spec.data.test is None and not spec.lm_eval:
        problems.append(Problem(label, "data", "a suite needs data.test cases or lm_eval tasks"))
    for split in ("test", "train", "validation"):
        if getattr(spec.data, split) is not None and spec.prompt is None:
            problems.append(Problem(label, where(("data", split)), f"data.{split} needs a prompt"))
    has_training = spec.data.train is not None or spec.data.validation is not None
    if spec.prompt and spec.prompt.assistant is None and has_training:
        problems.append(
            Problem(
                label,
                where(("prompt",)),
                "training data needs prompt.assistant, the target answer template",
            )
        )


Splits = dict[str, list[dict[str, Any]] | None]


def _read_splits(
    spec: SuiteSpec, folder: Path, label: str, where: Callable[[Loc], str],
    files: dict[str, str], problems: list[Problem],
) -> Splits:  # fmt: skip
    """The rows of each split named in data:, with test case ids checked. JSONL files are read
    here, line by line; other files and Hub datasets through `harness.suite.splits`."""
    splits: Splits = {}
    for split in ("test", "train", "validation"):
        source = getattr(spec.data, split)
        splits[split] = None
        if source is None:
            continue
        if not suite_datasets.is_jsonl(source):
            rows = suite_datasets.read(folder, split, source, files, label, where, problems)
            if rows is not None and split == "test":
                _check_ids(rows, spec.data.label(folder, split), problems)
            splits[split] = rows
            continue
        try:
            file = suite_files.locate(folder, source)
            data = suite_files.read(file)
        except FileProblem as e:
            problems.append(Problem(label, where(("data", split)), f"data file {e}"))
            continue
        files[source] = _sha(data)
        before = len(problems)
        rows = read_jsonl(data, str(file), problems)
        if not rows and len(problems) == before:
            what = "cases" if split == "test" else "examples"
            problems.append(Problem(str(file), "", f"no {what}: the file holds no JSON lines"))
        if split == "test":
            _check_ids(rows, str(file), problems)
        splits[split] = rows
    return splits


def _read_lm_eval(
    spec: SuiteSpec, folder: Path, label: str, where: Callable[[Loc], str],
    files: dict[str, str], problems: list[Problem], needs_code: list[Problem],
) -> list[LoadedTask]:  # fmt: skip
    """Read each lm-eval task file once, as data only (what would run code is recorded in
    `needs_code` instead of being imported), and hash it with the local files it stands on.
    Returns the tasks as read: the run scores this text, never the file read again."""
    tasks: list[LoadedTask] = []
    for i, name in enumerate(spec.lm_eval):
        try:
            file = suite_files.locate(folder, name)
            data = suite_files.read(file, suite_files.YAML_LIMIT)
        except FileProblem as e:
            problems.append(Problem(label, where(("lm_eval", i)), f"lm-eval task file {e}"))
            continue
        files[name] = _sha(data)
        task = read_task(file, folder, data)
        problems.extend(task.problems)
        needs_code.extend(task.code)
        files.update(task.hashes)  # the task file and its includes, hashed as read
        for read_name, read_file in task.files.items():  # data files, local modules
            if read_name in task.hashes:
                continue
            try:
                files[read_name] = _sha(suite_files.read(read_file))
            except FileProblem as e:
                problems.append(Problem(str(file), task.where("dataset_kwargs"), f"file {e}"))
        tasks.append(LoadedTask.of(task))
    return tasks


def _check_templates(
    spec: SuiteSpec, splits: Splits, folder: Path, label: str, where: Callable[[Loc], str],
    problems: list[Problem],
) -> None:  # fmt: skip
    """Every {field} a prompt or criterion uses exists in every row it is filled from."""
    if spec.prompt is None:
        return
    prompt: list[Template] = [
        (("prompt", k), v)
        for k, v in (("system", spec.prompt.system), ("user", spec.prompt.user))
        if v
    ]
    rubric: list[Template] = [
        (("rubric", section, i, *loc), text)
        for section, specs in spec.rubric.sections()
        for i, c in enumerate(specs)
        for loc, text in walk_strings(c.params())
    ]
    own: dict[Loc, frozenset[str]] = {
        ("rubric", section, i, *use.loc): criteria.provided(use.type)
        for section, specs in spec.rubric.sections()
        for i, c in enumerate(specs)
        for use in criteria.uses(c.id, c.type, c.params())
        if use.type in criteria.registered()
    }
    answer: list[Template] = (
        [(("prompt", "assistant"), spec.prompt.assistant)] if spec.prompt.assistant else []
    )
    for split, templates in (
        ("test", prompt + rubric),
        ("train", prompt + answer),
        ("validation", prompt + answer),
    ):
        rows = splits[split]
        if rows:
            data_label = spec.data.label(folder, split)
            _check_placeholders(templates, rows, data_label, where, label, problems, own)
            if spec.prompt.messages:
                _check_messages(spec.prompt.messages, rows, data_label, problems)


_VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _check_variants(
    spec: SuiteSpec, splits: Splits, folder: Path, label: str, where: Callable[[Loc], str],
    problems: list[Problem],
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Each prompt variant's templates, and the examples a few-shot variant shows: chosen here,
    once, so that every case of every run of the variant sees the same ones."""
    shots: dict[str, list[dict[str, Any]]] = {}
    if spec.prompt is None:
        return shots
    for name, v in spec.prompt.variants.items():
        loc: Loc = ("prompt", "variants", name)
        before = len(problems)

        def problem(at: Loc, message: str, name: str = name) -> None:
            problems.append(Problem(label, where(at), f"variant '{name}': {message}"))

        if not _VARIANT_NAME.match(name):
            problem(loc, "a variant name uses lower-case letters, digits, '-', '_' or '.'")
        if spec.prompt.messages is not None:
            problem(loc, "variants need system/user templates; this prompt is each case's messages")
            continue
        if not v.shots and v.system is None and v.user is None:
            problem(loc, "changes nothing: give shots, system or user")
        overrides: list[Template] = [
            ((*loc, k), text) for k, text in (("system", v.system), ("user", v.user)) if text
        ]
        if splits["test"]:
            test_label = spec.data.label(folder, "test")
            _check_placeholders(overrides, splits["test"], test_label, where, label, problems)
        if not v.shots:
            continue
        rows = _shot_rows(spec, v, splits, loc, problem)
        if rows and v.user:  # the base user template is checked against every split already
            split_label = spec.data.label(folder, v.split)
            user: list[Template] = [((*loc, "user"), v.user)]
            _check_placeholders(user, rows, split_label, where, label, problems)
        if rows and len(problems) == before:
            shots[name] = _pick_shots(spec, v, rows, splits["test"] or [], loc, problem)
    return shots


def _shot_rows(
    spec: SuiteSpec, v: VariantSpec, splits: Splits, loc: Loc, problem: Callable[[Loc, str], None]
) -> list[dict[str, Any]] | None:
    """The rows a few-shot variant may take its examples from; None (and a problem) if none."""
    if v.split not in ("train", "validation"):
        problem(
            (*loc, "split"),
            f"examples come from train or validation, never from '{v.split}' "
            "(the test cases must stay unseen)",
        )
        return None
    if getattr(spec.data, v.split) is None:
        problem(
            (*loc, "shots"),
            f"takes {v.shots} examples from data.{v.split}, which this suite does not have",
        )
        return None
    if spec.prompt is None or spec.prompt.assistant is None:
        problem((*loc, "shots"), "examples need prompt.assistant, the answer each one shows")
        return None
    return splits[v.split]  # None when the file is missing: reported already


def _pick_shots(
    spec: SuiteSpec, v: VariantSpec, rows: list[dict[str, Any]], cases: list[dict[str, Any]],
    loc: Loc, problem: Callable[[Loc, str], None],
) -> list[dict[str, Any]]:  # fmt: skip
    from harness.suite.prompts import pick_shots

    assert spec.prompt is not None and spec.prompt.assistant is not None
    user = v.user if v.user is not None else (spec.prompt.user or "")
    chosen, left_out = pick_shots(rows, v.shots, v.seed, user, spec.prompt.assistant, cases)
    if len(chosen) < v.shots:
        why = f" ({left_out} left out: they repeat a test prompt or show no answer)"
        problem(
            (*loc, "shots"),
            f"asks for {v.shots} examples; data.{v.split} has {len(chosen)} usable"
            + (why if left_out else ""),
        )
    return chosen


ROLES = ("system", "user", "assistant")


def _is_message(m: Any) -> bool:
    return isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)


def _check_messages(
    name: str, rows: list[dict[str, Any]], data_label: str, problems: list[Problem]
) -> None:
    """Each row's conversation field: {role, content} messages ending with the user's turn."""
    for row in rows:
        messages = row.get(name)
        where = row_at(row)
        if not isinstance(messages, list) or not messages:
            message = f"field '{name}' must be a list of messages"
            problems.append(Problem(data_label, where, message))
            continue
        for m in messages:
            if not _is_message(m):
                problems.append(
                    Problem(data_label, where,
                            f"field '{name}': each message needs a role ({', '.join(ROLES)}) "
                            "and text content")
                )  # fmt: skip
                break
        else:
            if messages[-1]["role"] != "user":
                problems.append(
                    Problem(data_label, where, f"field '{name}' must end with a user message")
                )


def find_suites(root: str | Path) -> list[Path]:
    """Every suite folder below root."""
    return sorted(p.parent for p in Path(root).rglob(SUITE_FILE))
