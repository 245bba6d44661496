"""Reading another tool's files as carefully as a suite's own.

An import reads files nobody has validated yet: every one goes through the suite loader's
guards. A file must be a regular file (a FIFO would block the read forever, a folder or a link
to /dev/zero is refused), of bounded size, UTF-8 text; YAML goes through the bounded loader of
`harness.safe.yamlsafe` (no alias bombs, no 100,000-deep nesting); a `file://` reference must stay
inside the source's own folder, as a suite's data paths must. Import-time templates (lm-eval's
Jinja, promptfoo's variable expansion) are bounded in time like chat templates and in size by
`MAX_TEXT` and `MAX_CASES`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError
from harness.safe import files as suite_files
from harness.safe import yamlsafe

MAX_CASES = 100_000  # cases one import may produce (promptfoo's variable combinations)
MAX_TEXT = 1 << 20  # characters one rendered template (or a value it builds) may hold


def regular(path: Path) -> Path:
    """`path` if it is a regular file (symlinks followed), else a UserError saying what it is."""
    try:
        suite_files.locate(path.parent, path.name)
    except suite_files.FileProblem as e:
        raise UserError(f"{path}: {e}") from None
    return path


def inside(base: Path, ref: str, where: Path) -> Path:
    """The regular file a `file://` reference names inside `base`, the source's folder.
    References that leave it are refused, as a suite's data paths are: an import copies what
    it reads into the suite, and should not copy `~/.ssh/id_rsa`."""
    try:
        return suite_files.locate(base, ref.removeprefix("file://"))
    except suite_files.FileProblem as e:
        raise UserError(f"{where}: {ref}: {e}") from None


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    regular(path)
    try:
        return suite_files.read(path, limit)
    except suite_files.FileProblem as e:
        raise UserError(f"{path}: {e}") from None


def read_text(path: Path, limit: int | None = None, encoding: str = "utf-8") -> str:
    data = read_bytes(path, limit)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def load_yaml(path: Path, loader: type[yamlsafe.Strict] = yamlsafe.Core12Loader) -> Any:
    """A YAML file read through the suite loader's bounded loader, every error located."""
    return parse_yaml(read_text(path, suite_files.YAML_LIMIT), str(path), loader)


def parse_yaml(text: str, label: str, loader: type[yamlsafe.Strict] = yamlsafe.Core12Loader) -> Any:
    try:
        return yamlsafe.load(text, loader)[1]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":line {mark.line + 1}" if mark else ""
        raise UserError(
            f"{label}{where}: broken YAML: {getattr(e, 'problem', None) or e}"
        ) from None


# --- import-time templates ---------------------------------------------------------------------


def _bounded_mul(a: Any, b: Any) -> Any:
    """`*` in a template: "x" * 3000000000 or [1] * 10**8 is refused before it is built."""
    if isinstance(a, int) and isinstance(b, str | list | tuple):
        a, b = b, a
    if isinstance(a, str | list | tuple) and isinstance(b, int) and len(a) * b > MAX_TEXT:
        raise OverflowError(f"a template builds a value over {MAX_TEXT} items")
    return operator.mul(a, b)


def jinja_env() -> Any:
    """A sandboxed Jinja environment for data: no Python objects, `range` bounded by Jinja's
    sandbox, repetition bounded by MAX_TEXT, undefined names an error."""
    from jinja2 import BaseLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
            if operator_ == "*":
                return _bounded_mul(left, right)
            if isinstance(right, int) and abs(right) > 1000:  # 10 ** 10**9: hours of arithmetic
                raise OverflowError("a template raises a number to a power over 1000")
            return super().call_binop(context, operator_, left, right)

    return Bounded(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)


@contextmanager
def template_limit(label: str) -> Iterator[None]:
    """Render import-time templates within the chat-template time limit
    (TUNEVAL_TEMPLATE_SECONDS): a runaway loop is one located line, not a hang."""
    from harness.generation import chat_template

    limit = chat_template.seconds()
    try:
        with chat_template.time_limit(limit):
            yield
    except chat_template.OutOfTime:
        raise UserError(
            f"{label}: templates took more than {limit:g}s to render (a runaway loop?); "
            "raise TUNEVAL_TEMPLATE_SECONDS if they are meant to"
        ) from None


def render(env: Any, template: str, values: dict[str, Any]) -> str:
    """A template rendered piece by piece, stopped once it passes MAX_TEXT characters (a loop of
    large pieces would otherwise fill memory before the time limit)."""
    parts, size = [], 0
    for part in env.from_string(template).generate(**values):
        size += len(part)
        if size > MAX_TEXT:
            raise OverflowError(f"the template renders more than {MAX_TEXT} characters")
        parts.append(part)
    return "".join(parts)
