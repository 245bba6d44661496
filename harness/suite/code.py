"""What a suite's criteria need beyond their parameters, found when the suite loads: the code
they run (a `metric`'s module: refused without --trust-suite-code) and the files they read (kept
inside the suite folder and hashed into its fingerprint). Every criterion counts: rubric entries,
checks nested in them, and the checks each case carries (`weighted` with `checks_from`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import criteria
from harness.errors import Problem
from harness.safe import files as suite_files
from harness.safe.templating import Loc


def check_criteria_code(
    spec: Any, rows: list[dict[str, Any]] | None, folder: Path, labels: tuple[str, str],
    where: Callable[[Loc], str], files: dict[str, str], problems: list[Problem],
    needs_code: list[Problem],
) -> None:  # fmt: skip
    """Every criterion the rubric and the cases' own checks use: one that runs code is recorded
    in `needs_code`; the files one reads stay inside the folder and join the fingerprint."""
    from harness.suite.lmeval_config import TRUST_FLAG

    known = criteria.registered()
    per_case: dict[tuple[str, str], int] = {}  # a case's check: the first one located, counted
    for section, specs in spec.rubric.sections():
        for i, c in enumerate(specs):
            for use in criteria.uses(c.id, c.type, c.params(), rows or []):
                if use.type not in known:
                    continue
                if use.case is None:
                    at = (labels[0], where(("rubric", section, i, *use.loc)))
                else:
                    at = (labels[1], suite_files.row_at(use.case))
                what = criteria.runs_code(use.type)
                if what and use.case is not None:
                    per_case[c.id, what] = per_case.get((c.id, what), 0) + 1
                if what and (use.case is None or per_case[c.id, what] == 1):
                    text = f"{c.id}: {use.type} {what}; suites are data ({TRUST_FLAG} allows it)"
                    needs_code.append(Problem(*at, text))
                try:
                    read = criteria.reads(use.type, use.params, folder)
                except (OSError, ValueError) as e:
                    problems.append(Problem(*at, f"{c.id}: {use.type}: {e}"))
                    continue
                for path in read:
                    _hash_read(path, folder, f"{c.id}: {use.type}", at, files, problems)
    for (cid, _), n in per_case.items():
        if n > 1:
            needs_code.append(Problem(labels[1], "", f"{cid}: and {n - 1} more such checks"))


def _hash_read(
    path: Path, folder: Path, who: str, at: tuple[str, str], files: dict[str, str],
    problems: list[Problem],
) -> None:  # fmt: skip
    """A file a criterion reads: inside the suite folder, hashed into the fingerprint."""
    try:
        resolved = path.resolve()
        if not resolved.is_relative_to(folder.resolve()):
            problems.append(Problem(*at, f"{who}: {path} is outside the suite folder"))
        elif not path.is_file():
            problems.append(Problem(*at, f"{who}: {path} not found"))
        else:
            data = suite_files.read(resolved)  # a regular file, size-limited
            files[resolved.relative_to(folder.resolve()).as_posix()] = hashlib.sha256(
                data
            ).hexdigest()
    except suite_files.FileProblem as e:
        problems.append(Problem(*at, f"{who}: {e}"))
    except OSError as e:
        problems.append(Problem(*at, f"{who}: {path}: {e.strerror or e}"))
