"""Preference training from the rubric on python-docs, against the base and the demo's sft model.

One fresh store, the packaged model, each stage a `tuneval` command of its own (timed):

  sft        `tuneval train` with the `make demo` settings (the demo's candidate)
  pairs      `tuneval data pairs`: K sampled answers to the first N train prompts, graded by the
             rubric, best vs worst (test prompts and near ones dropped)
  dpo        `tuneval train --trainer dpo --set pairs=<that file>` for S steps
  evals      base, sft and dpo candidates on the whole test split
  compare    dpo vs base, dpo vs sft, sft vs base

Printed last: the stages' seconds, what the pairs kept and dropped, each verdict with pass and
better rates, and the share of answers each flagging criterion (too-long, repetitive, misspelled)
failed, per model.

    .venv/bin/python bench/dpo_round.py --quick    # 8 prompts, 2 steps, 16 test cases: a smoke run
    .venv/bin/python bench/dpo_round.py            # 200 train prompts x 4 samples, 60 DPO steps
    options: --prompts N  --samples K  --steps S  --limit N (test cases)  --keep DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, machine, run_measured, table

SUITE = str(ROOT / "suites" / "python-docs")
TUNEVAL = [sys.executable, "-m", "harness.cli"]
DEMO_SETS = ["max_steps=30", "batch_size=4", "lora_layers=8"]  # the Makefile's demo
FLAGS = ("too-long", "repetitive", "misspelled")


def tuneval(db: Path, *args: str) -> tuple[dict[str, Any], float]:
    measured = run_measured([*TUNEVAL, *args, "--db", str(db), "--json"])
    return json.loads(measured["stdout"]), measured["wall"]


def sets(values: list[str]) -> list[str]:
    return [a for v in values for a in ("--set", v)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--limit", type=int, default=None, help="test cases (default: all)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the store and pairs here")
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.steps, args.limit = 8, 2, args.limit or 16
    print(machine())
    work = args.keep or Path(tempfile.mkdtemp(prefix="tuneval-dpo-"))
    work.mkdir(parents=True, exist_ok=True)
    db, pairs_file = work / "tuneval.db", work / "pairs.jsonl"
    limit = ["--limit", str(args.limit)] if args.limit else []
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()

    sft_steps = ["max_steps=2", "batch_size=4", "lora_layers=8"] if args.quick else DEMO_SETS
    sft, seconds["train sft (demo settings)"] = tuneval(db, "train", SUITE, *sets(sft_steps))
    pairs, seconds["pairs"] = tuneval(
        db, "data", "pairs", SUITE, "--out", str(pairs_file), "--samples", str(args.samples),
        "--limit", str(args.prompts),
    )  # fmt: skip
    dpo, seconds["train dpo"] = tuneval(
        db, "train", SUITE, "--trainer", "dpo",
        *sets([f"pairs={pairs_file}", f"max_steps={args.steps}", "batch_size=4"]),
    )  # fmt: skip
    models = {"base": "smollm2-135m-instruct", "sft": sft["model"], "dpo": dpo["model"]}
    runs: dict[str, dict[str, Any]] = {}
    for arm, model in models.items():
        runs[arm], seconds[f"eval {arm}"] = tuneval(db, "eval", SUITE, "--model", model, *limit)
    verdicts = {}
    for a, b in (("base", "dpo"), ("sft", "dpo"), ("base", "sft")):
        verdicts[f"{b} vs {a}"], seconds[f"compare {b} vs {a}"] = tuneval(
            db, "compare", runs[a]["run_id"], runs[b]["run_id"]
        )

    print(f"\nstore and pairs: {work}")
    print(f"\npairs: {json.dumps({k: v for k, v in pairs.items() if k != 'rows'}, default=str)}")
    print("\n" + table(["stage", "seconds"], list(seconds.items())))
    rows = []
    for name, c in verdicts.items():
        p, bt = c["pass_rate"], c["better_rate"]
        rows.append([
            name, c["verdict"], c["n"], f"{p['a']:.1%} -> {p['b']:.1%}",
            f"{p['delta'] * 100:+.1f} [{p['low'] * 100:+.1f}, {p['high'] * 100:+.1f}]",
            f"{bt['a']:.1%} -> {bt['b']:.1%}",
            f"{c['counts']['improved']}/{c['counts']['regressed']}",
        ])  # fmt: skip
    print("\n" + table(
        ["comparison", "verdict", "n", "pass rate", "delta, points [95%]", "better rate",
         "improved/regressed"], rows,
    ))  # fmt: skip
    flagged = []
    first = verdicts["dpo vs base"]["criteria"]
    second = verdicts["dpo vs sft"]["criteria"]
    for cid in FLAGS:
        if cid in first:
            flagged.append([
                cid, f"{1 - first[cid]['a']:.1%}", f"{1 - second[cid]['a']:.1%}",
                f"{1 - first[cid]['b']:.1%}",
            ])  # fmt: skip
    print("\nanswers flagged (criterion failed):")
    print(table(["criterion", "base", "sft", "dpo"], flagged))
    print(f"\n({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
