"""Fuzz the suite loader: mutated suite folders through `load_suite` and `tuneval suites validate`.

    python -m tests.fuzz_suites --examples 200 [--random]

Each example starts from the test suite (suite.yaml, test.jsonl, train.jsonl, an lm-eval task)
and applies a few hostile mutations: YAML scalars, tags, anchors, nesting and duplicate keys;
JSON lines that are deep, huge, not text or not objects; data paths that leave the folder or
name links, pipes, folders and sparse 3 GiB files; lm-eval task files of the wrong shape. Every
example must either load, or fail as `UserError` whose every problem names a file in the folder
on one line, and `suites validate` must exit 0 or 2 with `error:` lines and no traceback. This
process runs under an address-space limit and each example under a time limit (generous: they
catch a blow-up or a hang, not a slow machine). `tests/test_fuzz_suites.py` runs it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LM_TASK, SUITE_YAML, write_suite

MEMORY_LIMIT = 3 << 30  # bytes of address space for this whole process
EXAMPLE_SECONDS = 30


SCALARS = [
    "yes", "no", "on", "1:20", "0x1F", "0o17", "017", "1e999", ".inf", "-.nan", "~", "''",
    "!!int x", "!!float x", "!!bool maybe", "!!binary xyz", "!!timestamp 2020-13-45",
    "!!python/object:os.system x", "!!python/name:os.system", "!function evil.f", "!!set {a}",
    "*nowhere", "&a [*a]", '"\\ud800"', '"\\x00"', "9" * 5000, "[" * 300 + "]" * 300,
    "{a: 1, a: 2}", "[", "{", "'", "- x", "|\n  block", "x" * 20000, "-1", "0", "2.5",
]  # fmt: skip
LINES = [
    "name: twice", "version: 2", "x: " + "[" * 3000, "<<: *nowhere", "? [complex, key]\n: v",
    "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9) if i else 'x'}]\n" for i in range(9)),
    "%YAML 1.1", "--- !!map", "...", "\t tab", "\ufeff", "lm_eval: [task.yaml, task.yaml]",
    "    - {id: rx, type: regex, pattern: '(a'}",
    "    - {id: rx, type: regex, pattern: '(x+x+)+y'}",
    "    - {id: j, type: json-match, schema: {type: nope}}", "    - {id: w, type: weighted}",
    "    - {id: f, type: filtered-match, reference: x, filters: [{function: regex}]}",
]  # fmt: skip
JSON_LINES = [
    '{"id": "z", "function": "f\\ud800", "module": "m"}', '{"id": ' + "9" * 5000 + "}",
    '{"id": "z", "x": ' + "[" * 2000 + "]" * 2000 + "}", "[1, 2]", "null", "{not json",
    '{"id": "a", "function": "again", "module": "m"}', '{"id": true}', '{"id": NaN}',
    '{"id": "z", "must_pass": "yes", "function": "f", "module": "m"}', "\x00", '"\\udfff"',
]  # fmt: skip
PATHS = [
    "/etc/passwd", "../outside.jsonl", "link-out", "link-kmsg", "a-dir", "a-fifo", "sparse",
    "a" * 300, "missing.jsonl", "", ".", "..", "sub/../test.jsonl", "link-loop",
]  # fmt: skip


BUILT = ("link-out", "link-kmsg", "link-loop", "a-dir", "a-fifo", "sparse", "../outside.jsonl")


def _place(folder: Path, name: str) -> None:
    """Make the hostile file a data path names, where it is one we build."""
    target = folder / name
    if name not in BUILT or target.is_symlink() or target.exists():
        return
    if name == "link-out":
        target.symlink_to("/etc/passwd")
    elif name == "link-kmsg":
        target.symlink_to("/proc/kmsg")
    elif name == "link-loop":
        target.symlink_to(target)
    elif name == "a-dir":
        target.mkdir()
    elif name == "a-fifo":
        os.mkfifo(target)
    elif name == "sparse":
        with open(target, "wb") as f:
            f.truncate(3 << 30)
    elif name == "../outside.jsonl":
        (folder.parent / "outside.jsonl").write_text('{"id": "o"}\n')


mutation = st.one_of(
    st.tuples(st.just("scalar"), st.integers(0, 40), st.sampled_from(SCALARS)),
    st.tuples(st.just("line"), st.integers(0, 40), st.sampled_from(LINES)),
    st.tuples(st.just("yaml-bytes"), st.integers(0, 2000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("yaml-text"), st.integers(0, 40), st.text(max_size=40)),
    st.tuples(st.just("json"), st.sampled_from(["test.jsonl", "train.jsonl", "docs.jsonl"]),
              st.sampled_from(JSON_LINES)),
    st.tuples(st.just("json-bytes"), st.sampled_from(["test.jsonl", "train.jsonl"]),
              st.binary(max_size=40)),
    st.tuples(st.just("empty"), st.sampled_from(["test.jsonl", "train.jsonl", "task.yaml"]),
              st.just("")),
    st.tuples(st.just("path"), st.sampled_from(["test", "train"]), st.sampled_from(PATHS)),
    st.tuples(st.just("task"), st.integers(0, 12), st.sampled_from(SCALARS + PATHS)),
    st.tuples(st.just("task-path"), st.just(0), st.sampled_from(PATHS)),
)  # fmt: skip


def _plain(path: Path) -> bool:
    """A regular file the fuzzer may rewrite (never a link, folder or pipe it planted)."""
    return path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20


def build(folder: Path, mutations: list[tuple[str, Any, Any]]) -> None:
    write_suite(folder, SUITE_YAML + "lm_eval: [task.yaml]\n")
    (folder / "task.yaml").write_text(LM_TASK)
    (folder / "docs.jsonl").write_text('{"q": "2+2?", "choices": ["4", "5"], "gold": 0}\n')
    for kind, where, what in mutations:
        suite = folder / "suite.yaml"
        if kind in ("scalar", "line", "yaml-text", "task"):
            path = folder / ("task.yaml" if kind == "task" else "suite.yaml")
            if not _plain(path):
                continue
            lines = path.read_text(errors="replace").splitlines()
            i = where % (len(lines) + 1)
            if kind in ("scalar", "task") and lines and ":" in lines[min(i, len(lines) - 1)]:
                line = lines[min(i, len(lines) - 1)]
                lines[min(i, len(lines) - 1)] = line.split(":", 1)[0] + ": " + what
            else:
                lines.insert(i, what)
            path.write_text("\n".join(lines) + "\n", errors="surrogatepass")
        elif kind == "yaml-bytes" and _plain(suite):
            data = bytearray(suite.read_bytes())
            i = where % (len(data) + 1)
            data[i : i + len(what)] = what
            suite.write_bytes(bytes(data))
        elif kind == "json" and _plain(folder / where):
            with open(folder / where, "a") as f:
                f.write(what + "\n")
        elif kind == "json-bytes" and _plain(folder / where):
            (folder / where).write_bytes(what)
        elif kind == "empty" and _plain(folder / where):
            (folder / where).write_text("")
        elif kind == "path" and _plain(suite):
            text = suite.read_text(errors="replace")
            suite.write_text(text.replace(f"{where}: {where}.jsonl", f"{where}: '{what}'"))
            _place(folder, what)
        elif kind == "task-path" and _plain(folder / "task.yaml"):
            task = folder / "task.yaml"
            task.unlink()
            if what in BUILT and what != "../outside.jsonl":
                _place(folder, what)
                if what != "link-loop":
                    (folder / what).rename(task)


def check(folder: Path) -> None:
    from harness.errors import UserError
    from harness.suite.loader import load_suite

    try:
        load_suite(folder)
    except UserError as e:
        assert e.problems, "an error without problems"
        for line, problem in zip(e.lines(), e.problems, strict=True):
            assert "\n" not in line, line
            assert problem.file.startswith(str(folder)), f"not located in the folder: {line}"
    code, err = validate(folder)
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    if code == 2:
        lines = err.strip().splitlines()
        assert lines and all(line.startswith("error: ") for line in lines), err


def validate(folder: Path) -> tuple[int, str]:
    """`tuneval suites validate FOLDER` through the real entry point, in this process."""
    from harness.cli import main

    argv, sys.argv = sys.argv, ["tuneval", "suites", "validate", str(folder)]
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = argv
    return code, err.getvalue()


class OutOfTime(Exception):
    pass


def _expire(*_: object) -> None:
    raise OutOfTime(f"an example took more than {EXAMPLE_SECONDS}s")


def fuzz(
    examples: int, randomize: bool, drawn: Any, prefix: str, body: Callable[[Path, Any], None]
) -> None:
    """`body(folder, value)` for `examples` values of the strategy `drawn`, each in a fresh
    temporary folder, under the address-space limit and the per-example time limit."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGALRM, _expire)

    @settings(
        max_examples=examples, deadline=None, database=None, derandomize=not randomize,
        suppress_health_check=list(HealthCheck), print_blob=True,
    )  # fmt: skip
    @given(drawn)
    def one(value: Any) -> None:
        root = Path(tempfile.mkdtemp(prefix=prefix))
        signal.alarm(EXAMPLE_SECONDS)
        try:
            body(root, value)
        finally:
            signal.alarm(0)
            shutil.rmtree(root, ignore_errors=True)

    one()


def cli(run: Callable[[int, bool], None], examples: int, doc: str | None) -> None:
    """A fuzz module's command line: `run` on --examples examples (default `examples`), then the
    count printed as JSON."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=examples)
    parser.add_argument("--random", action="store_true", help="new examples each run")
    args = parser.parse_args()
    run(args.examples, args.random)
    print(json.dumps({"examples": args.examples, "ok": True}))


def run(examples: int, randomize: bool) -> None:
    def body(root: Path, mutations: list[tuple[str, Any, Any]]) -> None:
        build(root / "suite", mutations)
        check(root / "suite")

    fuzz(examples, randomize, st.lists(mutation, min_size=1, max_size=4), "fuzz-", body)


if __name__ == "__main__":
    cli(run, 200, __doc__)
