"""Wall time and peak memory of the `make demo` loop, stage by stage.

Two measurements on fresh stores (a cold generation cache; the packaged model already unpacked):

  loop        `tuneval loop <demo args> --json` as one process: its wall time and peak RSS, and the
              stages' times from what the loop recorded (each eval run's timings in the store, the
              trainer's loop time in its manifest; the rest of training is model loading and
              saving, the rest of the whole is start-up and the comparison).
  by stage    the same four stages as separate commands on one store, each in its own process:
              `tuneval eval` (base), `tuneval train`, `tuneval eval <candidate>`, `tuneval compare`,
              so each stage has its own peak RSS.

The demo arguments are read from the Makefile's `demo` target (its `tuneval loop` line); without
one, `suites/python-docs` with the loop's defaults.

    .venv/bin/python bench/loop.py --quick      # demo args + --limit 8 --set max_steps=4
    .venv/bin/python bench/loop.py              # full: exactly the demo's loop
    options: --threads T (OMP_NUM_THREADS for the commands)  --skip-loop  --skip-stages
             --extra "ARGS" (appended to the demo args)
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, machine, run_measured, table

TUNEVAL = str(Path(sys.executable).with_name("tuneval"))
QUICK = ["--limit", "8", "--set", "max_steps=4"]


def demo_args() -> list[str]:
    """The arguments of `tuneval loop` in the Makefile's demo recipe."""
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n?)+)", text, re.M)
    if recipe:
        for line in recipe.group(1).splitlines():
            m = re.search(r"\$\(TUNEVAL\)\s+loop\s+(.*)", line)
            if m:
                return shlex.split(m.group(1).split("#")[0])
    return ["suites/python-docs"]


def split_args(args: list[str]) -> tuple[str, list[str], list[str]]:
    """(suite, eval options, train options) from loop arguments."""
    suite, evals, trains = args[0], [], []
    i = 1
    while i < len(args):
        key = args[i]
        value = args[i + 1] if i + 1 < len(args) else ""
        if key in ("--limit", "--batch-size"):
            evals += [key, value]
        elif key in ("--set", "-s", "--trainer", "-t", "--eval-checkpoints"):
            trains += [key, value]
        elif key in ("--base", "-b"):
            evals += ["--model", value]
            trains += [key, value]
        i += 2
    return suite, evals, trains


def run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    print("  $ " + shlex.join(cmd), file=sys.stderr, flush=True)
    m = run_measured(cmd, env)
    m["json"] = json.loads(m["stdout"]) if m["stdout"].strip().startswith("{") else None
    return m


def whole_loop(args: list[str], env: dict[str, str]) -> list[list[Any]]:
    db = Path(tempfile.mkdtemp(prefix="tuneval-bench-loop-")) / "tuneval.db"
    m = run([TUNEVAL, "loop", *args, "--db", str(db), "--json"], env)
    out = m["json"]
    from harness.store import Store

    with Store(db) as store:
        base = store.run(out["base_run"]) or {}
        cand = store.run(out["candidate_run"]) or {}
    eval_a = float((base.get("timings") or {}).get("seconds", 0.0))
    eval_b = float((cand.get("timings") or {}).get("seconds", 0.0))
    train_loop = float(out["train"].get("train_seconds") or 0.0)
    rows = [
        ["loop: base eval", eval_a, "", f"{base.get('n_cases')} cases"],
        ["loop: train (trainer's loop)", train_loop, "", f"{out['train'].get('steps')} steps"],
        [
            "loop: load, start-up, save, compare",
            m["wall"] - eval_a - eval_b - train_loop,
            "",
            "the rest",
        ],
        ["loop: candidate eval", eval_b, "", f"verdict {out['verdict']}"],
        ["loop: whole command", m["wall"], m["rss_mib"], shlex.join(["tuneval", "loop", *args])],
    ]
    return rows


def by_stage(args: list[str], env: dict[str, str]) -> list[list[Any]]:
    suite, evals, trains = split_args(args)
    db = str(Path(tempfile.mkdtemp(prefix="tuneval-bench-stages-")) / "tuneval.db")
    rows = []
    a = run([TUNEVAL, "eval", suite, *evals, "--db", db, "--json"], env)
    rows.append(["stage: base eval", a["wall"], a["rss_mib"], "tuneval eval"])
    t = run([TUNEVAL, "train", suite, *trains, "--db", db, "--json"], env)
    model = t["json"]["model"]
    rows.append(["stage: train", t["wall"], t["rss_mib"], f"tuneval train ({model})"])
    i = evals.index("--model") if "--model" in evals else len(evals)
    cand_evals = evals[:i] + evals[i + 2 :] + ["--model", model]
    b = run([TUNEVAL, "eval", suite, *cand_evals, "--db", db, "--json"], env)
    rows.append(["stage: candidate eval", b["wall"], b["rss_mib"], "tuneval eval --model"])
    c = run([TUNEVAL, "compare", a["json"]["run_id"], b["json"]["run_id"], "--db", db], env)
    rows.append(["stage: compare", c["wall"], c["rss_mib"], "tuneval compare"])
    total = sum(r[1] for r in rows)
    rows.append(["stages: sum", total, max(r[2] for r in rows), "four processes"])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="append " + " ".join(QUICK))
    ap.add_argument("--extra", default="", help="more loop arguments")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the tuneval commands")
    ap.add_argument("--skip-loop", action="store_true")
    ap.add_argument("--skip-stages", action="store_true")
    args = ap.parse_args()

    loop_args = demo_args() + (QUICK if args.quick else []) + shlex.split(args.extra)
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # so that the machine line shows the commands' threads
    start = machine()
    rows: list[list[Any]] = []
    if not args.skip_loop:
        rows += whole_loop(loop_args, env)
    if not args.skip_stages:
        rows += by_stage(loop_args, env)
    print(f"\nmachine: {start}")
    threads = f"  (OMP_NUM_THREADS={args.threads})" if args.threads else ""
    print("loop: tuneval loop " + shlex.join(loop_args) + threads)
    print(table(["stage", "wall s", "peak RSS MiB", "what"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
