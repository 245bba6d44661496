"""The suite behind a run, loaded from its folder when it still exists, and reference answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from harness.errors import UserError
from harness.suite import Suite, load_suite
from harness.templating import fill

REFERENCE_FIELDS = ("answer", "reference")


@dataclass
class SuiteView:
    """A loaded suite, or why it could not be loaded."""

    path: str
    suite: Suite | None
    problem: str = ""
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)


@st.cache_resource(show_spinner=False, max_entries=8)
def suite_view(path: str, version: int) -> SuiteView:
    """Load a suite folder once per (path, mtime of suite.yaml); never raises."""
    folder = Path(path)
    if not folder.exists():
        return SuiteView(path, None, f"suite folder {path} no longer exists")
    try:
        suite = load_suite(folder)
    except UserError as e:
        return SuiteView(path, None, "; ".join(e.lines()[:3]))
    except OSError as e:
        return SuiteView(path, None, str(e))
    return SuiteView(path, suite, "", {str(c["id"]): c for c in suite.cases})


def load(path: str) -> SuiteView:
    try:
        version = (Path(path) / "suite.yaml").stat().st_mtime_ns
    except OSError:
        version = 0
    return suite_view(path, version)


def reference(view: SuiteView, case_id: str) -> str | None:
    """The case's target answer: the suite's prompt.assistant filled from the case, else a field
    named `answer` or `reference`."""
    case = view.cases.get(case_id)
    if case is None or view.suite is None:
        return None
    prompt = view.suite.spec.prompt
    if prompt is not None and prompt.assistant:
        try:
            return fill(prompt.assistant, case)
        except KeyError:
            pass
    for name in REFERENCE_FIELDS:
        if name in case:
            value = case[name]
            return value if isinstance(value, str) else str(value)
    return None


def must_pass(view: SuiteView, case_id: str) -> bool:
    return bool(view.cases.get(case_id, {}).get("must_pass"))
