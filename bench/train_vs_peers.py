"""Training throughput and memory: a course-style HF Trainer, TRL's SFTTrainer, tuneval's `sft`.

The same work for every row: the first N examples of the suite's train split, chat-formatted by
`harness.training.data.chat_examples` (system, user, assistant), loss on the answer only, one epoch,
starting from the packaged SmolLM2-135M-Instruct. Each row runs in its own subprocess, so peak
memory (RSS of that process) does not mix; rows alternate when there are several rounds.

Rows:
  HF Trainer (course)  the course recipe: Trainer + TrainingArguments defaults, batch 1, fp32,
                       full finetuning, no packing; tokenized with answer-only labels.
  TRL SFTTrainer       SFTConfig defaults (batch 8, bf16 autocast, gradient checkpointing, no
                       packing, full finetuning) on a prompt-completion conversational dataset,
                       so the loss is on the completion only.
  TRL SFTTrainer (float32)
                       the same with bf16=False and gradient_checkpointing=False: TRL's defaults
                       turn on bf16 autocast, which a CPU without bf16 instructions emulates
                       slowly, so this row shows TRL without that penalty.
  tuneval sft          the `sft` trainer with its defaults (LoRA, packed batches of 8, bf16 where
                       the CPU has it), in-process through the trainers registry.
  tuneval sft (full)   the same with method=full, the like-for-like row for the two peers.
  tuneval sft (lora_layers=8)
                       LoRA on the top 8 of 30 layers only, as `make demo` trains: backward
                       stops at the lowest adapted layer.

tokens/s counts the same supervised (answer) tokens for every row: those of `harness.training.data.
tokenize_examples` on these examples, divided by the training loop's time (Trainer.train() for
the peers; the trainer's own loop time from its manifest for tuneval, which leaves out model
loading and the final save, as Trainer.train() does). "process s" is the whole subprocess:
imports, model load, data preparation, training, saving.

The peers come with the bench extra (`pip install -e '.[bench]'`; `make install` includes it).

    .venv/bin/python bench/train_vs_peers.py --quick      # 16 examples, one round
    .venv/bin/python bench/train_vs_peers.py              # full: 64 examples, one round (~30
                                                          # min, 22 of them TRL's bf16 row)
    options: --suite PATH  --n N  --rounds R  --threads T  --only ROW[,ROW]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, run_measured, suite_path, table

MODEL = "smollm2-135m-instruct"
ROWS = {
    "course": "HF Trainer (course)",
    "trl": "TRL SFTTrainer",
    "tuneval": "tuneval sft",
    "tuneval-full": "tuneval sft (full)",
    "tuneval-top8": "tuneval sft (lora_layers=8)",
    "trl-fp32": "TRL SFTTrainer (float32)",
}
# a peer, then tuneval, alternating
ORDER = ["course", "tuneval", "trl", "tuneval-full", "trl-fp32", "tuneval-top8"]


# --- the workers (one per subprocess) -----------------------------------------------------------


def load_work(suite_dir: str, n: int) -> tuple[Any, list[Any], Any]:
    """The suite, its first n train conversations, and the base model (the packaged one)."""
    from harness.generation.models import quiet_transformers, resolve
    from harness.store import Store
    from harness.suite.loader import load_suite
    from harness.training.data import chat_examples

    quiet_transformers()
    suite = load_suite(suite_dir)
    convs = chat_examples(suite, "train")[:n]
    ref = resolve(MODEL, Store(Path(tempfile.mkdtemp()) / "models.db"))
    return suite, convs, ref


def supervised_tokens(ref: Any, convs: list[Any]) -> dict[str, int]:
    from transformers import AutoTokenizer

    from harness.generation.tokenize import tokenize_examples

    tok = AutoTokenizer.from_pretrained(ref.path)
    rows = tokenize_examples(tok, convs, 512)
    return {
        "answer_tokens": sum(sum(1 for t in r["labels"] if t != -100) for r in rows),
        "all_tokens": sum(len(r["input_ids"]) for r in rows),
    }


def worker_course(ref: Any, convs: list[Any], out: Path) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from harness.generation.tokenize import tokenize_examples

    tok = AutoTokenizer.from_pretrained(ref.path)
    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype="float32")
    ds = Dataset.from_list(tokenize_examples(tok, convs, 512))
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=1,
        num_train_epochs=1,
        learning_rate=2e-5,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ds,
        data_collator=DataCollatorForSeq2Seq(tok, padding=True),
    )
    t0 = time.perf_counter()
    result = trainer.train()
    return {"loop_s": time.perf_counter() - t0, "steps": result.global_step, "dtype": "float32"}


def worker_trl(ref: Any, convs: list[Any], out: Path, fp32: bool = False) -> dict[str, Any]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    ds = Dataset.from_list([{"prompt": c[:-1], "completion": c[-1:]} for c in convs])
    args = SFTConfig(
        output_dir=str(out),
        num_train_epochs=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        **({"bf16": False, "gradient_checkpointing": False} if fp32 else {}),
    )
    trainer = SFTTrainer(model=str(ref.path), args=args, train_dataset=ds)
    trained = sum(sum(1 for t in r["labels"] if t != -100) for r in trainer.train_dataset)
    t0 = time.perf_counter()
    result = trainer.train()
    return {
        "loop_s": time.perf_counter() - t0,
        "steps": result.global_step,
        "dtype": "bf16 autocast" if args.bf16 else "float32",
        "trl_completion_tokens": trained,
    }


def worker_tuneval(
    ref: Any, convs: list[Any], out: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    from harness.plugin import BaseModelInfo, Hyperparameters, NullEvents, TrainRequest
    from trainers import registry

    sft = registry.get("sft")
    cfg = sft.Config.model_validate(settings)
    request = TrainRequest(
        base=BaseModelInfo(ref.name, ref.path, ref.fingerprint),
        train=convs,
        validation=[],
        hyperparameters=Hyperparameters(epochs=1),
        config=cfg,
        output_dir=out,
        run_key="bench",
        progress=False,
    )
    t0 = time.perf_counter()
    result = sft.train(request, NullEvents())
    m = result.facts
    return {
        "loop_s": m["train_seconds"],
        "train_call_s": time.perf_counter() - t0,
        "steps": m["steps"],
        "dtype": m["dtype"],
        "tuneval_tokens": m["tokens"],
    }


def worker(name: str, suite_dir: str, n: int, threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    _, convs, ref = load_work(suite_dir, n)
    out = Path(tempfile.mkdtemp(prefix=f"tuneval-bench-{name}-"))
    if name == "course":
        info = worker_course(ref, convs, out)
    elif name in ("trl", "trl-fp32"):
        info = worker_trl(ref, convs, out, fp32=name == "trl-fp32")
    else:
        settings = {"tuneval": {}, "tuneval-full": {"method": "full"}}.get(name, {"lora_layers": 8})
        info = worker_tuneval(ref, convs, out, settings)
    info.update(supervised_tokens(ref, convs), examples=len(convs), threads=torch.get_num_threads())
    print(json.dumps(info))


# --- the driver ---------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--suite", help="suite folder (default suites/python-docs)")
    ap.add_argument("--n", type=int, help="training examples (default 64; 16 with --quick)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (median kept)")
    ap.add_argument("--threads", type=int, help="torch threads in every worker (default: torch's)")
    ap.add_argument("--only", help="comma-separated rows: " + ", ".join(ROWS))
    ap.add_argument("--quick", action="store_true", help="16 examples, one round")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = str(suite_path(args.suite))
    n = args.n or (16 if args.quick else 64)
    if args.worker:
        worker(args.worker, folder, n, args.threads)
        return 0

    names = [x for x in ORDER if not args.only or x in args.only.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {x: [] for x in names}
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # so that the machine line shows the workers' threads
    start_machine = machine()
    for r in range(args.rounds):
        for name in names:
            cmd = [sys.executable, __file__, "--worker", name, "--suite", folder, "--n", str(n)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            print(f"round {r + 1}/{args.rounds}: {ROWS[name]} ...", file=sys.stderr, flush=True)
            m = run_measured(cmd)
            info = json.loads(m["stdout"].strip().splitlines()[-1])
            info.update(process_s=m["wall"], rss_mib=m["rss_mib"])
            runs[name].append(info)
            print(f"  {json.dumps(info)}", file=sys.stderr, flush=True)

    def med(name: str, key: str) -> float:
        return float(statistics.median(i[key] for i in runs[name]))

    first = runs[names[0]][0]
    sup = first["answer_tokens"]
    rows = []
    for name in names:
        i = runs[name][0]
        rows.append(
            [
                ROWS[name],
                i["dtype"],
                i["steps"],
                med(name, "loop_s"),
                sup / med(name, "loop_s"),
                med(name, "process_s"),
                med(name, "rss_mib"),
            ]
        )
    print(f"\nmachine: {start_machine}")
    print(
        f"work: {n} train examples of {Path(folder).name}, {MODEL}, one epoch, answer-only loss; "
        f"{sup} supervised tokens ({first['all_tokens']} in all); {args.rounds} round(s), median"
    )
    print(
        table(
            ["trainer", "dtype", "steps", "loop s", "sup. tok/s", "process s", "peak RSS MiB"],
            rows,
        )
    )
    ratios = []
    for ours in ("tuneval", "tuneval-full", "tuneval-top8"):
        for peer in ("course", "trl", "trl-fp32"):
            if ours in runs and peer in runs:
                ratios.append(
                    [
                        f"{ROWS[ours]} vs {ROWS[peer]}",
                        med(peer, "loop_s") / med(ours, "loop_s"),
                        med(peer, "process_s") / med(ours, "process_s"),
                        med(ours, "rss_mib") / med(peer, "rss_mib"),
                    ]
                )
    if ratios:
        print()
        print(table(["ratio", "tok/s (loop)", "process wall", "peak RSS (ours/peer)"], ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
