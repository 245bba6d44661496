"""tuneval's local engine versus `tuneval eval --engine vllm`, both ways in: the in-process
worker (`harness/generation/vllm_worker.py`, whole batches over a pipe, the default) and vLLM's
OpenAI server (`TUNEVAL_VLLM_VIA=server`), and the worker with `VLLM_CPU_NUM_OF_RESERVED_CPU=1`,
vLLM's own default (tuneval sets 0: vLLM keeps one core for its scheduler unless told).

The same command on every row, each on a fresh store (nothing cached): `tuneval eval SUITE
--limit N --json` on the packaged model, grading included, in the same dtype (TUNEVAL_DTYPE,
default what tuneval picks on this machine). The local row's wall time includes loading the model;
a vllm row's includes starting vLLM, shown apart ("start"), and the time without it. tok/s is the
answers' tokens over the wall time without the start. "identical" is the share of cases whose
answers equal the local engine's; "load" the load average when the row finished. Needs `make vllm`.

    .venv/bin/python bench/eval_vs_vllm.py --n 16
    .venv/bin/python bench/eval_vs_vllm.py            # all 177 python-docs test cases
    options: --suite PATH  --n N  --dtype float32|bfloat16  --rows local,worker,worker-r1,server
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, suite_path

TUNEVAL = str(Path(sys.executable).parent / "tuneval")
ROWS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "local": (("--engine", "local"), {}),
    "worker": (("--engine", "vllm"), {"TUNEVAL_VLLM_VIA": "worker"}),
    "worker-r1": (
        ("--engine", "vllm"),
        {"TUNEVAL_VLLM_VIA": "worker", "VLLM_CPU_NUM_OF_RESERVED_CPU": "1"},
    ),
    "server": (("--engine", "vllm"), {"TUNEVAL_VLLM_VIA": "server"}),
}


def run(suite: Path, n: int | None, db: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    args = [TUNEVAL, "eval", str(suite), "--json", *extra]
    if n:
        args += ["--limit", str(n)]
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env={**env, "TUNEVAL_DB": str(db)})
    wall = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"{' '.join(args[1:])}: exit {done.returncode}: {done.stderr.strip()[-600:]}")
    result = json.loads(done.stdout)
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT case_id, output, output_tokens FROM results WHERE run_id = ?",
            (result["run_id"],),
        ).fetchall()
    result["outputs"] = {case: out for case, out, _ in rows}
    result["tokens"] = sum(t or 0 for _, _, t in rows)
    result["wall"] = wall
    result["start"] = float((result.get("served") or {}).get("start_seconds", 0.0))
    result["load"] = os.getloadavg()[0]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--suite", help="suite folder (default suites/python-docs)")
    ap.add_argument("--n", type=int, help="test cases (default: all)")
    ap.add_argument("--dtype", help="TUNEVAL_DTYPE for all (default: tuneval's choice)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"of {', '.join(ROWS)}")
    args = ap.parse_args()
    names = ["local", *(r for r in args.rows.split(",") if r != "local")]
    if unknown := [r for r in names if r not in ROWS]:
        sys.exit(f"--rows: unknown {', '.join(unknown)} (expected some of {', '.join(ROWS)})")
    suite = suite_path(args.suite)
    env = dict(os.environ)
    if args.dtype:
        env["TUNEVAL_DTYPE"] = args.dtype
    work = Path(tempfile.mkdtemp(prefix="tuneval-bench-vllm-"))
    print(machine(), flush=True)
    results = {}
    for name in names:
        flags, more = ROWS[name]
        results[name] = run(suite, args.n, work / f"{name}.db", {**env, **more}, *flags)
    local = results["local"]
    n = len(local["outputs"])
    print(f"suite {suite.name}, {n} cases, dtype {env.get('TUNEVAL_DTYPE', 'tuneval default')}")
    print("| row | wall s | start s | without start s | tok/s | grades bad/good/better "
          "| identical to local | load |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        g, gen = r["grades"], r["wall"] - r["start"]
        same = sum(1 for k, o in local["outputs"].items() if r["outputs"].get(k) == o)
        print(f"| {name} | {r['wall']:.1f} | {r['start']:.1f} | {gen:.1f} | "
              f"{r['tokens'] / max(gen, 1e-9):.0f} | {g['bad']}/{g['good']}/{g['better']} | "
              f"{same}/{n} | {r['load']:.1f} |")  # fmt: skip
    for name, r in results.items():
        if name != "local":
            print(f"ratio local/{name}: {local['wall'] / r['wall']:.2f}x with the start, "
                  f"{local['wall'] / max(1e-9, r['wall'] - r['start']):.2f}x without")  # fmt: skip
    if "worker" in results and "server" in results:
        w, s = results["worker"], results["server"]
        print(f"ratio server/worker without the start: "
              f"{(s['wall'] - s['start']) / max(1e-9, w['wall'] - w['start']):.2f}x")  # fmt: skip
    if "worker" in results and "worker-r1" in results:
        w, r1 = results["worker"], results["worker-r1"]
        print(f"ratio worker-r1/worker without the start: "
              f"{(r1['wall'] - r1['start']) / max(1e-9, w['wall'] - w['start']):.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
