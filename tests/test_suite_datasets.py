"""Suite splits read through `datasets`: Parquet, CSV, JSON and Arrow files in the suite folder,
and a Hub dataset from a cache laid out here as huggingface_hub writes it (offline)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import CASES, TRAIN, run_cli

PROMPT = """\
prompt:
  system: Answer briefly.
  user: "Which module holds {function}?"
  assistant: "{module}"
rubric:
  good:
    - {id: names-module, type: contains, value: "{module}"}
"""
COMMITS = ("1" * 40, "2" * 40)  # refs/main names the first; the second changes one cell


def _table(rows: list[dict], rename: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    rename = rename or {}
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({rename.get(k, k): [r.get(k) for r in rows] for k in keys})


def _parquet(path: Path, rows: list[dict], rename: dict[str, str] | None = None) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_table(rows, rename), path)


def _suite(folder: Path, data: str, name: str = "ds") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(f"name: {name}\nversion: 1\n{PROMPT}data:\n{data}")
    return folder


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`datasets--org--modules/{blobs,refs/main,snapshots/<commit>}`, files linked into blobs/:
    a test and a train split at two commits."""
    cache = tmp_path_factory.mktemp("hub")
    repo = cache / "datasets--org--modules"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMITS[0])
    for commit in COMMITS:
        # every split of one configuration has the same columns
        test = [{k: c[k] for k in ("id", "function", "module")} for c in CASES]
        if commit == COMMITS[1]:
            test[0] = dict(test[0], module="changed")
        train = [dict(r, id=f"t{i}") for i, r in enumerate(TRAIN)]
        splits = {"test": test, "train": train}
        for split, rows in splits.items():
            staged = cache / f"{split}.parquet"
            _parquet(staged, rows, {"id": "qid", "function": "fn"})
            blob = repo / "blobs" / hashlib.sha256(staged.read_bytes()).hexdigest()
            staged.replace(blob)
            link = repo / "snapshots" / commit / "data" / f"{split}-00000-of-00001.parquet"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    return cache


@pytest.fixture
def hub(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub_cache


HUB = "columns: {function: fn}, id: qid"


def test_local_parquet_csv_json_and_arrow_splits(tmp_path: Path) -> None:
    import pyarrow as pa

    from harness.suite.loader import load_suite

    folder = tmp_path / "local"
    folder.mkdir()
    _parquet(folder / "test.parquet", CASES, {"function": "fn"})
    lines = ["function,module", *(f"{r['function']},{r['module']}" for r in TRAIN)]
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    (folder / "validation.json").write_text(json.dumps(TRAIN[:2]))
    data = (
        "  test: {file: test.parquet, columns: {function: fn}}\n"
        "  train: train.csv\n  validation: validation.json\n"
    )
    s = load_suite(_suite(folder, data))
    assert [c["id"] for c in s.cases] == [c["id"] for c in CASES]  # the id column
    assert s.cases[0]["function"] == "dedent" and s.cases[-1]["must_pass"] is True
    assert [r["function"] for r in s.train or []] == [r["function"] for r in TRAIN]
    assert [r["id"] for r in s.train or []] == ["0", "1", "2", "3"]  # no id column: the row index
    assert len(s.validation or []) == 2 and "__line__" not in s.cases[0]
    assert set(s.files) == {"suite.yaml", "test.parquet", "train.csv", "validation.json"}

    # one changed cell is another suite
    before = s.fingerprint
    _parquet(folder / "test.parquet", [dict(CASES[0], module="x"), *CASES[1:]], {"function": "fn"})
    assert load_suite(folder).fingerprint != before

    with pa.ipc.new_stream(folder / "test.arrow", _table(CASES).schema) as writer:
        writer.write_table(_table(CASES))
    s = load_suite(_suite(folder, "  test: test.arrow\n"))
    assert [c["module"] for c in s.cases] == [c["module"] for c in CASES]


def test_hub_dataset_resolves_from_the_cache_and_pins(hub: Path) -> None:
    from harness.suite.loader import load_suite

    folder = hub.parent / "hub-suite"
    data = (
        f"  test: {{hf: org/modules, {HUB}}}\n  train: {{hf: org/modules, split: train, {HUB}}}\n"
    )
    s = load_suite(_suite(folder, data))
    assert [c["id"] for c in s.cases] == [c["id"] for c in CASES] and len(s.train or []) == 4
    assert s.cases[0] == CASES[0] | {"qid": "a"}
    hashed = [name for name in s.files if name != "suite.yaml"]
    assert len(hashed) == 2 and all(n.startswith(f"hf:org/modules@{COMMITS[0]}/") for n in hashed)

    pin = f"org/modules, revision: '{COMMITS[1]}',"
    pinned = load_suite(_suite(hub.parent / "pinned", data.replace("org/modules,", pin)))
    assert pinned.cases[0]["module"] == "changed" and pinned.fingerprint != s.fingerprint
    # moving refs/main to the second snapshot is a new fingerprint for the unpinned suite
    ref = hub / "datasets--org--modules" / "refs" / "main"
    ref.write_text(COMMITS[1])
    try:
        moved = load_suite(folder)
    finally:
        ref.write_text(COMMITS[0])
    assert moved.fingerprint != s.fingerprint and moved.cases[0]["module"] == "changed"

    # without an id column the row index names a case, with the commit it belongs to
    s = load_suite(_suite(folder, "  test: {hf: org/modules, columns: {function: fn}}\n"))
    assert [c["id"] for c in s.cases[:2]] == ["11111111-0", "11111111-1"]


BAD = [
    ("  test: {file: test.parquet, columns: {function: nope}}\n",
     "suite.yaml:line 11 (data.test.columns.function): column 'nope' (for field 'function')"),
    ("  test: {file: test.parquet, id: nope}\n", "(data.test.id): id column 'nope' is not in"),
    ("  test: {file: dup.parquet, columns: {function: fn}}\n",
     "dup.parquet:row 2: duplicate id 'a' (first on row 1)"),
    ("  test: {hf: org/modules, split: validation}\n",
     "(data.test.split): Unknown split \"validation\""),
    ("  test: {hf: org/elsewhere}\n",
     "'org/elsewhere' at revision 'main' is not in the Hugging Face cache"),
    ("  test: {hf: org/modules, revision: v9}\n",
     "(data.test.revision): Hub dataset 'org/modules' at revision 'v9'"),
    ("  test: ../test.parquet\n", "is outside the suite folder"),
    ("  test: {file: test.parquet, split: test}\n", "config, split and revision belong to"),
    ("  test: {hf: 'not an id'}\n", "(data.test): Value error, hf: 'not an id' is not a Hub"),
    ("  test: 42\n", "a data file name, or a mapping {file: ...} or {hf: org/name, ...}"),
    ("  test: {hf: org/modules, columns: {module: fn}}\n",
     "placeholder {function} has no field 'function' in hf:org/modules (test) row 1"),
]  # fmt: skip


def test_bad_shapes_are_located(
    hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.errors import UserError
    from harness.suite.loader import load_suite

    folder = tmp_path / "bad"
    folder.mkdir()
    _parquet(folder / "test.parquet", CASES, {"function": "fn"})
    _parquet(folder / "dup.parquet", [CASES[0], CASES[0]], {"function": "fn"})
    for data, message in BAD:
        with pytest.raises(UserError) as e:
            load_suite(_suite(folder, data))
        assert any(message in line for line in e.value.lines()), (message, e.value.lines())
    # on the command line: exit 2, one located line, no traceback
    code, _, err = run_cli("suites", "validate", str(folder), capsys=capsys)
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err, err
    assert "hf:org/modules (test) row 1" in err


def test_hub_suite_evaluates_and_seeds_a_new_suite(
    hub: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.suite import new as suite_new

    folder = _suite(tmp_path / "hub-eval", f"  test: {{hf: org/modules, {HUB}}}\n")
    args = ["eval", str(folder), "--model", str(tiny_model_dir), "--db", str(tmp_path / "t.db")]
    code, out, err = run_cli(*args, "--json", capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == len(CASES) and sum(result["grades"].values()) == len(CASES)

    src = suite_new.read_source(f"org/modules@{COMMITS[1]}", split="test")
    assert [r["module"] for r in src.rows][:2] == ["changed", "json"]
    assert f"commit `{COMMITS[1]}`" in src.provenance[0] and "sha256" in src.provenance[1]
