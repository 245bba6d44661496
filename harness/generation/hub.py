"""Models named by a Hub id, `org/name` or `org/name@revision`, fetched through `huggingface_hub`
into its own cache (`HF_HOME`, `HF_HUB_CACHE`), offline where `HF_HUB_OFFLINE` says so, with the
token `HF_TOKEN` or `hf auth login` left.

Only the files a model needs are fetched: config, tokenizer, chat template, safetensors weights
(and an adapter's config). Pickled `.bin` weights and remote code are never fetched, so a repo
that has nothing else is refused with a line saying why. The snapshot folder is read like any
local folder (`harness.generation.models`): its files are links into the cache's blobs, hashed (and
memoized) by the blob they point to, so a `main` that moved is a different model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError

ALLOW = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "adapter_config.json",
]
_REPO = r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*"
_SPEC = re.compile(rf"(?P<repo>{_REPO})(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9._/-]*))?")
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class HubSource:
    """Where a model's files came from: the revision asked for and the commit it resolved to."""

    repo_id: str
    revision: str
    commit: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.repo_id, "revision": self.revision, "commit": self.commit}


def parse(spec: str) -> tuple[str, str] | None:
    """(repo id, revision) for a spec shaped like a Hub id, else None."""
    m = _SPEC.fullmatch(spec)
    if m is None or ".." in m["repo"]:
        return None
    return m["repo"], m["rev"] or "main"


def offline() -> bool:
    """Read when resolving, not at import: huggingface_hub reads its own copy only once."""
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any((v or "").strip().lower() in _TRUE for v in flags)


def cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    )
    return Path(home).expanduser() / "hub"


def fetch(repo_id: str, revision: str, progress: bool = True) -> tuple[Path, HubSource]:
    """The snapshot folder of `repo_id` at `revision`, downloaded if missing and allowed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if not progress:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    where = f"model '{repo_id}' at revision {revision}"
    cache = cache_dir()
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache,
            allow_patterns=ALLOW,
            local_files_only=offline(),
            token=os.environ.get("HF_TOKEN") or None,
        )
    except GatedRepoError:
        raise UserError(
            f"{where}: a gated repository; accept its terms on the Hub and set HF_TOKEN"
        ) from None
    except RevisionNotFoundError:
        raise UserError(f"{where}: the Hub has no such revision") from None
    except RepositoryNotFoundError:
        raise UserError(
            f"{where}: not on the Hub (or private: set HF_TOKEN), nor a local folder"
        ) from None
    except LocalEntryNotFoundError:
        raise UserError(_unavailable(where, repo_id, revision, cache)) from None
    except (HfHubHTTPError, OSError) as e:
        raise UserError(f"{where}: {_one_line(e)}") from None
    path = Path(folder)
    return path, HubSource(repo_id, revision, path.name)


def _unavailable(where: str, repo_id: str, revision: str, cache: Path) -> str:
    why = "HF_HUB_OFFLINE is set" if offline() else "the Hub cannot be reached"
    return (
        f"{where}: not a local folder, {why} and {cache} holds no snapshot of it; run the "
        f"command once where the Hub can be reached, or `hf download {repo_id} --revision "
        f"{revision}` there and copy the cache folder here (HF_HUB_CACHE)"
    )


def check_weights(source: HubSource, folder: Path) -> None:
    """A Hub model whose only weights are pickles is refused by name, not as an empty folder."""
    if any(folder.glob("*.safetensors")):
        return
    raise UserError(
        f"model '{source.repo_id}' at revision {source.revision} (commit {source.commit}): no "
        "safetensors weights; tuneval does not fetch pickled .bin weights (loading them can "
        "run code)"
    )


def records(ref: Any) -> list[dict[str, str]]:
    """The Hub sources of a model and its bases, for the run's record."""
    out: list[dict[str, str]] = []
    while ref is not None:
        if getattr(ref, "hub", None) is not None:
            out.append(ref.hub.to_json())
        ref = ref.base
    return out


def _one_line(e: Exception) -> str:
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    return text[:300] or type(e).__name__
