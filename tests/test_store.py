"""The store: migrations from every older schema (a store file each, kept as a fixture), opening
files that are not stores, read-only opening, and inserts that name their columns."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.store import SCHEMA_VERSION, Store
from harness.store.migrations import MIGRATIONS
from tests.conftest import REPO, cli, run_cli

FIXTURES = REPO / "tests" / "fixtures" / "stores"


def old_store(tmp_path: Path, version: int) -> Path:
    target = tmp_path / f"schema-{version}.db"
    shutil.copy(FIXTURES / f"schema-{version}.db", target)
    return target


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_every_old_schema_has_a_fixture() -> None:
    """A migration that ships gets a store made by the schema before it, to migrate in tests."""
    for version in range(1, SCHEMA_VERSION):
        assert (FIXTURES / f"schema-{version}.db").is_file(), version


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_old_store_migrates_and_keeps_its_data(tmp_path: Path, version: int) -> None:
    path = old_store(tmp_path, version)
    assert user_version(path) == version
    with Store(path) as store:
        assert store.version == SCHEMA_VERSION
        runs = store.runs()
        assert len(runs) == 2 and {r["model"] for r in runs} == {"base-model", "mini-sft-0001"}
        rows = store.results(runs[0]["id"])
        assert len(rows) == 6 and all(r["must_pass"] is False for r in rows)  # unknown then
        assert store.model("mini-sft-0001")["info"] == {"steps": 4}
        assert [r["kind"] for r in store.train_log("train-1")] == ["log"]
        assert len(store.labels()) == 1
        assert runs[0]["prompt_variant"] == "" and runs[0]["model_kind"] == ""


def test_compare_on_a_migrated_store_says_must_pass_is_unknown(tmp_path: Path) -> None:
    from harness.comparison.compare import compare_runs

    path = old_store(tmp_path, 1)
    with Store(path) as store:
        a, b = (r["id"] for r in store.runs())
        c = compare_runs(store, a, b)
    assert c.n == 6 and c.must_pass_broken == []
    assert any("before tuneval recorded must_pass" in w for w in c.warnings)


def test_read_only_commands_read_an_old_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = old_store(tmp_path, 1)
    res = cli("runs", "list", "--json", "--db", str(path))
    assert res.returncode == 0, res.stderr
    assert user_version(path) == SCHEMA_VERSION  # upgraded on the way
    # runs stored before tuneval noted the engine that answered: unknown, not an error
    run = json.loads(res.stdout)[0]["run_id"]
    code, out, err = run_cli("runs", "show", run, "--json", "--db", str(path), capsys=capsys)
    assert code == 0 and json.loads(out)["engine"] is None, err
    code, out, err = run_cli("runs", "show", run, "--db", str(path), capsys=capsys)
    assert code == 0 and "engine unknown" in " ".join(out.split()), err


def test_migrations_are_functions_applied_in_order(tmp_path: Path) -> None:
    with Store(tmp_path / "new.db") as store:
        assert store.version == SCHEMA_VERSION == len(MIGRATIONS)
        names = [m.__name__ for m in MIGRATIONS]
        assert names == sorted(names) and all(n.startswith(f"m{i + 1:03d}_") for i, n in
                                              enumerate(names))  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a database at all" * 100, "not a tuneval store"),
        (b"", None),  # an empty file is an empty SQLite database: it becomes a store
    ],
)
def test_files_that_are_not_stores(tmp_path: Path, content: bytes, message: str | None) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    if message is None:
        with Store(path) as store:
            assert store.version == SCHEMA_VERSION
        return
    with pytest.raises(UserError, match=message):
        Store(path)
    assert path.read_bytes() == content  # untouched
    res = cli("runs", "list", "--db", str(path))
    assert res.returncode == 2 and "not a tuneval store" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_directory_and_a_newer_schema_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        Store(tmp_path)
    path = tmp_path / "future.db"
    with Store(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(UserError, match="newer tuneval"):
        Store(path)
    res = cli("runs", "list", "--db", str(path))
    assert res.returncode == 2 and "newer tuneval" in res.stderr


def test_read_only_open_never_creates(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "tuneval.db"
    with pytest.raises(UserError, match="no store at"):
        Store(missing, readonly=True)
    for args in (["runs", "list"], ["runs", "show", "x"], ["compare", "a", "b"]):
        res = cli(*args, "--db", str(missing))
        assert res.returncode == 2 and "no store at" in res.stderr, (args, res.stderr)
    assert not missing.parent.exists()
    res = cli("models", "list", "--json", "--db", str(missing))  # lists the packaged default
    assert res.returncode == 0 and "smollm2-135m-instruct" in res.stdout
    assert not missing.parent.exists()


def test_inserts_name_their_columns(store: Store) -> None:
    """An insert still works when the table gains a column it does not name."""
    with store.tx() as db:
        db.execute("ALTER TABLE models ADD COLUMN later TEXT DEFAULT 'x'")
    store.register_model(
        {
            "name": "m",
            "spec": "m",
            "path": None,
            "fingerprint": "fp",
            "kind": "local",
            "base": None,
            "produced_by": None,
            "info": {"a": 1},
            "created_at": 0.0,
        }
    )
    assert store.model("m")["info"] == {"a": 1}


def test_sql_lives_only_in_the_store() -> None:
    import re

    pattern = re.compile(r"\b(INSERT|SELECT|UPDATE|DELETE)\b")
    offenders = []
    for folder in ("harness", "trainers", "reports"):
        for path in (REPO / folder).rglob("*.py"):
            if path.parent.name == "store" and path.parent.parent.name == "harness":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []


def test_one_builder_per_row_kind(tmp_path: Path, mini_suite: Path) -> None:
    """Every writer of the generation cache builds its rows with `generation_row`, and eval and
    grade build their run rows with `new_run_row`: the rows come out alike."""
    import json

    from harness.evaluation.runner import new_run_row
    from harness.store import Store, generation_row
    from harness.suite.loader import load_suite

    row = generation_row("k", "fp", [{"role": "user", "content": "hi"}], {"t": 0.0}, "out",
                         n_tokens=3, seconds=0.5)  # fmt: skip
    assert json.loads(row["prompt"]) == [{"role": "user", "content": "hi"}]
    assert json.loads(row["settings"]) == {"t": 0.0} and row["prompt_tokens"] is None
    suite = load_suite(mini_suite)
    run = new_run_row(suite, "m", "fp", "outputs", {"backend": "outputs"}, "key", 6)
    assert run["status"] == "running" and run["suite_fingerprint"] == suite.fingerprint
    assert run["prompt_variant"] == "" and run["train_run"] is None
    with Store(tmp_path / "s.db") as store:
        store.save_generations([row])
        store.insert_run(run)
        assert store.cached_generations(["k"])["k"]["output"] == "out"
        assert store.run(run["id"])["model"] == "m"


def test_a_truncated_store_is_one_line(tmp_path: Path) -> None:
    """A store cut short (a copy interrupted, a full disk): read and write commands say so in one
    line, exit 2, and leave the file as it is."""
    path = tmp_path / "t.db"
    with Store(path) as store:
        for i in range(40):
            store.register_model(
                {"name": f"m{i}", "spec": f"m{i}", "kind": "local", "fingerprint": "f" * 64,
                 "path": None, "produced_by": None, "info": {"pad": "x" * 2000}, "base": None,
                 "created_at": 0.0}
            )  # fmt: skip
    whole = path.read_bytes()
    assert len(whole) > 8 * 4096, len(whole)
    cut = whole[: len(whole) // 2]
    path.write_bytes(cut)
    for args in (["models", "list"], ["runs", "list"]):
        res = cli(*args, "--db", str(path))
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "Traceback" not in res.stderr and str(path) in res.stderr, res.stderr
    assert path.read_bytes() == cut


def test_stores_opened_together_on_a_new_file_migrate_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evals started together on a store that does not exist yet: the second opener reads the
    schema version after the first has migrated, so no migration runs twice (it used to fail
    with 'table models already exists')."""
    import threading
    import time

    from harness import store as store_module

    first = MIGRATIONS[0]
    applied: list[str] = []

    def slow_first(db: sqlite3.Connection) -> None:
        applied.append(threading.current_thread().name)
        time.sleep(0.5)  # long enough for the other opener to read the version meanwhile
        first(db)

    monkeypatch.setattr(store_module, "MIGRATIONS", [slow_first, *MIGRATIONS[1:]])
    path = tmp_path / "new.db"
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            with Store(path) as s:
                assert s.version == SCHEMA_VERSION
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=open_store, name=f"opener-{i}") for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(applied) == 1
