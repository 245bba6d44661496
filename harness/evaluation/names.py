"""Names a user gives a model or a run (`grade --name`, `models add NAME`): shown in tables,
stored, compared by. A name must be plain text that cannot pass for something else:

- no markup or control characters: `[b]smollm2-135m-instruct[/b]` would display as the packaged
  model's name, `[link=file:///etc/passwd]` as a link, ANSI escapes and newlines would rewrite
  the terminal;
- no path separators, and not a folder that exists here (a model spec naming a local folder);
- not empty, not the packaged default, not a run id of the store.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.errors import UserError

MAX_LENGTH = 100
_ALLOWED = re.compile(r"^[\w][\w .:+@-]*$")  # letters and digits of any script, and . : + @ -


def check_name(name: str, option: str, store: Any = None) -> None:
    """Refuse `name` in one line naming `option` (e.g. '--name') and why."""
    shown = ascii(name)[:60]
    if not name.strip():
        raise UserError(f"{option}: an empty name")
    if len(name) > MAX_LENGTH:
        raise UserError(f"{option} {shown}: longer than {MAX_LENGTH} characters")
    if any(c in "[]" or not c.isprintable() for c in name):
        raise UserError(f"{option} {shown}: no markup such as [b] and no control characters")
    if "/" in name or "\\" in name:
        raise UserError(f"{option} {shown}: a path separator ('/' or '\\'); give a plain name")
    if not _ALLOWED.match(name) or name != name.strip():
        raise UserError(
            f"{option} {shown}: letters, digits, spaces and . : + @ - _ only (no markup such "
            "as [b], no control characters), not starting or ending with a space"
        )
    from harness.generation.models import DEFAULT_MODEL

    if name == DEFAULT_MODEL:
        raise UserError(f"{option} {shown}: is the packaged default model; choose another")
    try:
        folder = Path(name).is_dir()
    except OSError:
        folder = False
    if folder:
        raise UserError(f"{option} {shown}: a folder here (a local model spec); choose another")
    if store is not None and store.run(name) is not None:
        raise UserError(f"{option} {shown}: the id of a stored run; choose another")
