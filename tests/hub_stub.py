"""The cache layout `huggingface_hub` writes, built from a local folder, so Hub ids resolve
offline in the tests:

    models--org--name/
        blobs/<sha256>                  one file per distinct content
        refs/main                       the commit `main` points to
        snapshots/<commit>/<file>       links into blobs/
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def add_snapshot(
    cache: Path, repo_id: str, folder: Path, *, ref: str | None = "main", commit: str | None = None
) -> str:
    """Lay `folder`'s files out as a snapshot of `repo_id` in `cache`; point `ref` at it.
    Returns the commit (40 hex digits, from the files unless given)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if commit is None:
        h = hashlib.sha1()
        for p in files:
            h.update(p.name.encode() + p.read_bytes())
        commit = h.hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for p in files:
        blob = repo / "blobs" / hashlib.sha256(p.read_bytes()).hexdigest()
        if not blob.exists():
            shutil.copyfile(p, blob)
        link = snapshot / p.name
        link.unlink(missing_ok=True)
        link.symlink_to(Path("../../blobs") / blob.name)
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return commit
