"""Smaller hostile probes, each once: a partly graded run on the leaderboard, a huge --n-boot, a
full disk and a deleted -wal under the store, a non-file as --outputs, a --set key given twice,
a yes/no where a suite wants a number, Inspect choices past Z, and where an importer's catch-all
error points."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compare_helpers import answers, fake_run
from tests.conftest import run_cli


def _one_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _outputs(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": k, "output": v}) + "\n" for k, v in rows.items()))
    return path


# --- the leaderboard -----------------------------------------------------------------------------


def test_a_partly_graded_run_is_left_out_of_the_leaderboard(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An outputs file answering 2 of 6 cases, both right, ranked above a model measured on all
    six; named in --models it is refused."""
    from harness.store import Store

    db = tmp_path / "t.db"
    with Store(db) as store:
        fake_run(store, mini_suite, "base", answers({"b": "no idea", "c": "no idea"}))
        fake_run(store, mini_suite, "good", answers())
    few = _outputs(tmp_path / "few.jsonl", {"a": "textwrap", "d": "math"})
    code, _, err = run_cli("grade", str(mini_suite), "--outputs", str(few), "--name", "api",
                           "--db", str(db), "--json", capsys=capsys)  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli("leaderboard", "--suite", "mini", "--db", str(db), "--json",
                             capsys=capsys)  # fmt: skip
    assert code == 0, err
    board = json.loads(out)
    assert [m["model"] for m in board["models"]] == ["good", "base"]
    assert board["partial"] == [{"model": "api", "n": 2, "of": 6}]
    code, out, _ = run_cli("leaderboard", "--suite", "mini", "--db", str(db), capsys=capsys)
    assert code == 0 and "api (2 of 6)" in out
    code, _, err = run_cli("leaderboard", "--suite", "mini", "--models", "good,api",
                           "--db", str(db), capsys=capsys)  # fmt: skip
    assert "'api' graded 2 of the 6 cases" in _one_error(code, err)


@pytest.mark.parametrize("n", ["1000000000000", "100001", "0"])
def test_a_huge_n_boot_is_a_usage_error(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str], n: str
) -> None:
    from harness.store import Store

    db = tmp_path / "t.db"
    with Store(db) as store:
        fake_run(store, mini_suite, "good", answers())
    code, _, err = run_cli("leaderboard", "--suite", "mini", "--db", str(db), "--n-boot", n,
                           capsys=capsys)  # fmt: skip
    assert code == 2 and "--n-boot" in err and "Traceback" not in err


def test_the_bootstrap_of_many_models_fits_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays flat: no fit sees more win-matrix cells than one chunk."""
    import numpy as np

    from harness.comparison import leaderboard

    seen: list[int] = []
    fit = leaderboard.fit
    monkeypatch.setattr(leaderboard, "fit", lambda w: seen.append(w.size) or fit(w))
    monkeypatch.setattr(leaderboard, "_CHUNK", 10_000)
    grades = np.random.default_rng(0).integers(0, 3, size=(30, 20)).astype(float)
    low, high = leaderboard._bootstrap(grades, 300, 0)
    assert max(seen) <= 10_000 and sum(seen) == 300 * 20 * 20
    assert np.all(low <= high)


# --- store faults --------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_the_store_stays_whole(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """SQLite's page limit fails a write exactly as a full disk does (SQLITE_FULL)."""
    from harness.store import Store

    db = tmp_path / "t.db"
    with Store(db) as store:
        fake_run(store, mini_suite, "good", answers())
    connect = Store._connect

    def full(self: Store) -> sqlite3.Connection:
        conn = connect(self)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages + 1}")
        return conn

    monkeypatch.setattr(Store, "_connect", full)
    big = _outputs(tmp_path / "big.jsonl", {c: "x" * 50_000 for c in "abcdef"})
    code, _, err = run_cli("grade", str(mini_suite), "--outputs", str(big), "--name", "big",
                           "--db", str(db), capsys=capsys)  # fmt: skip
    assert "no space left on the disk of the store" in _one_error(code, err)
    monkeypatch.undo()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert (
            conn.execute("SELECT count(*) FROM results WHERE output LIKE 'xxx%'").fetchone()[0] == 0
        )
    code, _, err = run_cli("leaderboard", "--suite", "mini", "--db", str(db), capsys=capsys)
    assert code == 0, err


WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("UPDATE runs SET model=model")
db.commit()
db.execute("UPDATE runs SET status='running'")
db.commit()
print("written", flush=True)
sys.stdin.read()
db.close()
"""


def test_a_deleted_wal_is_one_line_naming_it(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process writes, its -wal is deleted under it: other commands say what happened
    (not "is not a tuneval store"); once the writer is done the store reads again, whole."""
    from harness.store import Store

    db = tmp_path / "t.db"
    with Store(db) as store:
        fake_run(store, mini_suite, "good", answers())
    # The writer is another process, as it would be: SQLite shares one process's connections.
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "written"
        Path(f"{db}-wal").unlink()
        for args in (["runs", "list"], ["leaderboard", "--suite", "mini"]):
            code, _, err = run_cli(*args, "--db", str(db), capsys=capsys)
            line = _one_error(code, err)
            assert "-wal" in line and "not a tuneval store" not in line
    finally:
        writer.communicate("", timeout=30)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    code, out, err = run_cli("runs", "list", "--db", str(db), capsys=capsys)
    assert code == 0 and "good" in out, err


# --- command-line input ------------------------------------------------------------------------


def test_outputs_that_are_not_a_file_say_so(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    db = tmp_path / "t.db"
    cases = [("/dev/null", "a device or pipe"), (str(tmp_path), "a folder"),
             (str(fifo), "a device or pipe"), (str(tmp_path / "none"), "no such file")]  # fmt: skip
    for path, what in cases:
        code, _, err = run_cli("grade", str(mini_suite), "--outputs", path, "--name", "x",
                               "--db", str(db), capsys=capsys)  # fmt: skip
        assert what in _one_error(code, err)
    assert not db.exists()


def test_a_set_key_given_twice_is_refused(
    tmp_path: Path, mini_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    code, _, err = run_cli("train", str(mini_suite), "--set", "learning_rate=1", "--set",
                           "learning_rate=2", "--db", str(db), capsys=capsys)  # fmt: skip
    line = _one_error(code, err)
    assert "--set:learning_rate: given twice (learning_rate=1, then learning_rate=2)" in line
    assert not db.exists()


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("generation: {max_new_tokens: 16,", "generation: {max_new_tokens: true,",
         "line 8 (generation.max_new_tokens)"),
        ("generation: {max_new_tokens: 16,", "generation: {temperature: false, max_new_tokens: 16,",
         "line 8 (generation.temperature)"),
        ("version: 1", "version: true", "line 2 (version)"),
        ("generation:", "  variants: {few: {shots: true}}\ngeneration:",
         "line 8 (prompt.variants.few.shots)"),
    ],
)  # fmt: skip
def test_a_yes_no_where_a_number_is_wanted_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, where: str
) -> None:
    from tests.conftest import SUITE_YAML, write_suite

    assert old in SUITE_YAML
    folder = write_suite(tmp_path / "s", SUITE_YAML.replace(old, new, 1))
    code, _, err = run_cli("suites", "validate", str(folder), capsys=capsys)
    line = _one_error(code, err)
    assert f"suite.yaml:{where}:" in line and "is a yes/no value" in line


# --- importers -----------------------------------------------------------------------------------


def _inspect(tmp_path: Path, rows: list[dict], capsys: pytest.CaptureFixture[str], *more: str):
    source = tmp_path / "mc.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_cli("suites", "import", "inspect", str(source), "--scorer", "choice",
                   "--out", str(tmp_path / "s"), *more, capsys=capsys)  # fmt: skip


def test_inspect_choices_past_z(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A to Z, then 1 to 9 as Inspect letters them; a 36th choice would be "10": refused."""
    from tests.import_helpers import verdicts

    rows = [
        {"id": "q30", "input": "Pick?", "choices": [f"o{i}" for i in range(30)], "target": "3"},
        {"id": "q40", "input": "Pick?", "choices": [f"o{i}" for i in range(40)], "target": "10"},
    ]
    code, _, err = _inspect(tmp_path, rows, capsys)
    assert code == 2 and "mc.jsonl:line 2: 40 choices" in err and "at most 35" in err
    assert not (tmp_path / "s").exists()
    code, _, err = _inspect(tmp_path, rows, capsys, "--skip-refused")
    assert code == 0, err
    from harness.evaluation.runner import conversation
    from harness.suite.loader import load_suite

    suite = load_suite(tmp_path / "s")
    prompt = conversation(suite, suite.cases[0])[-1]["content"]
    assert "where LETTER is one of A,B," in prompt and ",Z,1,2,3,4." in prompt
    assert prompt.endswith("Z) o25\n1) o26\n2) o27\n3) o28\n4) o29")
    folder = tmp_path / "s"
    assert verdicts(folder, {"q30": "ANSWER: 3"}) == {"q30": True}
    assert verdicts(folder, {"q30": "ANSWER: C"}) == {"q30": False}


def test_the_importer_catch_all_names_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure no check anticipated, in the second sample: the one line names its file and
    line, not only the source."""
    from harness.importers import inspect_data

    real = inspect_data.chat_messages

    def fragile(value):  # a shape of input nothing checks yet
        if value == "boom?":
            raise TypeError("unexpected shape")
        return real(value)

    monkeypatch.setattr(inspect_data, "chat_messages", fragile)
    rows = [
        {"input": "Pick?", "choices": ["a", "b"], "target": "A"},
        {"input": "boom?", "choices": ["a", "b"], "target": "A"},
    ]
    code, _, err = _inspect(tmp_path, rows, capsys)
    line = _one_error(code, err)
    assert "mc.jsonl:line 2: cannot import this inspect source: TypeError" in line


def test_an_openai_evals_class_or_id_that_is_not_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from tests.import_helpers import SPECIMENS

    registry = tmp_path / "registry"
    shutil.copytree(SPECIMENS / "openai-evals" / "registry", registry)
    spec = registry / "evals" / "capitals.yaml"
    text = spec.read_text()
    for old, new, said in (
        ("class: evals.elsuite.basic.match:Match", "class: {a: 1}", "uses {'a': 1}"),
        ("id: capitals-match.dev.v0", "id: [a]", "id must be the name of an eval"),
    ):
        assert old in text
        spec.write_text(text.replace(old, new, 1))
        args = ["openai-evals", str(spec), "--eval", "capitals-match", "--out", str(tmp_path / "s")]
        code, _, err = run_cli("suites", "import", *args, capsys=capsys)
        line = _one_error(code, err)
        assert said in line and "cannot import this" not in line
