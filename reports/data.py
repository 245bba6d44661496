"""Read-only, cached queries for the report.

Every query opens its own read-only connection: Streamlit runs sessions on several threads, and a
fresh SQLite connection costs about a millisecond. Results of a finished run never change, so they
are cached by (run id, status, finished_at); everything else is keyed by the store file's stamp
(modification times of the database and its WAL), so new runs appear on the next rerun.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from harness.store import Store, default_path
from reports import arms

# Cached functions take a `version` argument that is never read: it is part of the cache key.
# (Streamlit skips parameters whose names start with "_" when hashing, so it has no underscore.)
Stamp = tuple[int, ...]


def db_path(argv: list[str] | None = None) -> str:
    """The store: `streamlit run app.py -- --db PATH`, else $TUNEVAL_DB, else the default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return str(Path(known.db or default_path()).resolve())


def stamp(db: str) -> Stamp:
    out = []
    for suffix in ("", "-wal"):
        try:
            st_ = os.stat(db + suffix)
            out += [st_.st_mtime_ns, st_.st_size]
        except FileNotFoundError:
            out += [0, 0]
    return tuple(out)


@contextmanager
def reader(db: str) -> Iterator[Store]:
    store = Store(db, readonly=True)
    try:
        yield store
    finally:
        store.close()


def run_version(run: dict[str, Any], db: str) -> Stamp:
    """Cache key for a run's results: fixed once complete, the store stamp while it runs."""
    if run["status"] == "complete":
        return (int((run["finished_at"] or 0) * 1e6),)
    return stamp(db)


@st.cache_data(show_spinner=False, max_entries=16)
def runs(db: str, version: Stamp) -> list[dict[str, Any]]:
    """Every run, newest first, with grade counts, pass rate and its model's kind and lineage."""
    with reader(db) as store:
        rows = store.runs_with_models()
        per = store.grade_counts()
    for r in rows:
        r["model_kind"] = r["model_kind"] or r["registered_kind"]
        g = per.get(r["id"], {"bad": 0, "good": 0, "better": 0})
        n = sum(g.values())
        r["grades"], r["n_results"] = g, n
        r["pass_rate"] = (g["good"] + g["better"]) / n if n else None
        r["better_rate"] = g["better"] / n if n else None
        r["is_candidate"] = bool(
            r["model_kind"] == "trained" or r["model_produced_by"] or r["train_run"]
        )
    arms.label_all(rows)  # each run's arm: model, prompt variant, sampling settings
    return rows


def store_problem(db: str) -> str | None:
    """Why the store cannot be read (missing, not SQLite, a newer schema), in one line; None
    when it can."""
    from harness.errors import UserError

    try:
        with reader(db):
            return None
    except UserError as e:
        return " ".join(e.lines())


@st.cache_data(show_spinner=False, max_entries=16)
def models(db: str, version: Stamp) -> list[dict[str, Any]]:
    with reader(db) as store:
        rows: list[dict[str, Any]] = [dict(m) for m in store.models()]
        trains = {t["id"]: t for t in store.train_runs()}
    for m in rows:
        t = trains.get(m["produced_by"] or "")
        m["trainer"] = t["trainer"] if t else None
        m["train_config"] = t["config"] if t else {}
    return rows


@st.cache_data(show_spinner=False, max_entries=32)
def results(db: str, run_id: str, version: Stamp) -> list[dict[str, Any]]:
    with reader(db) as store:
        return [dict(r) for r in store.results(run_id)]


@st.cache_data(show_spinner=False, max_entries=64)
def case_across_runs(db: str, suite: str, case_id: str, version: Stamp) -> list[dict[str, Any]]:
    """One case in every run of a suite, oldest first, with the run's model and checkpoint."""
    with reader(db) as store:
        return store.case_history(suite, case_id)


@st.cache_data(show_spinner=False, max_entries=16)
def case_ids(db: str, suite: str, version: Stamp) -> list[str]:
    with reader(db) as store:
        return store.suite_case_ids(suite)


@st.cache_data(show_spinner=False, max_entries=16)
def train_runs(db: str, version: Stamp) -> list[dict[str, Any]]:
    with reader(db) as store:
        return [dict(r) for r in store.train_runs()]


@st.cache_data(show_spinner=False, max_entries=16)
def train_log(db: str, train_run: str, version: Stamp) -> list[dict[str, Any]]:
    with reader(db) as store:
        return [dict(r) for r in store.train_log(train_run)]


@st.cache_data(show_spinner=False, max_entries=16)
def checkpoint_grades(db: str, train_run: str, version: Stamp) -> list[dict[str, Any]]:
    """Grade counts of every checkpoint evaluation of a training run, by step."""
    with reader(db) as store:
        return store.checkpoint_grades(train_run)


def labels(db: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Human labels, uncached: they change under the reviewer's hand and are few."""
    with reader(db) as store:
        return {(r["run_id"], r["case_id"]): dict(r) for r in store.labels()}


def default_suite(all_runs: list[dict[str, Any]]) -> str | None:
    """The suite to open first: the one of the newest candidate run (what `tuneval loop` just
    evaluated), else the newest suite with two runs to compare, else the newest suite."""
    with_results = [r for r in all_runs if r["n_results"]]  # newest first
    for r in with_results:
        if r["is_candidate"]:
            return str(r["suite"])
    seen: dict[str, int] = {}
    for r in with_results:
        seen[r["suite"]] = seen.get(r["suite"], 0) + 1
        if seen[r["suite"]] == 2:
            return str(r["suite"])
    return str(with_results[0]["suite"]) if with_results else None


def latest_runs(all_runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(model, suite) -> the newest complete run of the model under the suite's base prompt: a
    plain model name means that arm, never its few-shot run. Checkpoint evaluations are left out:
    their models (`name@step`) were never registered, unlike the trained model they led to."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for (model_arm, suite), r in arms.latest(all_runs).items():
        if not model_arm[1]:
            out.setdefault((model_arm[0], suite), r)
    return out


def default_pair(all_runs: list[dict[str, Any]], suite: str) -> tuple[str | None, str | None]:
    """(base run, candidate run) to compare first on a suite, by lineage (`arms.default_pair`)."""
    return arms.default_pair(all_runs, suite)


def pairs_sample(info: dict[str, Any], n: int = 5) -> tuple[list[dict[str, Any]], str]:
    """Up to n preference pairs a candidate learned from (its manifest's `pairs`), with a note:
    how many there were, or why they cannot be shown (the file moved or changed since)."""
    import hashlib
    import json

    pairs = info.get("pairs")
    if not isinstance(pairs, dict) or not pairs.get("path"):
        return [], ""
    path = Path(str(pairs["path"]))
    try:
        blob = path.read_bytes()
    except OSError:
        return [], f"the pairs file {path} is no longer there"
    if hashlib.sha256(blob).hexdigest() != pairs.get("sha256"):
        return [], f"the pairs file {path} has changed since training: not shown"
    rows = []
    for line in blob.decode("utf-8", "replace").splitlines():
        if line.strip() and len(rows) < n:
            rows.append(json.loads(line))
    return rows, f"{pairs.get('rows')} pairs from {path} (sha256 {str(pairs['sha256'])[:12]}…)"
