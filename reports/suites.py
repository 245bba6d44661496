"""The suite behind a run, loaded from its folder when it still exists, and reference answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from harness.errors import UserError
from harness.safe.templating import fill
from harness.suite.loader import Suite, load_suite

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


def for_run(run: dict[str, Any]) -> SuiteView:
    """The suite a run was evaluated on: its recorded folder, or, when that folder has moved,
    a folder of the same name under ./suites whose files have the run's fingerprint."""
    view = load(run["suite_path"])
    if view.suite is not None:
        return view
    moved = Path("suites") / str(run["suite"])
    if moved.is_dir():
        other = load(str(moved.resolve()))
        if other.suite is not None and other.suite.fingerprint == run["suite_fingerprint"]:
            return other
    return view


@st.cache_data(show_spinner=False, max_entries=16)
def _leaks(path: str, fingerprint: str) -> dict[str, dict[str, Any]]:
    from harness.suite.leakage import leaked_cases

    view = load(path)
    return leaked_cases(view.suite) if view.suite is not None else {}


def leaks(view: SuiteView) -> dict[str, dict[str, Any]]:
    """case id -> how its prompt appears in the training data
    (`harness.suite.leakage.leaked_cases`); cached per suite fingerprint, so an edited train split
    is checked again."""
    if view.suite is None:
        return {}
    return _leaks(view.path, view.suite.fingerprint)


def leak_note(view: SuiteView, run: dict[str, Any]) -> str:
    """Why leakage flags may be missing or stale for this run, or ''."""
    if view.suite is None:
        return f"Leakage not checked: {view.problem}."
    if view.suite.train is None:
        return ""
    if view.suite.fingerprint != run["suite_fingerprint"]:
        return "Leakage checked against the suite folder as it is now; it changed since this run."
    return ""


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
