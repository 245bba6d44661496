"""What a command writes never lands on the store, in a folder that does not exist, or half-way;
training survives a kill in the middle of a checkpoint and logs each step once."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from harness.store import Store
from tests.compare_helpers import answers, fake_run
from tests.conftest import run_cli


@pytest.fixture
def two_runs(tmp_path: Path, mini_suite: Path) -> tuple[Path, str, str]:
    db = tmp_path / "ws" / "tuneval.db"
    db.parent.mkdir()
    with Store(db) as store:
        a = fake_run(store, mini_suite, "base", answers())
        b = fake_run(store, mini_suite, "cand", answers({"a": "no idea"}))
    return db, a, b


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("option", ["--junit", "--markdown"])
@pytest.mark.parametrize("target", ["store", "wal", "shm", "lock", "link-to-store"])
def test_output_onto_the_store_is_refused(
    two_runs: tuple[Path, str, str], option: str, target: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    db, a, b = two_runs
    path = {
        "store": db,
        "wal": db.with_name(db.name + "-wal"),
        "shm": db.with_name(db.name + "-shm"),
        "lock": db.with_name(db.name + ".lock"),
        "link-to-store": db.with_name("report.xml"),
    }[target]
    if target == "link-to-store":
        path.symlink_to(db)
    before = _digest(db)
    code, _, err = run_cli("compare", a, b, option, str(path), "--db", str(db), capsys=capsys)
    assert code == 2 and "is the store" in err and "Traceback" not in err, err
    assert _digest(db) == before
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("folder", "is a folder"),
        ("/proc/x.xml", "cannot write /proc/x.xml"),
        ("missing/dir/x.xml", "does not exist"),
    ],
)
def test_bad_output_paths_are_one_line(
    two_runs: tuple[Path, str, str], where: str, message: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    db, a, b = two_runs
    path = tmp_path / "folder" if where == "folder" else Path(where)
    if where == "folder":
        path.mkdir()
    elif not path.is_absolute():
        path = tmp_path / where
    for option in ("--junit", "--markdown"):
        code, _, err = run_cli("gate", a, b, option, str(path), "--db", str(db), capsys=capsys)
        assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "missing").exists()  # no directories made on the way


def test_outputs_replace_whole_files(
    two_runs: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, a, b = two_runs
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    junit.write_text("old")
    code, _, err = run_cli(
        "compare", a, b, "--junit", str(junit), "--markdown", str(md), "--db", str(db),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert junit.read_text().startswith("<?xml") and md.read_text().startswith("#")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_runs_export_never_overwrites_the_store(
    two_runs: tuple[Path, str, str], fmt: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    db, a, _ = two_runs
    before = _digest(db)
    code, _, err = run_cli(
        "runs", "export", a, "--format", fmt, "--out", str(db), "--db", str(db), capsys=capsys
    )
    assert code == 2 and "is the store" in err and _digest(db) == before
    out = tmp_path / f"cases.{fmt}"
    code, _, err = run_cli(
        "runs", "export", a, "--format", fmt, "--out", str(out), "--db", str(db), capsys=capsys
    )
    assert code == 0 and out.stat().st_size > 0, err
    code, _, err = run_cli(
        "runs", "export", a, "--out", str(tmp_path / "no" / "x.jsonl"), "--db", str(db),
        capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "does not exist" in err and not (tmp_path / "no").exists()


# --- training: a kill while a checkpoint is written, and the log of a resumed run -------------


def test_a_checkpoint_cut_short_is_ignored_and_cleaned(tmp_path: Path) -> None:
    """A kill during `save_checkpoint` leaves `step-N.tmp`, complete-looking or not: it is never
    taken as the latest checkpoint, and the next prune removes it."""
    from harness.plugin import CHECKPOINTS
    from trainers.sft_checkpoints import STATE, latest_checkpoint, prune

    folder = tmp_path / "out"
    done = folder / CHECKPOINTS / "step-0000004"
    cut = folder / CHECKPOINTS / "step-0000006.tmp"
    for step in (done, cut):
        step.mkdir(parents=True)
        (step / STATE).write_bytes(b"state")
    assert latest_checkpoint(folder) == done
    prune(folder, keep=1)
    assert done.is_dir() and not cut.exists()


def test_a_resumed_run_logs_each_step_once(tmp_path: Path) -> None:
    """The killed run logged steps 1-6 after its checkpoint at 4; resuming from 4 forgets 5 and 6,
    which the resumed run logs again."""
    from harness.training.job import StoreEvents

    with Store(tmp_path / "tuneval.db") as store:
        store.insert_train_run({
            "id": "t", "suite": "s", "trainer": "sft", "base": "b", "config": {},
            "output_dir": str(tmp_path), "model": "m", "status": "running",
            "created_at": 0.0, "finished_at": None,
        })  # fmt: skip
        killed = StoreEvents(store, "t", None, [], progress=False)  # type: ignore[arg-type]
        for step in range(1, 7):
            killed.log(step, loss=1.0 / step)
        resumed = StoreEvents(store, "t", None, [], progress=False)  # type: ignore[arg-type]
        resumed.resumed(4)
        for step in (5, 6, 7, 8):
            resumed.log(step, loss=0.5)
        steps = [r["step"] for r in store.train_log("t") if r["kind"] == "log"]
    assert steps == list(range(1, 9))
