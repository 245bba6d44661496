"""The packaged real model through the CLI: cached re-runs, and resuming after kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TUNEVAL, cli, write_suite

pytestmark = pytest.mark.slow

DOCS_YAML = """\
name: real-mini
version: 1
prompt:
  system: You are a concise Python documentation assistant.
  user: "In one sentence, what does the Python function {function} do?"
generation: {max_new_tokens: 20, stop: ["\\n\\n"]}
data:
  test: test.jsonl
rubric:
  bad:
    - {id: empty, type: empty}
    - {id: repetitive, type: repetition, max_ratio: 0.3}
  good:
    - {id: names-function, type: contains, value: "{name}"}
  better:
    - {id: concise, type: length, max_words: 25}
"""

FUNCTIONS = [
    "os.path.join",
    "os.listdir",
    "os.getcwd",
    "json.dumps",
    "json.loads",
    "textwrap.dedent",
    "textwrap.wrap",
    "math.sqrt",
    "math.floor",
    "random.choice",
    "random.shuffle",
    "copy.deepcopy",
    "shutil.copy",
    "shutil.rmtree",
    "time.sleep",
    "re.sub",
    "re.findall",
    "glob.glob",
    "itertools.chain",
    "functools.reduce",
    "heapq.heappush",
    "bisect.insort",
    "string.capwords",
    "statistics.mean",
]


def real_suite(folder: Path) -> Path:
    cases = [
        {"id": f"f{i:02d}", "function": f, "name": f.rsplit(".", 1)[1]}
        for i, f in enumerate(FUNCTIONS)
    ]
    return write_suite(folder, DOCS_YAML, cases=cases, train=[])


def test_same_eval_twice_is_identical_and_cached(tmp_path: Path) -> None:
    suite, db = real_suite(tmp_path / "s"), tmp_path / "t.db"
    first = cli("eval", str(suite), "--limit", "20", "--json", db=db)
    assert first.returncode == 0, first.stderr
    second = cli("eval", str(suite), "--limit", "20", "--json", db=db)
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["cached"] == 0 and a["generated"] == 20
    assert b["cached"] == 20 and b["generated"] == 0
    assert a["grades"] == b["grades"] and a["criteria"] == b["criteria"]
    show = lambda r: json.loads(cli("runs", "show", r, "--json", db=db).stdout)["cases"]  # noqa: E731
    assert show(a["run_id"]) == show(b["run_id"])
    outputs = [c["output"] for c in show(a["run_id"])]
    assert sum(1 for o in outputs if o.strip()) >= 15  # a real model answers


def test_kill_9_then_rerun_resumes(tmp_path: Path) -> None:
    suite, db = real_suite(tmp_path / "s"), tmp_path / "t.db"
    env = {**os.environ, "TUNEVAL_DB": str(db)}
    n = 12
    args = [TUNEVAL, "eval", str(suite), "--limit", str(n), "--batch-size", "2", "--json"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done_before = 0
    deadline = time.time() + 1200
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    done_before = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if done_before >= 2:
                break
    assert proc.poll() is None, "the eval finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as con:
        done_before = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        [(run_id, status)] = con.execute("SELECT id, status FROM runs").fetchall()
    assert status == "running" and 2 <= done_before < n

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["run_id"] == run_id and data["resumed"]
    assert data["generated"] == n - done_before
    with sqlite3.connect(db) as con:
        ids = [r[0] for r in con.execute("SELECT case_id FROM results WHERE run_id=?", (run_id,))]
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "complete"
    assert sorted(ids) == [f"f{i:02d}" for i in range(n)]
    assert len(ids) == len(set(ids)) and data["n"] == n
