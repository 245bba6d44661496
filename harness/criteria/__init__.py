"""The criterion registry.

A criterion type is a factory function, registered by name with `@criterion("name")`, whose keyword
arguments are the parameters written in the rubric. It returns a scorer: a callable that takes the
model outputs and their cases (batched, so model-based criteria can batch) and returns one
`Result` per output. Third-party packages add types through the entry-point group
`tuneval.criteria` (each entry point names a module or function whose import registers them);
a type name that two packages register (a plugin reusing a built-in's) is refused, as
`harness.extensions` rules for every extension point.

A result's `passed` always means "this check is satisfied": no defect for the `bad` detectors,
requirement met for `good` and `better`.

A factory gets only its rubric parameters. What a criterion needs beyond them (the store, for
registered model names and the judge cache; the suite folder, for local files; the loaded suite's
rows, for a vocabulary drawn from its data) it reads from `context()`, which the grader sets while
it scores; outside a grader it is empty.

A scorer whose parameters live partly in the cases (e.g. `weighted` with `checks_from`) may carry
a `check_case(case) -> list[str]` attribute: the suite loader calls it on every test case and
reports what it returns at that case's line, so a bad case is refused before anything runs.

A registration may say more, for the suite loader and the runner: `runs_code`, what code the
type executes (suites are data, so a suite using it needs `--trust-suite-code`); `reads`, the
files of the suite folder it reads (the loader keeps them inside the folder and hashes them into
the suite fingerprint); `nested`, the criterion specs it holds (`weighted`'s checks), so that
`uses` lists every criterion a rubric and its cases use, however deep.

May import: harness.errors, harness.extensions, harness.safe, harness.generation (to load an
embedding model); never the suite, grading or evaluation rooms that use them (a judge comes
through `context()`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

import pydantic

from harness import extensions
from harness.safe.templating import Loc


@dataclass(frozen=True)
class Result:
    passed: bool
    score: float | None = None
    detail: str = ""
    info: Mapping[str, Any] | None = None  # machine-readable extras (a judge's choice), stored

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"passed": self.passed, "score": self.score, "detail": self.detail}
        if self.info:
            out["info"] = dict(self.info)
        return out


Case = Mapping[str, Any]


class Scorer(Protocol):
    def __call__(self, outputs: Sequence[str], cases: Sequence[Case]) -> list[Result]: ...


Factory = Callable[..., Scorer]


class SuiteRows(Protocol):
    """What a criterion may read of the suite being graded, as it was loaded (the suite
    loader's `Suite` is one): its rows, never the files again."""

    @property
    def cases(self) -> Sequence[Case]: ...
    @property
    def train(self) -> Sequence[Case] | None: ...
    @property
    def validation(self) -> Sequence[Case] | None: ...


@dataclass(frozen=True)
class Context:
    """Where a grading happens: what criteria may need beyond their parameters."""

    store: Any = None  # harness.store.Store, or None
    suite_path: Path | None = None
    progress: bool = False
    # A judge model by its spec, bound to this grading's store and progress (the grader passes
    # `harness.grading.judges.judge_for`): criteria never import the grading room they serve.
    judges: Callable[[str], Any] | None = None
    suite: SuiteRows | None = None  # the loaded suite


_CONTEXT: ContextVar[Context | None] = ContextVar("tuneval_criteria_context", default=None)


def context() -> Context:
    return _CONTEXT.get() or Context()


@contextmanager
def using(ctx: Context) -> Iterator[Context]:
    """Set the context for the scorers called inside the block."""
    token = _CONTEXT.set(ctx)
    try:
        yield ctx
    finally:
        _CONTEXT.reset(token)


# The criterion specs a criterion holds, each with where it stands among the parameters: with
# no case, those written in the parameters; given a case, only those the case itself carries.
Nested = Callable[[Mapping[str, Any], Case | None], list[tuple[Loc, Mapping[str, Any]]]]
# The files a criterion reads, from its parameters and the suite folder.
Reads = Callable[[Mapping[str, Any], Path], list[Path]]


@dataclass(frozen=True)
class Criterion:
    """A registered criterion type: everything the registry knows of it."""

    name: str
    factory: Factory  # validated by pydantic from its hints
    source: str  # "tuneval", or the distribution that registered it
    provides: frozenset[str] = frozenset()
    runs_code: str = ""
    reads: Reads | None = None
    nested: Nested | None = None


_REGISTRY: extensions.Names[Criterion] = extensions.Names(extensions.CRITERIA)
_BUILTIN_MODULES = (
    "harness.criteria.text",
    "harness.criteria.python",
    "harness.criteria.similarity",
    "harness.criteria.spelling",
    "harness.criteria.metric",
    "harness.criteria.judge",
    "harness.criteria.match",
    "harness.criteria.filtered",
    "harness.criteria.jsonmatch",
    "harness.criteria.group",
)
_loaded = False


def criterion(
    name: str, provides: Sequence[str] = (), *, runs_code: str = "", reads: Reads | None = None,
    nested: Nested | None = None,
) -> Callable[[Callable[..., Scorer]], Factory]:  # fmt: skip
    """Register a criterion factory; its parameters are validated by pydantic from its hints.

    `provides` names placeholders the criterion fills itself (a judge's `{output}`), so the suite
    loader does not look for them among the case fields. `runs_code` ("runs an `evaluate`
    metric module"), `reads` and `nested`: see above."""

    def register(factory: Callable[..., Scorer]) -> Factory:
        checked = pydantic.validate_call(config={"arbitrary_types_allowed": True})(factory)
        source = extensions.source_of(factory.__module__)
        record = Criterion(name, checked, source, frozenset(provides), runs_code, reads, nested)
        _REGISTRY.claim(name, source, record)
        return checked

    return register


def _record(name: str) -> Criterion | None:
    """A usable type's record (None for an unknown or refused one)."""
    _load()
    return _REGISTRY.get(name)


def provided(name: str) -> frozenset[str]:
    """Placeholders a criterion type fills itself."""
    record = _record(name)
    return record.provides if record is not None else frozenset()


def runs_code(name: str) -> str:
    """What code a criterion type executes ("" when it runs none the suite names)."""
    record = _record(name)
    return record.runs_code if record is not None else ""


def reads(name: str, params: Mapping[str, Any], folder: Path) -> list[Path]:
    """The files a criterion with these parameters reads (none for most types)."""
    record = _record(name)
    if record is None or record.reads is None:
        return []
    return record.reads(params, folder)


@dataclass(frozen=True)
class Use:
    """One criterion as a rubric uses it: a rubric entry, or a check held inside one (at `loc`
    among the entry's parameters, or in the case `case` carries, for per-case checks)."""

    id: str  # the rubric entry's id
    type: str
    params: Mapping[str, Any]
    loc: Loc = ()
    case: Case | None = None


def uses(
    cid: str, type: str, params: Mapping[str, Any], cases: Sequence[Case] = ()
) -> Iterator[Use]:
    """The rubric entry and every criterion spec nested in it, depth first; the checks that
    `cases` carry themselves come too. Specs without a string `type` are skipped (the entry's
    own validation reports them)."""
    _load()
    records = _REGISTRY.usable()

    def walk(type_: str, p: Mapping[str, Any], loc: Loc, case: Case | None) -> Iterator[Use]:
        yield Use(cid, type_, p, loc, case)
        record = records.get(type_)
        nested = record.nested if record is not None else None
        if nested is None:
            return
        found = [(case, sub, spec) for sub, spec in nested(p, None)]
        carriers = [case] if case is not None else list(cases)
        found += [(c, sub, spec) for c in carriers for sub, spec in nested(p, c)]
        for c, sub, spec in found:
            kind = spec.get("type") if isinstance(spec, Mapping) else None
            if isinstance(kind, str):
                yield from walk(kind, spec, (*loc, *sub), c)

    yield from walk(type, params, (), None)


def per_output(check: Callable[[str, Case], Result]) -> Scorer:
    """Turn a one-output check into a batched scorer."""

    def scorer(outputs: Sequence[str], cases: Sequence[Case]) -> list[Result]:
        return [check(o, c) for o, c in zip(outputs, cases, strict=True)]

    return scorer


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        import_module(module)
    for entry in extensions.entries(extensions.CRITERIA):
        with extensions.loading(entry):
            entry.load()


def registered() -> dict[str, Factory]:
    """Every usable criterion type (not the refused ones) by name."""
    _load()
    return {n: r.factory for n, r in _REGISTRY.usable().items()}


def get(name: str) -> Factory:
    """The type's factory; KeyError, with the line to show, for an unknown or refused one."""
    record = _record(name)
    if record is not None:
        return record.factory
    refused = _REGISTRY.refused(name)
    if refused:
        raise KeyError(refused)
    known = ", ".join(_REGISTRY.usable())
    raise KeyError(f"unknown criterion type '{name}' (known: {known})")


def describe(name: str) -> str:
    """The first line of a criterion type's docstring."""
    doc = (get(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
