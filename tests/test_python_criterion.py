"""`stdlib-modules`: answers that name modules which do not exist are caught."""

from __future__ import annotations

import pytest

from harness import criteria


def check(output: str, case: dict | None = None, **params) -> criteria.Result:
    return criteria.get("stdlib-modules")(**params)([output], [case or {}])[0]


@pytest.mark.parametrize(
    "output",
    [
        "textwrap.dedent removes common leading whitespace.",
        "Use `os.path.join(a, b)` or `import collections.abc`.",
        "from json import loads",
        "It lives in the xml.etree.ElementTree module.",
        "Call str.join, e.g. ', '.join(parts); see docs.python.org or setup.py.",
        "It returns a new list.",  # names no module: nothing to object to
        "",
    ],
)
def test_real_or_no_modules_pass(output: str) -> None:
    assert check(output).passed


@pytest.mark.parametrize(
    ("output", "fake"),
    [
        ("import stringutils\nstringutils.dedent(text)", "stringutils"),
        ("from textwrapper import dedent", "textwrapper"),
        ("It is defined in the strtools module.", "strtools"),
        ("Use pathutil.expand() for that.", "pathutil"),
    ],
)
def test_invented_modules_fail(output: str, fake: str) -> None:
    r = check(output)
    assert not r.passed
    assert fake in r.detail


def test_known_names_come_from_the_case() -> None:
    # The reference answer mentions the parameter `text`, so `text.split` is not a module claim.
    case = {"answer": "Split text into lines; like text.split('\\n')."}
    assert not check("Same as text.split().").passed
    assert check("Same as text.split().", case, known=["{answer}"]).passed
    assert check("import numpy", known=["numpy"]).passed


@pytest.mark.parametrize(
    ("output", "passed"),
    [
        ("textwrap", True),
        ("`os.path`", True),
        ("The answer is textwrap.", True),
        ("textwraps", False),
        ("I don't know.", False),
        ("", False),
    ],
)
def test_require_a_module_for_routing_answers(output: str, passed: bool) -> None:
    assert check(output, require=True).passed is passed


def test_rejects_unknown_parameters() -> None:
    with pytest.raises(Exception, match="unexpected"):
        criteria.get("stdlib-modules")(colour="red")
