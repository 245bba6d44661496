"""The files a suite may read: regular files inside its own folder, of a bounded size.

A data path in suite.yaml (or an lm-eval task file) is resolved, symlinks included, and must land
inside the suite folder: `/etc/passwd`, `../x.jsonl` and a link pointing out are refused, as are
folders, pipes and devices (`/proc/kmsg` would block a read forever). A file is read up to a
size limit, so a 3 GiB file is refused up front instead of being read whole.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import Problem

MB = 1 << 20
LIMIT_VAR = "TUNEVAL_MAX_FILE_MB"
DEFAULT_LIMIT_MB = 256
YAML_LIMIT = 4 * MB  # suite.yaml and task files: settings, not data


class FileProblem(Exception):
    """Why a suite file cannot be read, in words for the user."""


def data_limit() -> int:
    try:
        return max(1, int(os.environ.get(LIMIT_VAR, DEFAULT_LIMIT_MB))) * MB
    except ValueError:
        return DEFAULT_LIMIT_MB * MB


def locate(folder: Path, name: str) -> Path:
    """The regular file `name` names inside `folder`, or FileProblem saying why not."""
    if not name or "\0" in name:
        raise FileProblem("an empty or malformed file name")
    if Path(name).is_absolute():
        raise FileProblem(f"'{name}' is an absolute path: data must be a file inside the suite")
    path = folder / name
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
        info = path.stat() if inside else None
    except FileNotFoundError:
        raise FileProblem(f"'{name}' not found in {folder}") from None
    except (OSError, RuntimeError) as e:  # a name too long, a symlink loop, no permission
        raise FileProblem(f"'{_short(name)}': {getattr(e, 'strerror', None) or e}") from None
    if info is None:
        raise FileProblem(
            f"'{name}' is outside the suite folder (a suite reads only its own files)"
        )
    if not stat.S_ISREG(info.st_mode):
        raise FileProblem(f"'{name}' is not a regular file (a folder, pipe or device)")
    return path


def read(path: Path, limit: int | None = None) -> bytes:
    """A located file's bytes, refused past `limit` (the data limit by default)."""
    limit = data_limit() if limit is None else limit
    try:
        # O_NONBLOCK: should the file be swapped for a pipe after `locate`, do not wait on it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise FileProblem(f"'{path.name}' is not a regular file")
            if info.st_size > limit:  # refused before a byte is read
                raise _too_big(path, info.st_size, limit)
            data = f.read(limit + 1)  # a file that grew since: still no more than the limit
    except OSError as e:
        raise FileProblem(f"'{_short(path.name)}' cannot be read: {e.strerror or e}") from None
    if len(data) > limit:
        raise _too_big(path, path.stat().st_size, limit)
    return data


def _too_big(path: Path, size: int, limit: int) -> FileProblem:
    hint = f" (set {LIMIT_VAR} to raise it)" if limit != YAML_LIMIT else ""
    return FileProblem(
        f"'{path.name}' is {_size(size)}, over the {_size(limit)} a suite file may hold{hint}"
    )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value, unit = float(n), "bytes"
    for unit in ("KiB", "MiB", "GiB"):  # noqa: B007 - the unit the loop stops at is the answer
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"


def _short(name: str, n: int = 60) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


# --- JSON Lines --------------------------------------------------------------------------------

MAX_NESTING = 64  # levels of lists and objects inside one value


def read_jsonl(data: bytes, label: str, problems: list[Problem]) -> list[dict[str, Any]]:
    """One JSON object per line, each with its line number in `__line__`; every line that is
    not one becomes a located problem."""
    rows: list[dict[str, Any]] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(Problem(label, "", f"not UTF-8 text ({e.reason} at byte {e.start})"))
        return rows
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(
                Problem(label, f"line {n}", f"invalid JSON: {e.msg} (column {e.colno})")
            )
            continue
        except (ValueError, RecursionError) as e:  # a 5000-digit number; [[[[... 100k deep
            why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            problems.append(Problem(label, f"line {n}", f"invalid JSON: {why}"))
            continue
        if not isinstance(row, dict):
            problems.append(Problem(label, f"line {n}", "each line must be a JSON object"))
            continue
        wrong = value_problem(row)
        if wrong:
            problems.append(Problem(label, f"line {n}", wrong))
            continue
        row["__line__"] = n
        rows.append(row)
    return rows


def value_problem(value: Any) -> str | None:
    """What makes a parsed value unusable as case data: text that is not Unicode (a lone
    surrogate such as \\ud800, which JSON's escapes can spell but no file or database can
    store), or nesting deeper than MAX_NESTING. Walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            if not _is_text(item):
                return f"text with a lone surrogate (such as \\ud800): {_shown(item)}"
        elif isinstance(item, dict | list):
            if level >= MAX_NESTING:
                return f"values nested more than {MAX_NESTING} levels deep"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return None


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(s: str) -> str:
    return json.dumps(_short(s, 40))


def row_at(row: Mapping[str, Any]) -> str:
    """Where a data row is, for a problem: its line in a JSONL file, its row in a table."""
    return str(row.get("__at__") or f"line {row['__line__']}")
