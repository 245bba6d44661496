"""The spelling criterion: real misspellings are named; code, identifiers, numbers, URLs and the
case's own words are never flagged."""

from __future__ import annotations

import pytest

from harness import criteria
from harness.criteria.spelling import prose_words


def check(output: str, case: dict | None = None, **params) -> criteria.Result:
    return criteria.get("spelling")(**params)([output], [case or {}])[0]


def test_names_the_misspelled_words() -> None:
    r = check("The function recieves the data and seperates it.")
    assert not r.passed
    assert "'recieves'" in r.detail and "'seperates'" in r.detail
    assert r.score == pytest.approx(1 - 2 / 7, abs=1e-4)  # "it" is under min_length


@pytest.mark.parametrize(
    "text",
    [
        "Call textwrap.dedentt() on the text.",  # dotted name, call
        "Pass `kwargz` to it.",  # inline code
        "Set the snake_casee option.",  # snake_case
        "Use the parseJsonn helper.",  # camelCase
        "It returns 12345 or 0x1f or v2betaa.",  # numbers, words with digits
        "See https://docs.exampel.org/foo or mail bob@exampel.com.",  # URL, e-mail
        "Read /etc/hostnamee first.",  # a path
        "The HTTPX and JSONN formats.",  # acronyms
        "```\nfoo = barr(bazz)\n```\nThat is all.",  # a code fence
    ],
)
def test_identifiers_and_code_are_not_flagged(text: str) -> None:
    """The planted bug: a checker that looks at identifiers flags every one of these."""
    r = check(text)
    assert r.passed, r.detail


def test_words_from_the_case_and_known_are_accepted() -> None:
    case = {"name": "dedent", "question": "What does frobnicate do?"}
    assert check("dedent and frobnicate strip margins.", case).passed
    assert not check("dedent and frobnicate strip margins.").passed
    assert check("The zorblax widget.", known=["zorblax"]).passed
    assert check("The zorblax widget.", {"term": "zorblax"}, known=["{term}"]).passed


def test_python_vocabulary_and_inflections() -> None:
    assert check("It returns an iterable of tokens from stdout, keyed by kwargs.").passed
    assert check("It tokenizes the whitespace-separated text.").passed
    r = check("It returns an iterable.", vocabulary=[])
    assert not r.passed and "'iterable'" in r.detail


def test_threshold_allows_a_few() -> None:
    assert check("Teh cat recieved it.", max_misspelled=2).passed
    assert not check("Teh cat recieved it.", max_misspelled=1).passed


def test_prose_words_keeps_contractions_and_hyphen_parts() -> None:
    assert prose_words("It's a well-known, don't-care value.") == [
        "It's", "a", "well", "known", "don't", "care", "value",
    ]  # fmt: skip


def test_suite_vocabulary_comes_from_the_suite_data(tmp_path) -> None:
    from harness.suite.loader import load_suite
    from tests.conftest import write_suite

    folder = write_suite(tmp_path / "s", train=[{"function": "zorbulate", "module": "frob"}])
    assert not check("It will zorbulate the text.").passed  # no suite: an unknown word
    with criteria.using(criteria.Context(suite=load_suite(folder))):
        assert check("It will zorbulate the text.").passed
        assert not check("It will zorbulate the text.", vocabulary=["python"]).passed


def test_science_vocabulary_knows_standard_math_names() -> None:
    """The review's false positive: 'arccos' (numpy's name) turned a correct answer bad."""
    text = "It returns the arccos of x, like the arcsine, lgamma and the hypot of a quantile."
    assert check(text).passed
    r = check(text, vocabulary=["python", "suite"])
    assert not r.passed and "'arccos'" in r.detail and "'arcsine'" in r.detail
    assert not check("It returns the arcoss of x.").passed  # a misspelling of it still is one
