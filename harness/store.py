"""The workspace store: one SQLite file in WAL mode, versioned by numbered migrations.

Default location `./.tuneval/tuneval.db`, overridden by `--db` or `TUNEVAL_DB`. Readers (the
report) and one writer can work at the same time. Every write that belongs together is one
transaction, so a killed process never leaves half a batch behind.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_DB = Path(".tuneval") / "tuneval.db"

# Append only: never edit a migration that has shipped. Index i migrates version i -> i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE models (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        path TEXT,
        fingerprint TEXT,
        kind TEXT NOT NULL,              -- packaged | local | adapter | trained
        base TEXT,                       -- the base model's name, for adapters and candidates
        produced_by TEXT,                -- train run id
        info TEXT NOT NULL DEFAULT '{}', -- JSON: manifest, hyperparameters
        created_at REAL NOT NULL
    );
    CREATE TABLE file_hashes (
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (path, size, mtime_ns)
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        suite TEXT NOT NULL,
        suite_version INTEGER NOT NULL,
        suite_fingerprint TEXT NOT NULL,
        suite_path TEXT NOT NULL,
        suite_files TEXT NOT NULL,       -- JSON: file name -> sha256, to say what changed
        model TEXT NOT NULL,             -- model name (or spec when unregistered)
        model_fingerprint TEXT NOT NULL,
        settings TEXT NOT NULL,          -- JSON: generation settings, limit, backend
        run_key TEXT NOT NULL,           -- identifies "the same command", for resuming
        status TEXT NOT NULL,            -- running | complete | failed
        n_cases INTEGER NOT NULL,
        train_run TEXT,                  -- set for checkpoint evaluations
        step INTEGER,
        created_at REAL NOT NULL,
        finished_at REAL,
        timings TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_key ON runs (run_key, status);
    CREATE INDEX runs_suite_model ON runs (suite, model, created_at);
    CREATE TABLE results (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        case_id TEXT NOT NULL,
        position INTEGER NOT NULL,       -- order of the case in the suite
        prompt TEXT NOT NULL,
        output TEXT NOT NULL,
        grade TEXT NOT NULL CHECK (grade IN ('bad', 'good', 'better')),
        criteria TEXT NOT NULL,          -- JSON: id -> {section, passed, score, detail}
        cached INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, case_id)
    );
    CREATE TABLE generations (
        key TEXT PRIMARY KEY,            -- sha256(model fingerprint, prompt, settings)
        model_fingerprint TEXT NOT NULL,
        prompt TEXT NOT NULL,
        settings TEXT NOT NULL,
        output TEXT NOT NULL,
        n_tokens INTEGER NOT NULL,
        seconds REAL NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE train_runs (
        id TEXT PRIMARY KEY,
        suite TEXT NOT NULL,
        trainer TEXT NOT NULL,
        base TEXT NOT NULL,
        config TEXT NOT NULL,            -- JSON
        output_dir TEXT NOT NULL,
        model TEXT,                      -- registered name of the result
        status TEXT NOT NULL,            -- running | complete | failed
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE TABLE train_log (
        train_run TEXT NOT NULL REFERENCES train_runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        kind TEXT NOT NULL,              -- log | checkpoint | eval
        data TEXT NOT NULL,              -- JSON: loss, lr, tokens_per_s, path, run id
        created_at REAL NOT NULL
    );
    CREATE INDEX train_log_run ON train_log (train_run, step);
    CREATE TABLE labels (
        run_id TEXT NOT NULL,
        case_id TEXT NOT NULL,
        grade TEXT NOT NULL CHECK (grade IN ('bad', 'good', 'better')),
        note TEXT NOT NULL DEFAULT '',
        corrected_output TEXT,
        reviewer TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, case_id)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def default_path() -> Path:
    return Path(os.environ.get("TUNEVAL_DB") or DEFAULT_DB)


def new_id(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


class Store:
    def __init__(self, path: str | Path | None = None, *, readonly: bool = False):
        self.path = Path(path) if path else default_path()
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no store at {self.path}")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA foreign_keys=ON")
        if not readonly:
            self.migrate()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        current = self.version
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {current}, "
                f"newer than this tuneval ({SCHEMA_VERSION})"
            )
        for i in range(current, SCHEMA_VERSION):
            with self.tx():
                for statement in _split(MIGRATIONS[i]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={i + 1}")

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

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(sql, params).fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self.db.execute(sql, params).fetchone()
        return dict(row) if row else None

    # --- file hashes -----------------------------------------------------------------------

    def cached_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        row = self.one(
            "SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?",
            (path, size, mtime_ns),
        )
        return row["sha256"] if row else None

    def remember_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)",
                (path, size, mtime_ns, sha256),
            )

    # --- models ----------------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        spec: str,
        *,
        path: str | None,
        fingerprint: str | None,
        kind: str,
        base: str | None = None,
        produced_by: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    spec,
                    path,
                    fingerprint,
                    kind,
                    base,
                    produced_by,
                    json.dumps(info or {}),
                    time.time(),
                ),
            )

    def model(self, name: str) -> dict[str, Any] | None:
        row = self.one("SELECT * FROM models WHERE name=?", (name,))
        if row:
            row["info"] = json.loads(row["info"])
        return row

    def models(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM models ORDER BY created_at")
        for r in rows:
            r["info"] = json.loads(r["info"])
        return rows

    # --- generation cache ------------------------------------------------------------------

    def cached_generations(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for r in self.query(
                f"SELECT key, output, n_tokens FROM generations WHERE key IN ({marks})", chunk
            ):
                out[r["key"]] = r
        return out

    # --- runs ------------------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.one("SELECT * FROM runs WHERE id=?", (run_id,))
        return _decode_run(row) if row else None

    def runs(self, suite: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM runs WHERE 1=1", []
        if suite:
            sql += " AND suite=?"
            params.append(suite)
        if model:
            sql += " AND model=?"
            params.append(model)
        return [_decode_run(r) for r in self.query(sql + " ORDER BY created_at", params)]

    def results(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM results WHERE run_id=? ORDER BY position", (run_id,))
        for r in rows:
            r["criteria"] = json.loads(r["criteria"])
            r["cached"] = bool(r["cached"])
        return rows


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("settings", "timings", "suite_files"):
        row[key] = json.loads(row[key])
    return row


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip() and not s.strip().startswith("--")]
