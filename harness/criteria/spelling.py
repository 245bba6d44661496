"""`spelling`: flags misspelled words, the course's third error category beside too long and
repetitive.

The dictionary is the English word list shipped inside the `pyspellchecker` package (nothing is
downloaded), plus the `vocabulary` lists (all three by default): `python`, every word of the
Python documentation that each Python installation carries (`pydoc_data.topics`: `iterable`,
`stdout`, `kwargs`); `science`, standard mathematical and scientific names (`arccos`,
`eigenvector`, `quantile`: `harness.criteria.science`); and `suite`, every word in the suite's own
data (its test, train and validation rows as loaded, from the grader's context: the task's domain
words, `timestamp`, `hostname`). A word unknown as written still passes when dropping a regular
ending (-s, -ed, -ing, -ize...) or prefix (multi-, re-, un-...) leaves a known word: word lists
hold few derived forms, and a misspelled stem stays unknown.

Never checked, because they are not prose: code (``` fences and `backticks`), identifiers
(snake_case, camelCase, dotted.names, calls(), words with digits, ALL-CAPS acronyms), numbers,
URLs, e-mail addresses, paths, words shorter than `min_length`, words found in any of the case's
own fields (the function a question names) and the `known` words or `{field}` templates.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Annotated, Any, Literal

from pydantic import Field

from harness.criteria import Case, Result, Scorer, SuiteRows, context, criterion, per_output
from harness.safe.templating import fill

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.)\S+|\S+@\S+\.\S+", re.IGNORECASE)
_EDGE = "\"'“”‘’([{<*,.;:!?)]}>…"
_CODE_CHARS = re.compile(r"[_/\\=<>{}\[\]#@$%^&*|~+:()]")
_IDENTIFIER = re.compile(r"\w\.\w|\d|[a-z][A-Z]")
_LETTERS = re.compile(r"[A-Za-z]+")
_SUFFIXES = ("ing", "ed", "es", "s", "ly", "er", "'s", "ize", "izes", "ized", "izing")
_PREFIXES = ("multi", "re", "un", "non", "pre", "sub", "super", "inter", "de", "co")
_ACRONYM = re.compile(r"^[A-Z]{2,}s?$")

Vocabulary = Literal["python", "science", "suite"]
_lock = threading.Lock()
_words: dict[str, frozenset[str]] = {}


def _load(name: str) -> frozenset[str]:
    with _lock:
        if name not in _words:
            if name == "english":
                from spellchecker import SpellChecker

                _words[name] = frozenset(SpellChecker(language="en").word_frequency.dictionary)
            elif name == "python":
                from pydoc_data.topics import topics

                text = " ".join(topics.values())
                _words[name] = frozenset(w.casefold() for w in _LETTERS.findall(text))
            elif name == "science":
                from harness.criteria.science import science_words

                _words[name] = science_words()
        return _words[name]


def prose_words(text: str) -> list[str]:
    """The words of the text that read as prose, in order (code, identifiers, URLs left out)."""
    text = _URL.sub(" ", _INLINE.sub(" ", _FENCE.sub(" ", text)))
    out = []
    for chunk in text.split():
        chunk = chunk.strip(_EDGE)
        if not chunk or chunk.endswith("()") or _CODE_CHARS.search(chunk):
            continue
        if _IDENTIFIER.search(chunk) or not chunk.isascii():
            continue
        for part in re.split(r"-+", chunk):
            part = part.strip(_EDGE)
            if _ACRONYM.match(part):
                continue
            if part.isalpha() or re.fullmatch(r"[A-Za-z]+['’][A-Za-z]+", part):
                out.append(part)
    return out


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def case_words(case: Case) -> set[str]:
    return {w.casefold() for s in _strings(dict(case)) for w in _LETTERS.findall(s)}


def is_known(word: str, known: AbstractSet[str]) -> bool:
    w = word.casefold().replace("’", "'")
    if w in known:
        return True
    if any(w.endswith(s) and len(w) - len(s) >= 3 and w[: -len(s)] in known for s in _SUFFIXES):
        return True
    return any(
        w.startswith(p) and len(w) - len(p) >= 4 and is_known(w[len(p) :], known) for p in _PREFIXES
    )


def suite_words(suite: SuiteRows | None) -> frozenset[str]:
    """Every word in the loaded suite's data rows (empty without a suite)."""
    if suite is None:
        return frozenset()
    rows = [*suite.cases, *(suite.train or []), *(suite.validation or [])]
    return frozenset(w for row in rows for w in case_words(row))


@criterion("spelling")
def spelling(
    max_misspelled: Annotated[int, Field(ge=0)] = 0,
    known: list[str] = [],  # noqa: B006
    vocabulary: list[Vocabulary] = ["python", "science", "suite"],  # noqa: B006
    min_length: Annotated[int, Field(ge=1)] = 3,
) -> Scorer:
    """Flags misspelled words (an offline dictionary; code, identifiers and case fields skipped)."""

    lists: list[frozenset[str]] = []  # loaded on the first check, not when a suite loads

    def check(output: str, case: Case) -> Result:
        if not lists:
            lists.extend([_load("english"), *(_load(v) for v in vocabulary if v != "suite")])
            if "suite" in vocabulary:
                lists.append(suite_words(context().suite))
        extra = case_words(case) | {
            w.casefold() for t in known for w in _LETTERS.findall(fill(t, case))
        }
        words = [w for w in prose_words(output) if len(w) >= min_length]
        wrong = [w for w in words if not any(is_known(w, k) for k in (extra, *lists))]
        wrong = list(dict.fromkeys(wrong))
        score = round(1.0 - len(wrong) / len(words), 4) if words else 1.0
        if len(wrong) > max_misspelled:
            shown = ", ".join(f"'{w}'" for w in wrong[:5]) + (" …" if len(wrong) > 5 else "")
            return Result(False, score, f"misspelled: {shown}")
        if wrong:
            return Result(True, score, f"{len(wrong)} unknown word(s) allowed: '{wrong[0]}'")
        return Result(True, score, f"{len(words)} words, none misspelled")

    return per_output(check)
