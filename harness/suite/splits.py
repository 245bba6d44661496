"""Suite splits read through `datasets`: Parquet, CSV, JSON and Arrow files inside the suite folder,
and Hub datasets. JSONL splits stay on the line reader in `suite_files` (exact line numbers).

A Hub split is resolved through `huggingface_hub` first (`snapshot_download`, which honours
HF_HUB_CACHE, HF_HUB_OFFLINE and HF_TOKEN), then the snapshot folder is read with
`load_dataset(<folder>)`: offline, `load_dataset("org/name")` does not read the Hub cache. The
commit the revision resolved to, and a hash of every file of the snapshot, join the suite
fingerprint. `datasets` runs no dataset scripts, and is imported only when a suite has such a split.

Rows become cases: `columns` renames dataset columns to case fields, `id` names the column holding
the case id (else an `id` column, else the row index, tied to the commit for a Hub dataset).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.errors import Problem
from harness.safe import files as suite_files
from harness.safe.files import FileProblem
from harness.safe.templating import Loc

# Which `datasets` builder reads a local file, by its ending; .jsonl is read line by line instead.
BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".arrow": "arrow"}
_HUB_ID = r"^[A-Za-z0-9][\w.-]*/[\w.-]+$"


class DatasetSplit(BaseModel):
    """`data.<split>` as a mapping: a file in the suite folder, or a Hub dataset."""

    model_config = ConfigDict(extra="forbid")
    hf: str | None = Field(default=None, pattern=_HUB_ID, description="a Hub dataset, org/name")
    file: str | None = Field(default=None, description="a data file inside the suite folder")
    config: str | None = Field(default=None, description="the dataset's configuration (subset)")
    split: str | None = Field(default=None, description="the dataset split (default: this one's)")
    revision: str | None = Field(default=None, description="a branch, tag or full commit")
    columns: dict[str, str] = Field(default={}, description="case field -> dataset column")
    id: str | None = Field(default=None, description="the column holding each case's id")

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSplit:
        if (self.hf is None) == (self.file is None):
            raise ValueError("give either hf (a Hub dataset) or file (a file in the suite)")
        if self.file is not None and (self.config or self.split or self.revision):
            raise ValueError("config, split and revision belong to a Hub dataset (hf)")
        return self


Source = str | DatasetSplit
Rows = list[dict[str, Any]]


def is_jsonl(source: Source | None) -> bool:
    return isinstance(source, str) and not name_of(source).endswith(tuple(BUILDERS))


def name_of(source: Source) -> str:
    """The file a split names, or its Hub id."""
    if isinstance(source, str):
        return source
    return source.file or source.hf or ""


def label(folder: Path, source: Source, split: str) -> str:
    """How problems with a split's rows name it: the file, or the Hub dataset and its split."""
    if isinstance(source, str) or source.file is not None:
        return str(folder / name_of(source))
    at = f"@{source.revision}" if source.revision else ""
    config = f"{source.config}/" if source.config else ""
    return f"hf:{source.hf}{at} ({config}{source.split or split})"


def read(
    folder: Path, split: str, source: Source, files: dict[str, str], yaml_label: str,
    where: Callable[[Loc], str], problems: list[Problem],
) -> Rows | None:  # fmt: skip
    """The rows of one split, or None with the problems located; hashes join `files`."""
    at: Loc = ("data", split)
    spec = source if isinstance(source, DatasetSplit) else DatasetSplit(file=source)
    try:
        if spec.file is not None:
            path = suite_files.locate(folder, spec.file)
            files[spec.file] = hashlib.sha256(suite_files.read(path)).hexdigest()
            if path.suffix.lower() not in BUILDERS:
                endings = ", ".join([".jsonl", *BUILDERS])
                raise FileProblem(f"'{spec.file}' is not a data file this reads ({endings})")
            table, commit = load_file(path), None
        else:
            assert spec.hf is not None
            hub = (spec.hf, spec.revision, spec.config, spec.split or split)
            table, commit = load_hub(*hub, files)
    except FileProblem as e:
        problems.append(Problem(yaml_label, where(at), f"data file {e}"))
        return None
    except LoadProblem as e:
        problems.append(Problem(yaml_label, where((*at, e.key) if e.key else at), str(e)))
        return None
    return _rows(table, spec, commit, label(folder, source, split), yaml_label, where, at, problems)


class LoadProblem(Exception):
    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key  # which key of data.<split> is at fault


def _snapshot(repo: str, revision: str | None) -> tuple[Path, str]:
    """The local snapshot folder of a Hub dataset and the commit it holds."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    asked = revision or "main"
    try:
        folder = Path(snapshot_download(repo, repo_type="dataset", revision=revision))
    except LocalEntryNotFoundError:
        pin = f" --revision {revision}" if revision else ""
        how = (
            "HF_HUB_OFFLINE is set: run once with HF_HUB_OFFLINE=0, or "
            f"`hf download {repo} --repo-type dataset{pin}`"
            if constants.HF_HUB_OFFLINE
            else "and the Hub cannot be reached"
        )
        raise LoadProblem(
            f"Hub dataset '{repo}' at revision '{asked}' is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); {how}",
            "revision" if revision else "hf",
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as e:  # no such repo or revision, no access
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LoadProblem(f"Hub dataset '{repo}' at revision '{asked}': {first}", "hf") from None
    return folder, folder.name


def _hash_snapshot(snapshot: Path, prefix: str, files: dict[str, str]) -> None:
    """Every file of the snapshot, hashed under the data size limit (links point into blobs/)."""
    for path in sorted(p for p in snapshot.rglob("*") if p.is_file()):
        rel = path.relative_to(snapshot).as_posix()
        files[f"{prefix}/{rel}"] = hashlib.sha256(suite_files.read(path.resolve())).hexdigest()


def _load(path: str, **kwargs: Any) -> Any:
    """One split as a pyarrow table. The builder's cache goes to a temporary folder and the table
    is held in memory, so loading a suite leaves nothing in the user's datasets cache."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="tuneval-datasets-") as cache:
        try:
            ds = datasets.load_dataset(path, cache_dir=cache, keep_in_memory=True, **kwargs)
        except ValueError as e:
            text = _first_line(str(e))
            key = next((k for k in ("split", "config") if k in text.lower()), "")
            raise LoadProblem(text, key) from None
        except Exception as e:  # a malformed file, a script-only dataset, no data files
            why = f"{type(e).__name__}: {_first_line(str(e))}"
            raise LoadProblem(f"cannot be read: {why}") from None
        return ds.with_format("arrow")[:]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "no message"


def _rows(
    table: Any, spec: DatasetSplit, commit: str | None, data_label: str, yaml_label: str,
    where: Callable[[Loc], str], at: Loc, problems: list[Problem],
) -> Rows | None:  # fmt: skip
    """Arrow rows as cases: columns renamed, binary columns left out, an id on every row."""
    names = list(table.column_names)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    before = len(problems)
    for field, column in spec.columns.items():
        if column not in names:
            message = f"column '{column}' (for field '{field}') is not in {data_label}; it has: "
            problems.append(Problem(yaml_label, where((*at, "columns", field)), message + shown))
    if spec.id is not None and spec.id not in names:
        message = f"id column '{spec.id}' is not in {data_label}; it has: {shown}"
        problems.append(Problem(yaml_label, where((*at, "id")), message))
    binary = binary_columns(table)
    wanted = set(spec.columns.values()) | {spec.id}
    for column in sorted(binary & wanted):
        message = f"column '{column}' holds binary data (an image, audio); a case field is text"
        problems.append(Problem(yaml_label, where(at), message))
    if len(problems) > before:
        return None
    if not table.num_rows:
        problems.append(Problem(data_label, "", "no rows"))
        return None
    rename = {column: field for field, column in spec.columns.items()}
    keep = [n for n in names if n not in binary]
    id_column = spec.id or next((c for c in keep if rename.get(c, c) == "id"), None)
    rows: Rows = []
    for i, record in enumerate(table.select(keep).to_pylist()):
        # a null cell (an empty CSV field, a column other rows fill) is a field this row lacks
        row = {rename.get(k, k): plain(v) for k, v in record.items() if v is not None}
        if id_column is not None:
            row["id"] = record[id_column]
        else:  # the index names a row only within one version of the data
            row["id"] = f"{commit[:8]}-{i}" if commit else str(i)
        row["__line__"] = i + 1
        row["__at__"] = f"row {i + 1}"
        rows.append(row)
    return rows


def binary_columns(table: Any) -> set[str]:
    """Columns holding bytes (images, audio): no case field can hold them."""
    return {f.name for f in table.schema if _is_binary(f.type)}


def load_file(path: Path) -> Any:
    """A Parquet, CSV, JSON or Arrow file as a pyarrow table."""
    builder = BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise LoadProblem(f"'{path.name}' is not a file this reads ({', '.join(BUILDERS)})")
    return _load(builder, data_files=str(path), split="train")


def load_hub(
    repo: str, revision: str | None, config: str | None, split: str, files: dict[str, str]
) -> tuple[Any, str]:
    """A Hub dataset's split as a pyarrow table, and the commit it came from; each file's hash
    joins `files`."""
    snapshot, commit = _snapshot(repo, revision)
    _hash_snapshot(snapshot, f"hf:{repo}@{commit}", files)
    return _load(str(snapshot), name=config, split=split), commit


def _is_binary(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return True
    if pa.types.is_struct(t):
        return any(_is_binary(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _is_binary(t.value_type)
    return False


def plain(value: Any) -> Any:
    """A value as JSON holds it: dates, times and decimals become their text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    iso = getattr(value, "isoformat", None)
    return iso() if callable(iso) else str(value)
