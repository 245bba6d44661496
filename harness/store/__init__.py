"""The workspace store: one SQLite file in WAL mode, versioned by numbered migrations.

Default location `./.tuneval/tuneval.db`, overridden by `--db` or `TUNEVAL_DB`. Readers (the
report) and one writer can work at the same time. Every write that belongs together is one
transaction, so a killed process never leaves half a batch behind.

This package is the only place that holds SQL: everything else calls the named functions below,
which take and return the typed rows of `harness.store.rows`. Inserts name their columns.
Read-only commands open the store with `readonly=True`: it must exist, and nothing is written.

May import: harness.errors only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from harness.errors import UserError
from harness.store.migrations import MIGRATIONS, SCHEMA_VERSION
from harness.store.rows import (
    BOOL_COLUMNS,
    JSON_COLUMNS,
    GenerationRow,
    LabelRow,
    ModelRow,
    ResultRow,
    RunRow,
    TrainLogRow,
    TrainRunRow,
    generation_row,
    result_row,
)

__all__ = [
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "GenerationRow",
    "LabelRow",
    "ModelRow",
    "ResultRow",
    "RunRow",
    "Store",
    "TrainLogRow",
    "TrainRunRow",
    "default_path",
    "generation_row",
    "result_row",
    "new_id",
    "sqlite_problem",
]

DEFAULT_DB = Path(".tuneval") / "tuneval.db"
_CHUNK = 500  # parameters per IN (...) list, well under SQLite's limit


def default_path() -> Path:
    return Path(os.environ.get("TUNEVAL_DB") or DEFAULT_DB)


def sqlite_problem(e: sqlite3.Error, path: Path | None = None) -> str:
    """One line for an SQLite failure, by its cause: a full disk or a missing log is not a
    damaged store, and the fix differs. Every write is one transaction, so the write that failed
    left nothing of itself behind (`PRAGMA integrity_check` stays ok)."""
    store = f"the store {path}" if path else "the store"
    says = f"(SQLite says: {e})"
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return (
            f"no space left on the disk of {store} {says}: the write that failed was undone; "
            "free some space and run the command again"
        )
    if code == sqlite3.SQLITE_IOERR:
        return (
            f"{store} could not be read or written {says}: if its -wal or -shm file was "
            "deleted or changed while another tuneval command had it open, let that command "
            "finish and run this one again"
        )
    if code == sqlite3.SQLITE_READONLY:
        return f"{store} cannot be written {says}: check the file's and its folder's permissions"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return f"{store} is busy with another command {says}: run this one again when it is done"
    if path is not None and code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, 0):
        return f"{path} is not a tuneval store {says}"
    return f"{store} cannot be read {says}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


class Store:
    def __init__(self, path: str | Path | None = None, *, readonly: bool = False):
        self.path = Path(path) if path else default_path()
        self.readonly = readonly
        if self.path.is_dir():
            raise UserError(f"store {self.path} is a directory, not a SQLite file")
        if readonly and not self.path.is_file():
            raise UserError(
                f"no store at {self.path}: evaluate a model first (`tuneval eval SUITE`), "
                "or pass the right --db"
            )
        try:
            self.db = self._connect()
            version = self.version
        except sqlite3.DatabaseError as e:
            raise UserError(sqlite_problem(e, self.path)) from None
        if version > SCHEMA_VERSION:
            self.db.close()
            raise UserError(
                f"{self.path} has schema version {version}, made by a newer tuneval than this "
                f"one (which reads up to {SCHEMA_VERSION}); upgrade tuneval"
            )
        if version < SCHEMA_VERSION:
            self._upgrade()

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            uri = f"file:{self.path.resolve()}?mode=ro"
            db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _upgrade(self) -> None:
        """Migrate an older store. A read-only opener upgrades through a short writable
        connection where the file allows it: an old store stays readable by a newer tuneval."""
        if not self.readonly:
            self.migrate()
            return
        if not os.access(self.path, os.W_OK):
            raise UserError(
                f"{self.path} has schema version {self.version} and needs upgrading to "
                f"{SCHEMA_VERSION}, but the file is read-only"
            )
        with Store(self.path):
            pass
        self.db.close()
        self.db = self._connect()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def claim(self, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
        """Hold `key` against every other process using this store; yields whether it had to
        wait for another holder first (calling `on_wait` as it starts waiting).

        A byte-range lock in `<store>.lock`, at an offset derived from the key: the kernel
        releases it when its holder exits, `kill -9` included, so a crashed holder never leaves a
        stale claim behind. Claims are per process: do not nest two in one."""
        offset = int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)
        with open(self.path.with_name(self.path.name + ".lock"), "a+b") as f:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                waited = False
            except OSError:
                if on_wait is not None:
                    on_wait()
                fcntl.lockf(f, fcntl.LOCK_EX, 1, offset)
                waited = True
            try:
                yield waited
            finally:
                fcntl.lockf(f, fcntl.LOCK_UN, 1, offset)

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply the migrations this file lacks, one transaction each. The version is read inside
        the write transaction: processes that open a new store together each see the others'
        migrations, and none applies one twice."""
        while True:
            with self.tx() as db:
                version = self.version
                if version >= SCHEMA_VERSION:
                    return
                MIGRATIONS[version](db)
                db.execute(f"PRAGMA user_version={version + 1}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction: everything inside commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.rollback()
            raise
        else:
            self.db.commit()

    # --- plumbing: the only places that build SQL from names -----------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(sql, params).fetchall()]

    def _row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self.db.execute(sql, params).fetchone()
        return dict(row) if row else None

    @staticmethod
    def _encode(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for col in JSON_COLUMNS.get(table, ()):
            if col in out:
                out[col] = json.dumps(out[col])
        for col in BOOL_COLUMNS.get(table, ()):
            if col in out:
                out[col] = int(bool(out[col]))
        return out

    @staticmethod
    def _decode(table: str, row: dict[str, Any]) -> dict[str, Any]:
        for col in JSON_COLUMNS.get(table, ()):
            if col in row and isinstance(row[col], str):
                row[col] = json.loads(row[col])
        for col in BOOL_COLUMNS.get(table, ()):
            if col in row:
                row[col] = bool(row[col])
        return row

    def _insert(
        self,
        db: sqlite3.Connection,
        table: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        replace: bool = False,
    ) -> None:
        encoded = [self._encode(table, r) for r in rows]
        if not encoded:
            return
        cols = list(encoded[0])
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        sql = f"{verb} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        db.executemany(sql, [[r[c] for c in cols] for r in encoded])

    # --- file hashes -----------------------------------------------------------------------------

    def cached_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        row = self._row(
            "SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?",
            (path, size, mtime_ns),
        )
        return row["sha256"] if row else None

    def remember_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        if self.readonly:
            return
        with self.tx() as db:
            row = {"path": path, "size": size, "mtime_ns": mtime_ns, "sha256": sha256}
            self._insert(db, "file_hashes", [row], replace=True)

    # --- models ----------------------------------------------------------------------------------

    def register_model(self, row: ModelRow) -> None:
        """Insert or replace a model by name."""
        with self.tx() as db:
            self._insert(db, "models", [row], replace=True)

    def remove_model(self, name: str) -> bool:
        with self.tx() as db:
            return db.execute("DELETE FROM models WHERE name=?", (name,)).rowcount > 0

    def model(self, name: str) -> ModelRow | None:
        row = self._row("SELECT * FROM models WHERE name=?", (name,))
        return cast(ModelRow, self._decode("models", row)) if row else None

    def models(self) -> list[ModelRow]:
        rows = self._rows("SELECT * FROM models ORDER BY created_at")
        return [cast(ModelRow, self._decode("models", r)) for r in rows]

    def hub_models(self) -> list[dict[str, Any]]:
        """Models with runs whose files came from the Hub, first run first, each with its newest
        run's record: name, kind, fingerprint, the Hub sources (model and bases)."""
        rows = self._rows(
            "SELECT model AS name, model_kind AS kind, model_fingerprint AS fingerprint,"
            " json_extract(settings, '$.hub') AS hub, created_at FROM runs"
            " WHERE json_extract(settings, '$.hub') IS NOT NULL ORDER BY created_at"
        )
        models: dict[str, dict[str, Any]] = {}
        for r in rows:
            first = models.get(r["name"], {}).get("first_run", r["created_at"])
            runs = models.get(r["name"], {}).get("runs", 0) + 1
            models[r["name"]] = {**r, "hub": json.loads(r["hub"]), "first_run": first, "runs": runs}
        return list(models.values())

    # --- the generation cache --------------------------------------------------------------------

    def cached_generations(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """key -> {output, n_tokens, prompt_tokens, seconds} for the keys the cache holds."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = list(keys[i : i + _CHUNK])
            marks = ",".join("?" * len(chunk))
            for r in self._rows(
                f"SELECT key, output, n_tokens, prompt_tokens, seconds FROM generations"
                f" WHERE key IN ({marks})",
                chunk,
            ):
                out[r["key"]] = r
        return out

    def save_generations(self, rows: Sequence[GenerationRow]) -> None:
        """Cache entries without results: a judge's verdicts (JSON in `output`), a synthesis."""
        with self.tx() as db:
            self._insert(db, "generations", rows, replace=True)

    # --- runs ------------------------------------------------------------------------------------

    def insert_run(self, row: RunRow) -> None:
        with self.tx() as db:
            self._insert(db, "runs", [row])

    def run(self, run_id: str) -> RunRow | None:
        row = self._row("SELECT * FROM runs WHERE id=?", (run_id,))
        return cast(RunRow, self._decode("runs", row)) if row else None

    def runs(self, suite: str | None = None, model: str | None = None) -> list[RunRow]:
        sql, params = "SELECT * FROM runs WHERE 1=1", []
        if suite:
            sql += " AND suite=?"
            params.append(suite)
        if model:
            sql += " AND model=?"
            params.append(model)
        rows = self._rows(sql + " ORDER BY created_at", params)
        return [cast(RunRow, self._decode("runs", r)) for r in rows]

    def run_ids_starting(self, prefix: str) -> list[str]:
        rows = self._rows("SELECT id FROM runs WHERE substr(id, 1, ?) = ?", (len(prefix), prefix))
        return [r["id"] for r in rows]

    def unfinished_run(self, run_key: str) -> str | None:
        """The newest run of this key that did not complete: the one to resume."""
        row = self._row(
            "SELECT id FROM runs WHERE run_key=? AND status IN ('running', 'failed')"
            " ORDER BY created_at DESC LIMIT 1",
            (run_key,),
        )
        return row["id"] if row else None

    def complete_run(self, run_key: str) -> str | None:
        row = self._row(
            "SELECT id FROM runs WHERE run_key=? AND status='complete'"
            " ORDER BY created_at DESC LIMIT 1",
            (run_key,),
        )
        return row["id"] if row else None

    def set_run_status(self, run_id: str, status: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))

    def set_run_setting(self, run_id: str, key: str, value: Any) -> None:
        """Add (or replace) one key of a run's settings: what is known only once it ran."""
        with self.tx() as db:
            db.execute(
                "UPDATE runs SET settings=json_set(settings, ?, json(?)) WHERE id=?",
                (f"$.{key}", json.dumps(value), run_id),
            )

    def finish_run(self, run_id: str, timings: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE runs SET status='complete', finished_at=?, timings=? WHERE id=?",
                (time.time(), json.dumps(timings), run_id),
            )

    def runs_with_models(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its model's kind, base and producing train run."""
        rows = self._rows(
            "SELECT r.*, m.kind AS registered_kind, m.base AS model_base,"
            " m.produced_by AS model_produced_by FROM runs r"
            " LEFT JOIN models m ON m.name = r.model ORDER BY r.created_at DESC"
        )
        return [self._decode("runs", r) for r in rows]

    # --- results ---------------------------------------------------------------------------------

    def result_ids(self, run_id: str) -> set[str]:
        rows = self._rows("SELECT case_id FROM results WHERE run_id=?", (run_id,))
        return {r["case_id"] for r in rows}

    def results(self, run_id: str) -> list[ResultRow]:
        rows = self._rows("SELECT * FROM results WHERE run_id=? ORDER BY position", (run_id,))
        return [cast(ResultRow, self._decode("results", r)) for r in rows]

    def save_results(
        self, results: Sequence[ResultRow], generations: Sequence[GenerationRow] = ()
    ) -> None:
        """A batch of graded results and the generations behind them, in one transaction."""
        with self.tx() as db:
            self._insert(db, "generations", generations, replace=True)
            self._insert(db, "results", results)

    def grade_counts(self) -> dict[str, dict[str, int]]:
        """run id -> {grade: number of cases}."""
        out: dict[str, dict[str, int]] = {}
        for r in self._rows(
            "SELECT run_id, grade, COUNT(*) AS n FROM results GROUP BY run_id, grade"
        ):
            out.setdefault(r["run_id"], {"bad": 0, "good": 0, "better": 0})[r["grade"]] = r["n"]
        return out

    def case_history(self, suite: str, case_id: str) -> list[dict[str, Any]]:
        """One case in every run of a suite, oldest first, with the run's model and step."""
        rows = self._rows(
            "SELECT res.*, r.model, r.created_at, r.train_run, r.step, r.suite_fingerprint,"
            " r.prompt_variant FROM results res JOIN runs r ON r.id = res.run_id"
            " WHERE r.suite = ? AND res.case_id = ? ORDER BY r.created_at",
            (suite, case_id),
        )
        return [self._decode("results", r) for r in rows]

    def suite_case_ids(self, suite: str) -> list[str]:
        rows = self._rows(
            "SELECT res.case_id, MIN(res.position) AS pos FROM results res"
            " JOIN runs r ON r.id = res.run_id WHERE r.suite = ?"
            " GROUP BY res.case_id ORDER BY pos, res.case_id",
            (suite,),
        )
        return [r["case_id"] for r in rows]

    def checkpoint_grades(self, train_run: str) -> list[dict[str, Any]]:
        """Grade counts of every checkpoint evaluation of a training run, by step."""
        return self._rows(
            "SELECT r.id AS run_id, r.step, r.suite, res.grade, COUNT(*) AS n"
            " FROM runs r JOIN results res ON res.run_id = r.id WHERE r.train_run = ?"
            " GROUP BY r.id, res.grade ORDER BY r.step",
            (train_run,),
        )

    def checkpoint_runs(self, train_run: str) -> list[RunRow]:
        rows = self._rows(
            "SELECT * FROM runs WHERE train_run=? ORDER BY step, created_at", (train_run,)
        )
        return [cast(RunRow, self._decode("runs", r)) for r in rows]

    # --- training --------------------------------------------------------------------------------

    def insert_train_run(self, row: TrainRunRow) -> None:
        with self.tx() as db:
            self._insert(db, "train_runs", [row])

    def train_run(self, train_run: str) -> TrainRunRow | None:
        row = self._row("SELECT * FROM train_runs WHERE id=?", (train_run,))
        return cast(TrainRunRow, self._decode("train_runs", row)) if row else None

    def train_runs(self) -> list[TrainRunRow]:
        rows = self._rows("SELECT * FROM train_runs ORDER BY created_at DESC")
        return [cast(TrainRunRow, self._decode("train_runs", r)) for r in rows]

    def unfinished_train_run(self, model: str) -> str | None:
        row = self._row(
            "SELECT id FROM train_runs WHERE model=? AND status!='complete'"
            " ORDER BY created_at DESC LIMIT 1",
            (model,),
        )
        return row["id"] if row else None

    def reopen_train_run(self, train_run: str, *, clear_log: bool) -> None:
        """Mark an interrupted train run running again; without checkpoints its log restarts."""
        with self.tx() as db:
            db.execute(
                "UPDATE train_runs SET status='running', finished_at=NULL WHERE id=?", (train_run,)
            )
            if clear_log:
                db.execute("DELETE FROM train_log WHERE train_run=?", (train_run,))

    def finish_train_run(self, train_run: str, status: str, model: str | None = None) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE train_runs SET status=?, finished_at=?, model=COALESCE(?, model)"
                " WHERE id=?",
                (status, time.time(), model, train_run),
            )

    def log_train(self, train_run: str, step: int, kind: str, data: dict[str, Any]) -> None:
        row: TrainLogRow = {
            "train_run": train_run,
            "step": step,
            "kind": kind,
            "data": data,
            "created_at": time.time(),
        }
        with self.tx() as db:
            self._insert(db, "train_log", [row])

    def forget_train_log_after(self, train_run: str, step: int) -> None:
        """Lines an interrupted run logged after the checkpoint it resumes from."""
        with self.tx() as db:
            db.execute("DELETE FROM train_log WHERE train_run=? AND step>?", (train_run, step))

    def train_log(self, train_run: str) -> list[TrainLogRow]:
        rows = self._rows(
            "SELECT * FROM train_log WHERE train_run = ? ORDER BY step, created_at", (train_run,)
        )
        return [cast(TrainLogRow, self._decode("train_log", r)) for r in rows]

    # --- human labels ----------------------------------------------------------------------------

    def save_label(self, row: LabelRow) -> None:
        with self.tx() as db:
            self._insert(db, "labels", [row], replace=True)

    def delete_label(self, run_id: str, case_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM labels WHERE run_id = ? AND case_id = ?", (run_id, case_id))

    def labels(self) -> list[LabelRow]:
        return cast(list[LabelRow], self._rows("SELECT * FROM labels"))

    def labelled_results(self, run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every label with the result it judges (automatic grade, prompt, output)."""
        sql = (
            "SELECT l.run_id, l.case_id, l.grade AS human, l.note, l.corrected_output,"
            " l.reviewer, l.created_at, res.grade AS auto, res.prompt, res.output,"
            " res.criteria, r.suite, r.model FROM labels l"
            " JOIN results res ON res.run_id = l.run_id AND res.case_id = l.case_id"
            " JOIN runs r ON r.id = l.run_id"
        )
        params: list[str] = []
        if run_ids is not None:
            sql += f" WHERE l.run_id IN ({','.join('?' * len(run_ids))})"
            params = list(run_ids)
        rows = self._rows(sql + " ORDER BY r.created_at, res.position", params)
        return [self._decode("results", r) for r in rows]
