"""The store's schema, as numbered migrations: `MIGRATIONS[i]` takes version i to version i + 1.

Append only: a migration that has shipped is never edited, because stores made by it exist.
Each one is a function of an open connection inside the transaction that also bumps
`PRAGMA user_version`, so a migration is applied completely or not at all. Old store files
made by each schema are kept as test fixtures (tests/fixtures/stores/) and migrated in the tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE models (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            path TEXT,
            fingerprint TEXT,
            kind TEXT NOT NULL,              -- packaged | local | adapter | trained | served
            base TEXT,                       -- the base model's name, for adapters and candidates
            produced_by TEXT,                -- train run id
            info TEXT NOT NULL DEFAULT '{}', -- JSON: manifest, hyperparameters
            created_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE file_hashes (
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            PRIMARY KEY (path, size, mtime_ns)
        )"""
    )
    db.execute(
        """CREATE TABLE runs (
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
        )"""
    )
    db.execute("CREATE INDEX runs_key ON runs (run_key, status)")
    db.execute("CREATE INDEX runs_suite_model ON runs (suite, model, created_at)")
    db.execute(
        """CREATE TABLE results (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            case_id TEXT NOT NULL,
            position INTEGER NOT NULL,       -- order of the case in the suite
            prompt TEXT NOT NULL,
            output TEXT NOT NULL,
            grade TEXT NOT NULL CHECK (grade IN ('bad', 'good', 'better')),
            criteria TEXT NOT NULL,          -- JSON: id -> {section, passed, score, detail}
            cached INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, case_id)
        )"""
    )
    db.execute(
        """CREATE TABLE generations (
            key TEXT PRIMARY KEY,            -- sha256(model fingerprint, prompt, settings)
            model_fingerprint TEXT NOT NULL,
            prompt TEXT NOT NULL,
            settings TEXT NOT NULL,
            output TEXT NOT NULL,
            n_tokens INTEGER NOT NULL,
            seconds REAL NOT NULL,
            created_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE train_runs (
            id TEXT PRIMARY KEY,
            suite TEXT NOT NULL,
            trainer TEXT NOT NULL,
            base TEXT NOT NULL,
            config TEXT NOT NULL,            -- JSON
            output_dir TEXT NOT NULL,
            model TEXT,                      -- registered name of the result
            status TEXT NOT NULL,            -- running | complete | failed | interrupted
            created_at REAL NOT NULL,
            finished_at REAL
        )"""
    )
    db.execute(
        """CREATE TABLE train_log (
            train_run TEXT NOT NULL REFERENCES train_runs (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            kind TEXT NOT NULL,              -- log | checkpoint | eval
            data TEXT NOT NULL,              -- JSON: loss, lr, tokens_per_s, path, run id
            created_at REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX train_log_run ON train_log (train_run, step)")
    db.execute(
        """CREATE TABLE labels (
            run_id TEXT NOT NULL,
            case_id TEXT NOT NULL,
            grade TEXT NOT NULL CHECK (grade IN ('bad', 'good', 'better')),
            note TEXT NOT NULL DEFAULT '',
            corrected_output TEXT,
            reviewer TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, case_id)
        )"""
    )


def m002_case_facts(db: sqlite3.Connection) -> None:
    """What a comparison needs without the suite folder, and what each answer cost.

    - results.must_pass: the case's flag when it was evaluated, so `compare` and `gate` read the
      store alone (the suite folder may have moved or changed since).
    - results.prompt_tokens / output_tokens / seconds, and generations.prompt_tokens: the cost
      of each answer, kept through the cache.
    - runs.prompt_variant: which of the suite's prompts produced the run ('' = the base prompt).
    - runs.model_kind: the kind of model at run time; `served` fingerprints are not verified.
    """
    db.execute("ALTER TABLE results ADD COLUMN must_pass INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE results ADD COLUMN prompt_tokens INTEGER")
    db.execute("ALTER TABLE results ADD COLUMN output_tokens INTEGER")
    db.execute("ALTER TABLE results ADD COLUMN seconds REAL")
    db.execute("ALTER TABLE generations ADD COLUMN prompt_tokens INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN prompt_variant TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN model_kind TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE INDEX results_case ON results (case_id)")
    db.execute("CREATE INDEX runs_train ON runs (train_run, step)")


def m003_samples(db: sqlite3.Connection) -> None:
    """results.samples: a case's k sampled answers (JSON: j, seed, output, grade, criteria,
    cached, output_tokens, seconds) when its run drew several per case; NULL for one answer."""
    db.execute("ALTER TABLE results ADD COLUMN samples TEXT")


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = [m001_initial, m002_case_facts, m003_samples]
SCHEMA_VERSION = len(MIGRATIONS)
