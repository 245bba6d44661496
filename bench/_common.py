"""Shared pieces of the peer benchmarks: the machine line, the suite fallback, tables, peak RSS.

Imported by the scripts next to it (`bench/` is on sys.path when a script runs as a file).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUITE = ROOT / "suites" / "python-docs"

# Used when no shipped suite is there: the same shape as python-docs, a handful of questions.
FALLBACK_QUESTIONS = [
    ("textwrap.dedent", "dedent", "What does textwrap.dedent do?"),
    ("os.path.join", "join", "What does os.path.join do?"),
    ("json.dumps", "dumps", "Briefly describe json.dumps."),
    ("itertools.chain", "chain", "What is itertools.chain for?"),
    ("functools.lru_cache", "lru_cache", "What does functools.lru_cache do?"),
    ("collections.Counter", "Counter", "Briefly describe collections.Counter."),
    ("shutil.rmtree", "rmtree", "What does shutil.rmtree do?"),
    ("re.sub", "sub", "What does re.sub do?"),
    ("math.isclose", "isclose", "What is math.isclose for?"),
    ("pathlib.Path.glob", "glob", "What does pathlib.Path.glob do?"),
    ("str.partition", "partition", "What does str.partition do?"),
    ("heapq.heappush", "heappush", "What does heapq.heappush do?"),
    ("bisect.bisect_left", "bisect_left", "What does bisect.bisect_left do?"),
    ("subprocess.run", "run", "Briefly describe subprocess.run."),
    ("time.perf_counter", "perf_counter", "What is time.perf_counter for?"),
    ("random.shuffle", "shuffle", "What does random.shuffle do?"),
]

FALLBACK_YAML = """\
name: bench-fallback
version: 1
description: Built-in questions for the benchmarks when suites/python-docs is absent.
prompt:
  system: You are a concise Python documentation assistant. Answer in one sentence.
  user: "{question}"
  assistant: "{answer}"
generation: {max_new_tokens: 64, stop: ["\\n\\n"]}
data: {test: test.jsonl, train: train.jsonl}
rubric:
  bad:
    - {id: empty, type: empty}
  good:
    - {id: names-function, type: contains, value: "{name}"}
"""


def suite_path(requested: str | None) -> Path:
    """The requested suite, else suites/python-docs, else a temporary built-in one."""
    if requested:
        return Path(requested)
    if (DEFAULT_SUITE / "suite.yaml").is_file():
        return DEFAULT_SUITE
    folder = Path(tempfile.mkdtemp(prefix="tuneval-bench-suite-"))
    (folder / "suite.yaml").write_text(FALLBACK_YAML)
    rows = [
        {"id": f, "name": n, "question": q, "answer": f"{f}: see the Python documentation."}
        for f, n, q in FALLBACK_QUESTIONS
    ]
    for split in ("test", "train"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"note: {DEFAULT_SUITE} is absent; using {len(rows)} built-in questions", file=sys.stderr)
    return folder


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (
        f"{os.cpu_count()}-core CPU ({model}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pastes into RESULTS.md as it is)."""
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join([line, sep, *body])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if value < 10 else f"{value:.1f}"
    return str(value)


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command; its wall time and peak RSS (the child's own high-water mark, in MiB).

    One child per call: `ru_maxrss` of RUSAGE_CHILDREN is the largest of all waited-for children,
    so each measurement goes through a fresh `python -c` wrapper that reports only its own child.
    """
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "sys.stderr.write('\\n@@MEASURED ' + json.dumps({'rc': p.returncode, 'wall': wall,"
        " 'rss_mib': rss}) + '\\n')\n"
        "sys.stdout.write(p.stdout)\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    marker = [ln for ln in proc.stderr.splitlines() if ln.startswith("@@MEASURED ")]
    if not marker:
        raise RuntimeError(f"{' '.join(cmd)} did not finish:\n{proc.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(marker[-1].removeprefix("@@MEASURED "))
    if measured["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {measured['rc']}:\n{proc.stderr[-3000:]}")
    measured["stdout"] = proc.stdout
    measured["stderr"] = proc.stderr
    measured["outer_wall"] = time.perf_counter() - t0
    return measured


def peak_rss_mib() -> float:
    """This process's own peak RSS so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
