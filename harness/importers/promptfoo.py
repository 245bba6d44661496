"""promptfoo: a promptfooconfig.yaml with its prompts, defaultTest and tests (inline, or
`file://` CSV, JSONL, JSON or YAML) as a suite.

Each test becomes a case per variable combination (promptfoo expands string-list variables into
one test each). `defaultTest` is inherited as promptfoo does it: its variables under the test's,
its assertions before the test's (unless `options.disableDefaultAsserts`), its threshold, metadata
and prompt prefix/suffix unless the test has its own. CSV rows read `__expected` columns through
promptfoo's assertion strings (`contains:x`, `not-regex:...`, plain text meaning equals),
`__threshold`, `__description`, `__metadata:key`, `__prefix` and `__suffix`.

A case carries its checks (`checks`) and threshold; the rubric has one `weighted` criterion in
`good` reading them, so a case passes exactly when promptfoo's test would (see
`harness.criteria.group`). The case keeps the test's description and position in `source`.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from itertools import product
from pathlib import Path
from typing import Any

from harness.errors import Problem, UserError
from harness.importers import Imported, ImportOptions, at, nunjucks
from harness.importers import source as files
from harness.importers.promptfoo_checks import Refused, check

_TEST_KEYS = {"description", "vars", "assert", "threshold", "metadata", "options", "provider",
              "providerOutput", "metric"}  # fmt: skip
_CODE_OPTIONS = {"transform", "transformVars", "postprocess", "storeOutputAs"}
_RESERVED = {"id", "source", "metadata", "checks", "threshold", "must_pass", "_prefix", "_suffix"}


def read(source: Path, options: ImportOptions) -> Imported:
    config_path = source / "promptfooconfig.yaml" if source.is_dir() else source
    base = config_path.parent
    config = _yaml(config_path)
    if not isinstance(config, dict):
        raise UserError(f"{config_path}: a promptfoo config must be a mapping")
    imported = Imported("promptfoo", str(config.get("description") or ""), {}, [], {})
    imported.sources.append(config_path)
    template = _prompt(config, base, options, imported, config_path)
    default = config.get("defaultTest") or {}
    if isinstance(default, str):
        default = _load_file(default, base, imported, config_path)
    wrong = _shape_problems(default, f"{config_path.name}:defaultTest")
    if wrong:
        raise UserError(wrong)
    tests = _tests(config.get("tests"), base, imported, config_path)
    if config.get("scenarios"):
        imported.refused.append(
            Problem(str(config_path), "scenarios", "scenarios are not imported")
        )
    counts: Counter[str] = Counter()
    for n, (where, test) in enumerate(tests, start=1):
        wrong = _shape_problems(test, where)
        if wrong:
            imported.refused += wrong
            continue
        with at(where):
            _add_cases(imported, n, where, _merged(test, default), base, template, counts)
    imported.mapped = counts
    imported.prompt = _prompt_spec(template, imported)
    imported.rubric = {
        "good": [
            {
                "id": "promptfoo",
                "type": "weighted",
                "checks_from": "checks",
                "threshold_from": "threshold",
            }
        ]  # fmt: skip
    }
    imported.notes.append("providers are not imported: evaluate any model with `tuneval eval`")
    return imported


def _yaml(path: Path) -> Any:
    # promptfoo reads YAML with js-yaml, a YAML 1.2 reader: the core schema, bounded
    return files.load_yaml(path)


def _load_file(ref: str, base: Path, imported: Imported, where: Path) -> Any:
    path = files.inside(base, ref, where)
    imported.sources.append(path)
    return _yaml(path)


def _prompt(
    config: dict, base: Path, options: ImportOptions, imported: Imported, path: Path
) -> Any:
    prompts = config.get("prompts") or ["{{prompt}}"]
    prompts = prompts if isinstance(prompts, list) else [prompts]
    if not 0 <= options.prompt < len(prompts):
        raise UserError(f"{path}: --prompt {options.prompt}: the config has {len(prompts)} prompts")
    if len(prompts) > 1:
        imported.notes.append(f"prompt {options.prompt} of {len(prompts)} imported (--prompt N)")
    chosen = prompts[options.prompt]
    if isinstance(chosen, dict):
        chosen = chosen.get("raw") or chosen.get("id") or ""
    if not isinstance(chosen, str):
        raise UserError(f"{path}: prompts[{options.prompt}] must be text or file://")
    if chosen.startswith("file://"):
        if Path(chosen).suffix not in (".txt", ".md", ".json", ".j2"):
            raise UserError(f"{path}: prompt {chosen}: only text and JSON chat prompt files")
        file = files.inside(base, chosen, path)
        imported.sources.append(file)
        chosen = files.read_text(file, files.suite_files.YAML_LIMIT)
    try:
        chat = json.loads(chosen) if chosen.lstrip().startswith("[") else None
    except ValueError:
        chat = None
    return chat if isinstance(chat, list) else chosen


def _prompt_spec(template: Any, imported: Imported) -> dict[str, Any]:
    """suite.yaml's prompt: one user template, or system + user from a JSON chat prompt."""
    try:
        if isinstance(template, str):
            return {"user": "{_prefix}" + nunjucks.to_template(template) + "{_suffix}"}
        roles = [m.get("role") for m in template]
        if roles not in (["user"], ["system", "user"]):
            raise ValueError("a chat prompt is imported as system + user messages only")
        spec = {m["role"]: nunjucks.to_template(str(m.get("content", ""))) for m in template}
        spec["user"] = "{_prefix}" + spec["user"] + "{_suffix}"
        return spec
    except ValueError as e:
        raise UserError(f"prompt: {e}") from None


def _tests(raw: Any, base: Path, imported: Imported, path: Path) -> list[tuple[str, dict]]:
    """(where, test) for every test, reading file:// test files."""
    entries = raw if isinstance(raw, list) else [raw] if raw else []
    out: list[tuple[str, dict]] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            out.append((f"{path.name}:tests[{i}]", entry))
            continue
        if not isinstance(entry, str) or not entry.startswith("file://"):
            raise UserError(f"{path}: tests[{i}] must be a test or a file:// reference")
        file = files.inside(base, entry, path)
        imported.sources.append(file)
        out += _test_file(file)
    return out


def _test_file(file: Path) -> list[tuple[str, dict]]:
    text = files.read_text(file, encoding="utf-8-sig")
    if file.suffix == ".csv":
        return _csv_tests(file, text)
    if file.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                out.append((f"{file.name}:line {n}", _parse(json.loads, line, f"{file}:line {n}")))
        return out
    if file.suffix == ".json":
        data = _parse(json.loads, text, str(file))
    else:
        data = files.parse_yaml(text, str(file))
    data = data if isinstance(data, list) else [data]
    return [(f"{file.name}[{i}]", t) for i, t in enumerate(data)]


def _csv_tests(file: Path, text: str) -> list[tuple[str, dict]]:
    rows = csv.DictReader(io.StringIO(text))
    out = []
    try:
        for row in rows:
            if None in row or None in row.values():  # more cells than columns, or fewer
                more = "more" if None in row else "fewer"
                raise UserError(f"{file}:line {rows.line_num}: {more} cells than the header")
            out.append((f"{file.name}:line {rows.line_num}", _csv_test(row)))
    except csv.Error as e:  # a cell over csv's field limit, a NUL byte
        raise UserError(f"{file}:line {rows.line_num}: unreadable CSV: {e}") from None
    header = rows.fieldnames or []
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise UserError(f"{file}:line 1: column '{twice[0]}' appears twice")
    return out


def _parse(parse: Any, text: str, where: str) -> Any:
    try:
        return parse(text)
    except (ValueError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise UserError(f"{where}: cannot parse: {why}") from None


def _csv_test(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as promptfoo reads it (src/csv.ts)."""
    from harness.importers.promptfoo_csv import csv_row

    return csv_row(row)


_SHAPES: dict[str, tuple[type, ...]] = {"vars": (dict,), "assert": (list,), "options": (dict,),
                                        "metadata": (dict,), "threshold": (int, float)}  # fmt: skip


def _shape_problems(test: Any, where: str) -> list[Problem]:
    """A test (or defaultTest) whose keys hold what promptfoo expects, so it can be merged."""
    if not isinstance(test, dict):
        return [Problem(where, "", "a test must be a mapping")]
    names = {dict: "a mapping", list: "a list", int: "a number"}
    return [
        Problem(
            where, key, f"must be {names[kinds[0]]}, not {json.dumps(test[key], default=str)[:40]}"
        )
        for key, kinds in _SHAPES.items()
        if test.get(key) is not None
        and (not isinstance(test[key], kinds) or isinstance(test[key], bool))
    ]


def _merged(test: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """The test with defaultTest inherited, as promptfoo's evaluator merges them."""
    options = {**(default.get("options") or {}), **(test.get("options") or {})}
    asserts = [] if options.get("disableDefaultAsserts") else list(default.get("assert") or [])
    return {
        **test,
        "vars": {**(default.get("vars") or {}), **(test.get("vars") or {})},
        "assert": asserts + list(test.get("assert") or []),
        "threshold": test.get("threshold", default.get("threshold")),
        "metadata": {**(default.get("metadata") or {}), **(test.get("metadata") or {})},
        "options": options,
    }


def _combinations(variables: dict[str, Any]) -> list[dict[str, Any]]:
    """promptfoo's var expansion: a list of strings gives one test per string."""
    choices = [
        v if isinstance(v, list) and v and isinstance(v[0], str) else [v]
        for v in variables.values()
    ]
    count = 1
    for c in choices:
        count *= len(c)
        if count > files.MAX_CASES:
            raise ValueError(f"its variables expand to more than {files.MAX_CASES} cases")
    return [dict(zip(variables, combo, strict=True)) for combo in product(*choices)]


def _add_cases(
    imported: Imported, n: int, where: str, test: dict[str, Any], base: Path, template: Any,
    counts: Counter[str],
) -> None:  # fmt: skip
    prompt_vars = _template_vars(template)
    problems = _test_problems(test, where)
    if problems:
        imported.refused += problems
        return
    options = test["options"]
    try:
        expansions = (
            [test["vars"]] if options.get("disableVarExpansion") else _combinations(test["vars"])
        )
    except ValueError as e:
        raise UserError(f"{where}: vars: {e}") from None
    if len(imported.cases) + len(expansions) > files.MAX_CASES:
        raise UserError(f"{where}: the tests expand to more than {files.MAX_CASES} cases")
    for k, variables in enumerate(expansions):
        clash = sorted(set(variables) & _RESERVED)
        if clash:
            imported.refused.append(Problem(where, "vars", f"variable '{clash[0]}' is reserved"))
            return
        checks = []
        for i, assertion in enumerate(test["assert"]):
            try:
                checks.append(check(assertion, variables, base, counts))
            except Refused as e:
                imported.refused.append(Problem(where, f"assert[{i}]", str(e)))
        if test["assert"] and not checks:
            # every assertion refused: kept, the case would pass any answer (--skip-refused
            # drops the test instead, and its refusals say why)
            continue
        case_id = f"t{n:04d}" + (f"-{k + 1}" if len(expansions) > 1 else "")
        source = {"file": where.split(":")[0], "where": where}
        if test.get("description"):
            source["description"] = test["description"]
        imported.cases.append({
            "id": case_id,
            **{name: nunjucks.js_string(v) for name, v in variables.items()},
            **{name: "" for name in prompt_vars if name not in variables},  # undefined: ""
            "_prefix": str(options.get("prefix") or ""),
            "_suffix": str(options.get("suffix") or ""),
            "checks": checks,
            "threshold": test["threshold"],
            "source": source,
            "metadata": test["metadata"],
        })  # fmt: skip


def _template_vars(template: Any) -> list[str]:
    texts = (
        [template] if isinstance(template, str) else [str(m.get("content", "")) for m in template]
    )
    try:
        return [name for text in texts for name in nunjucks.variables(text)]
    except ValueError:
        return []  # reported when the prompt itself is converted


def _test_problems(test: dict[str, Any], where: str) -> list[Problem]:
    problems = []
    unknown = sorted(set(test) - _TEST_KEYS)
    if unknown:
        problems.append(Problem(where, unknown[0], "not a promptfoo test key tuneval imports"))
    code = sorted(set(test["options"]) & _CODE_OPTIONS)
    if code or test.get("assertScoringFunction"):
        problems.append(Problem(where, f"options.{code[0] if code else ''}", "runs code"))
    if test.get("provider"):
        problems.append(Problem(where, "provider", "a per-test provider is not imported"))
    for name, value in test["vars"].items():
        if isinstance(value, str) and value.startswith("file://"):
            problems.append(Problem(where, f"vars.{name}", "file:// variables are not imported"))
    return problems
