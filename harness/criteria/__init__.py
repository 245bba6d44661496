"""The criterion registry.

A criterion type is a factory function, registered by name with `@criterion("name")`, whose keyword
arguments are the parameters written in the rubric. It returns a scorer: a callable that takes the
model outputs and their cases (batched, so model-based criteria can batch) and returns one
`Result` per output. Third-party packages add types through the entry-point group
`tuneval.criteria` (each entry point names a module or function whose import registers them).

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import pydantic

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

_REGISTRY: dict[str, Factory] = {}
_PROVIDES: dict[str, frozenset[str]] = {}
_RUNS_CODE: dict[str, str] = {}
_READS: dict[str, Reads] = {}
_NESTED: dict[str, Nested] = {}
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
        _REGISTRY[name] = checked
        _PROVIDES[name] = frozenset(provides)
        if runs_code:
            _RUNS_CODE[name] = runs_code
        if reads is not None:
            _READS[name] = reads
        if nested is not None:
            _NESTED[name] = nested
        return checked

    return register


def provided(name: str) -> frozenset[str]:
    """Placeholders a criterion type fills itself."""
    _load()
    return _PROVIDES.get(name, frozenset())


def runs_code(name: str) -> str:
    """What code a criterion type executes ("" when it runs none the suite names)."""
    _load()
    return _RUNS_CODE.get(name, "")


def reads(name: str, params: Mapping[str, Any], folder: Path) -> list[Path]:
    """The files a criterion with these parameters reads (none for most types)."""
    _load()
    read = _READS.get(name)
    return read(params, folder) if read is not None else []


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

    def walk(type_: str, p: Mapping[str, Any], loc: Loc, case: Case | None) -> Iterator[Use]:
        yield Use(cid, type_, p, loc, case)
        nested = _NESTED.get(type_)
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
    for ep in entry_points(group="tuneval.criteria"):
        ep.load()


def registered() -> dict[str, Factory]:
    _load()
    return dict(_REGISTRY)


def get(name: str) -> Factory:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown criterion type '{name}' (known: {known})") from None


def describe(name: str) -> str:
    """The first line of a criterion type's docstring."""
    doc = (get(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
