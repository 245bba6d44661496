"""Files written at the user's request (`--junit`, `--markdown`, `--out`): whole or not at all,
and never over the store.

- A path that resolves to the store, or to one of the files SQLite and tuneval keep beside it
  (-wal, -shm, -journal, .lock), is refused: `--junit .tuneval/tuneval.db` must not turn the
  workspace into XML.
- Any existing SQLite file (another workspace's store, a copy) and any existing file of a suite
  folder (a folder holding suite.yaml: its data) is refused too: `data synth --out
  qa/test.jsonl` must not replace a suite's test cases.
- The folder must exist: a typo in a path is an error, not a new directory tree.
- An existing target must be a regular file (not a folder, a device or a /proc entry).
- The text goes to a temporary file beside the target, renamed over it when complete: a reader
  never sees half a file, and a failure leaves the previous one as it was.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import UserError

STORE_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")


def store_files(store: Path) -> list[Path]:
    return [store, *(store.with_name(store.name + suffix) for suffix in STORE_COMPANIONS)]


def check(path: Path, store: Path | None = None) -> None:
    """Refuse a target that would be unsafe or impossible to write, in one line."""
    try:
        target = path.resolve()
        if store is not None:
            for f in store_files(store):
                same = f.resolve() == target or (
                    f.exists() and target.exists() and os.path.samefile(f, target)
                )
                if same:
                    raise UserError(f"{path} is the store ({f}): write the output somewhere else")
        info = target.stat() if target.exists() else None
        folder = target.parent
        folder_ok = folder.is_dir()
    except OSError as e:  # a name too long, a symlink loop, no permission
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UserError(f"{path} is a folder: give a file name")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path} is not a regular file")
    if info is not None:
        protected(path, target)
    if not folder_ok:
        raise UserError(f"cannot write {path}: the folder {path.parent} does not exist")


@contextmanager
def replacing(path: Path, store: Path | None = None) -> Iterator[Path]:
    """A temporary path to write; when the block ends without error it replaces `path`."""
    check(path, store)
    target = path.resolve()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if target.exists():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except OSError as e:  # /proc, a read-only folder, a full disk
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_text(path: Path, text: str, store: Path | None = None) -> None:
    with replacing(path, store) as tmp:
        tmp.write_text(text, encoding="utf-8")


SQLITE_MAGIC = b"SQLite format 3\0"


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def protected(path: Path, target: Path) -> None:
    """Refuse replacing an existing SQLite database or a file of a suite folder."""
    if is_sqlite(target):
        raise UserError(f"{path} is a SQLite database (a store?): write the output somewhere else")
    if (target.parent / "suite.yaml").is_file():
        raise UserError(
            f"{path} is a file of the suite in {target.parent}: write the output somewhere else"
        )
