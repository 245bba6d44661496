"""Every extension point tuneval offers other packages, declared here and loaded one way.

An extension point is an entry-point group (`importlib.metadata`): a package adds to tuneval by
declaring entries in its pyproject.toml, and `entries(group)` is the one function that reads them.

- `tuneval.criteria` (`CRITERIA`): an entry names a module (or function) whose import registers
  criterion types with `@harness.criteria.criterion("name")`; the entry's own name is free.
- `tuneval.trainers` (`TRAINERS`): an entry's name is the trainer's name; it names a trainer
  (the `harness.plugin.Trainer` protocol) or a zero-argument factory of one.
- Integrations (trackers, engines) are built in today; one opened to other packages becomes a
  `Group` here, in `GROUPS`, under the same rule.

One rule for a name clash, in every group: a name belongs to one package. A name claimed by two
packages (a plugin reusing a built-in name, or two plugins the same name) is refused whichever
loads first, for every package that claims it: using it is a user error that names both packages
(exit 2), while the group's other names work as before. Letting either side win would silently
change what a suite or a `--trainer` means when a package is installed or removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points, packages_distributions
from typing import Any, Generic, TypeVar

BUILTIN = "tuneval"  # the package the built-ins come with, as clash messages name it

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    name: str  # the entry-point group
    noun: str  # what one name in it is, for messages
    entry: str  # what an entry must provide


CRITERIA = Group(
    "tuneval.criteria",
    "criterion type",
    "a module or function whose import registers criterion types with "
    "`@harness.criteria.criterion(name)`",
)
TRAINERS = Group(
    "tuneval.trainers",
    "trainer",
    "a trainer (name, description, Config, train) or a zero-argument factory of one, under "
    "the trainer's name",
)
GROUPS = (CRITERIA, TRAINERS)


@dataclass(frozen=True)
class Entry:
    """One entry of a group, as a package declares it."""

    name: str
    target: str  # "module:attribute" or "module"
    source: str  # the distribution that declares it

    def load(self) -> Any:
        """Import the target (ImportError, AttributeError when it is not there)."""
        return EntryPoint(self.name, self.target, "").load()


def entries(group: Group) -> list[Entry]:
    """The installed entries of a group, by distribution then name (a stable order)."""
    found = {
        (ep.dist.name if ep.dist is not None else "?", ep.name, ep.value)
        for ep in entry_points(group=group.name)
    }
    return [Entry(name, target, dist) for dist, name, target in sorted(found)]


_LOADING: ContextVar[str | None] = ContextVar("tuneval_extension_loading", default=None)


@contextmanager
def loading(entry: Entry) -> Iterator[None]:
    """What registers itself while the entry loads belongs to the entry's distribution."""
    token = _LOADING.set(entry.source)
    try:
        yield
    finally:
        _LOADING.reset(token)


def source_of(module: str) -> str:
    """The package a registration made by `module` belongs to: tuneval for its own modules, the
    entry loading now, else the distribution that installed the module (its name if none)."""
    top = module.partition(".")[0]
    if top == "harness":
        return BUILTIN
    loading_now = _LOADING.get()
    if loading_now is not None:
        return loading_now
    dists = packages_distributions().get(top)
    return dists[0] if dists else top


def clash(group: Group, name: str, sources: list[str]) -> str:
    """The one-line refusal of a name that several packages claim."""
    named = sorted(sources, key=lambda s: (s != BUILTIN, s))
    by = ("both " if len(named) == 2 else "") + ", ".join(named[:-1]) + " and " + named[-1]
    plugins = [s for s in named if s != BUILTIN]
    if len(plugins) < len(named):
        fix = f"uninstall {' and '.join(plugins)}, or have its '{name}' renamed"
    else:
        fix = f"uninstall all but one, or have the others' '{name}' renamed"
    return (
        f"{group.noun} '{name}' is defined by {by} ({group.name}): a name belongs to one "
        f"package, so it is refused; {fix}"
    )


class Names(Generic[T]):
    """The names of one group and what each stands for, under the clash rule: a package may
    claim a name again (a module reloaded), another package claiming it makes it refused."""

    def __init__(self, group: Group):
        self.group = group
        self._held: dict[str, T] = {}  # what the first package to claim each name gave
        self._sources: dict[str, list[str]] = {}

    def claim(self, name: str, source: str, value: T) -> None:
        sources = self._sources.setdefault(name, [])
        if source not in sources:
            sources.append(source)
        if sources[0] == source:
            self._held[name] = value

    def refused(self, name: str) -> str:
        """Why the name may not be used ("" when it may)."""
        sources = self._sources.get(name, [])
        return clash(self.group, name, sources) if len(sources) > 1 else ""

    def get(self, name: str) -> T | None:
        """What the name stands for, None when it is unknown or refused."""
        return None if self.refused(name) else self._held.get(name)

    def usable(self) -> dict[str, T]:
        """Every name that is not refused, sorted."""
        return {n: v for n, v in self.all().items() if not self.refused(n)}

    def all(self) -> dict[str, T]:
        """Every claimed name, refused ones too (with what its first package gave), sorted."""
        return dict(sorted(self._held.items()))
