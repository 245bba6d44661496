"""Python-aware criteria: `stdlib-modules` catches answers that name modules which do not exist.

Module names are checked against `sys.stdlib_module_names` (top-level names only: checking a
submodule would mean importing its package, and model output must never trigger an import) plus
the names the rubric declares known, so a suite about a third-party library can list its own.
"""

from __future__ import annotations

import builtins
import keyword
import re
import sys

from harness.criteria import Case, Result, Scorer, criterion, per_output
from harness.safe.templating import fill

STDLIB: frozenset[str] = frozenset(sys.stdlib_module_names)

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
# `from a.b import x` anywhere; `import a.b` only where it reads as code (line start, backticks,
# a prompt), since prose says "import it".
_FROM = re.compile(rf"\bfrom\s+`?({_DOTTED})`?\s+import\b")
_IMPORT = re.compile(rf"(?:^|`|>>>)\s*import\s+({_DOTTED})", re.MULTILINE)
# "the foo module", "`foo` module", "module `foo`": prose that names a module.
_PROSE = re.compile(
    rf"\bthe\s+`?({_IDENT}(?:\.{_IDENT})*)`?\s+module\b|`({_DOTTED})`\s+module\b"
    rf"|\bmodule\s+`({_DOTTED})`",
    re.IGNORECASE,
)
# A dotted reference `lower.name`, not preceded by a dot or word (so we see its first segment),
# and not part of a URL, an e-mail address or a file name.
_DOTREF = re.compile(rf"(?<![\w./:@-])([a-z_][a-z0-9_]*)((?:\.{_IDENT})+)(?![\w/@-])")
_BARE = re.compile(rf"^[`'\"*]*({_DOTTED})[`'\"*]*[.!]?$")

_SUFFIXES = frozenset(  # file names and domains: `setup.py`, `python.org`
    "py pyc pyi txt json csv cfg ini toml yaml yml md rst html xml log zip gz tar so dll exe sh"
    " org com net io".split()
)
# Words that stand before "module" in prose without being a module's name.
_PROSE_WORDS = frozenset(
    "python same following main built builtin standard stdlib relevant appropriate given new"
    " parent top specified whole entire current other third corresponding c extension".split()
)
# Dotted references whose first segment is obviously not a module: builtins (`str.join`),
# keywords, conventional variable names and Latin abbreviations.
_NOT_MODULES = frozenset(
    {n for n in dir(builtins) if n.islower()}
    | set(keyword.kwlist)
    | set("self cls obj etc vs eg ie".split())
)


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _known_names(known: list[str], case: Case) -> set[str]:
    """Every identifier in the filled `known` templates (module names, the case's own text)."""
    out: set[str] = set()
    for template in known:
        out.update(re.findall(_IDENT, fill(template, case)))
    return out


def module_mentions(text: str) -> tuple[list[str], list[str]]:
    """(names stated to be modules, first segments of other dotted references) in order."""
    stated = _FROM.findall(text) + _IMPORT.findall(text)
    stated += [n for groups in _PROSE.findall(text) for n in groups if n]
    stated = [n for n in stated if n.casefold() not in _PROSE_WORDS]
    bare = _BARE.match(text.strip())
    if bare and not text.strip().endswith("()"):
        stated.append(bare.group(1))
    dotted = []
    for first, rest in _DOTREF.findall(text):
        if len(first) == 1 or first in _NOT_MODULES or rest.rsplit(".", 1)[-1] in _SUFFIXES:
            continue
        dotted.append(first)
    return stated, dotted


@criterion("stdlib-modules")
def stdlib_modules(known: list[str] = [], require: bool = False) -> Scorer:  # noqa: B006
    """Every module the output names is a real standard-library (or known) module.

    Checks `import x` / `from x import`, "the x module" and dotted references such as
    `textwrap.dedent`. `known` lists extra names or `{field}` templates whose identifiers count
    as known (a case's reference answer, say, so its parameter names in `text.split` pass).
    With `require: true` the output must also name at least one module (a routing answer).
    """

    def check(output: str, case: Case) -> Result:
        allowed = _known_names(known, case)
        stated, dotted = module_mentions(output)
        fake = [n for n in stated if _top(n) not in STDLIB and _top(n) not in allowed]
        fake += [n for n in dotted if n not in STDLIB and n not in allowed]
        fake = list(dict.fromkeys(fake))
        if fake:
            shown = ", ".join(f"'{n}'" for n in fake[:3])
            return Result(False, 0.0, f"names {shown}, not a standard-library module")
        real = [n for n in stated if _top(n) in STDLIB or _top(n) in allowed]
        if require and not real:
            # A sentence ("It is in textwrap.") still names a module when a word is one.
            real = [w for w in re.findall(_IDENT, output) if w in STDLIB or w in allowed][:1]
        if require and not real:
            return Result(False, 0.0, "names no module")
        tops = {_top(n) for n in real}
        names = list(dict.fromkeys(real + [n for n in dotted if n in STDLIB and n not in tops]))
        if not names:
            return Result(True, None, "names no module")
        return Result(True, 1.0, "real modules: " + ", ".join(names[:3]))

    return per_output(check)
