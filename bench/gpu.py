"""Generation and training on a GPU, side by side with the peers, in one run.

Random-weight models in the real SmolLM2-135M and SmolLM2-1.7B shapes are built on the machine
with the real SmolLM2 tokenizer (weights cannot travel; throughput does not depend on them).
Every row runs in its own subprocess and prints one JSON line; the table comes last.

Generation — a copy of suites/module-routing with `generation: {max_new_tokens: 128, stop: []}`
(149 prompts), bf16, greedy:
  generate-B   plain `model.generate`, batches of B=32 sorted by length, left padding; the time
               of the generate calls only (the model is already loaded)
  tuneval      `tuneval eval` on a fresh store: cold, model load, grading and SQLite included
  served       `tuneval eval` through `transformers serve` on the same machine (where its
               `serving` extra is installed), cold store
  answers identical: the share of cases whose text equals plain generate's (bf16 numerics
               depend on batch composition, so a share below 100% is expected there); an fp32
               row checks the engine against `model.generate` on 16 prompts, where it must be
               100%

Training — the python-docs training data (1,924 chat examples), full finetuning and LoRA, bf16,
a fixed number of optimizer steps; tokens/s = real (unpadded) tokens processed / training time:
  tuneval      `tuneval train suites/python-docs --trainer sft --set max_steps=N ...`, tokens/s
               from the manifest (the training loop; load and save excluded)
  HF Trainer   Trainer + TrainingArguments(bf16=True, optim=adamw_torch_fused), batch 32 padded
               to the longest, answer-only labels; Trainer.train()'s runtime
  TRL          SFTTrainer with packing (bfd, padding-free), completion-only loss, bf16, no
               gradient checkpointing; Trainer.train()'s runtime

    pip install -e '.[bench]'      # accelerate for HF Trainer's rows (TRL comes with tuneval)
    python bench/gpu.py            # on any CUDA machine; --quick for a shorter run
    python bench/gpu.py --quick --device cpu --tiny   # the same code paths on a CPU (CI-sized)
    options: --only ROW[,ROW]  --out DIR  --tokenizer DIR (a folder with SmolLM2's tokenizer)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHAPES: dict[str, dict[str, Any]] = {
    "135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
             "num_attention_heads": 9, "num_key_value_heads": 3, "rope_theta": 100000.0},
    "1.7b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
             "num_attention_heads": 32, "num_key_value_heads": 32, "rope_theta": 130000.0},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 10000.0},
}  # fmt: skip


# --- setup: models, the eval suite ---------------------------------------------------------------


def find_tokenizer(given: str | None) -> Path:
    """A folder with SmolLM2's tokenizer: given, else the packaged model's folder here."""
    if given:
        return Path(given)
    sys.path.insert(0, str(ROOT))
    from harness.generation.models import materialize_default

    return materialize_default()


def build_model(shape: str, tokenizer: Path, target: Path, device: str) -> None:
    """A random model in this shape, saved as an ordinary bf16 folder with the real tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer)
    config = LlamaConfig(
        vocab_size=49152, max_position_embeddings=8192, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, **SHAPES[shape],
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(target)
    tok.save_pretrained(target)


def eval_suite(work: Path, quick: bool) -> Path:
    """module-routing with long answers: 128 new tokens, no stop strings."""
    src = ROOT / "suites" / "module-routing"
    folder = work / "routing-128"
    shutil.copytree(src, folder)
    text = (folder / "suite.yaml").read_text()
    text = text.replace('generation: {max_new_tokens: 16, stop: ["\\n"]}',
                        "generation: {max_new_tokens: 128, stop: []}")  # fmt: skip
    assert "max_new_tokens: 128" in text, "module-routing's generation line changed"
    (folder / "suite.yaml").write_text(text)
    if quick:
        lines = (folder / "test.jsonl").read_text().splitlines()[:24]
        (folder / "test.jsonl").write_text("\n".join(lines) + "\n")
    return folder


# --- rows (each in its own process) --------------------------------------------------------------


def row_generate(model_dir: str, suite_dir: str, batch: int, dtype: str, n: int | None) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(ROOT))
    from harness.evaluation.runner import conversation, settings_for
    from harness.generation.local import count_tokens, render
    from harness.suite.loader import load_suite

    suite = load_suite(suite_dir)
    cases = suite.cases[:n] if n else suite.cases
    settings = settings_for(suite, dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    model.to(device).eval()
    prompts = [render(tok, conversation(suite, c)) for c in cases]
    order = sorted(range(len(prompts)), key=lambda i: -len(tok(prompts[i])["input_ids"]))
    outputs: dict[str, str] = {}
    tokens = 0
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for k in range(0, len(order), batch):
        rows = order[k : k + batch]
        enc = tok([prompts[i] for i in rows], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(device)  # fmt: skip
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=settings.max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, temperature=None, top_p=None,
                                 top_k=None)  # fmt: skip
        for i, seq in zip(rows, out[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
            n_tok = count_tokens(seq, tok.eos_token_id, tok.pad_token_id)
            tokens += n_tok
            body = seq[: n_tok - 1] if n_tok and seq[n_tok - 1] == tok.eos_token_id else seq[:n_tok]
            outputs[cases[i]["id"]] = tok.decode(body, skip_special_tokens=True).strip()
    sync()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds, "outputs": outputs}


def row_engine(model_dir: str, suite_dir: str, dtype: str, n: int | None) -> dict:
    """tuneval's engine alone, in process, timed like generate-B (model already loaded)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from harness.evaluation.runner import conversation, settings_for
    from harness.generation.local import HFBackend
    from harness.generation.models import ModelRef
    from harness.suite.loader import load_suite

    suite = load_suite(suite_dir)
    cases = suite.cases[:n] if n else suite.cases
    settings = settings_for(suite, dtype)
    ref = ModelRef("bench", model_dir, Path(model_dir), "local", "bench")
    backend = HFBackend(ref, dtype=dtype, progress=False)
    backend._load()
    outputs: dict[str, str] = {}
    tokens = 0

    def keep(rows: list[int], gens: list) -> None:
        nonlocal tokens
        for i, g in zip(rows, gens, strict=True):
            outputs[cases[i]["id"]] = g.output
            tokens += g.n_tokens

    convs = [conversation(suite, c) for c in cases]
    engine = backend.choose_engine(settings)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t0 = time.perf_counter()
    backend.generate(convs, settings, keep)
    sync()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds, "engine": engine,
            "outputs": outputs}  # fmt: skip


def row_tuneval_eval(model_dir: str, suite_dir: str, work: str) -> dict:
    db = Path(work) / f"eval-{time.time_ns()}.db"
    cmd = [sys.executable, "-m", "harness.cli", "eval", suite_dir, "--model", model_dir,
           "--db", str(db), "--json"]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    result = json.loads(res.stdout)
    shown = subprocess.run(
        [sys.executable, "-m", "harness.cli", "runs", "show", result["run_id"], "--db", str(db),
         "--json"], capture_output=True, text=True, env=_env(), check=True,
    )  # fmt: skip
    cases = json.loads(shown.stdout)["cases"]
    sys.path.insert(0, str(ROOT))
    from harness.store import Store

    with Store(db, readonly=True) as store:
        tokens = sum(r["output_tokens"] or 0 for r in store.results(result["run_id"]))
    outputs = {c["id"]: c["output"] for c in cases}
    return {"seconds": wall, "tokens": tokens, "tok_s": tokens / wall,
            "inner_seconds": result["seconds"], "outputs": outputs}  # fmt: skip


def row_tuneval_train(model_dir: str, method: str, steps: int, extra: list[str], work: str) -> dict:
    db = Path(work) / f"train-{time.time_ns()}.db"
    sets = [f"method={method}", f"max_steps={steps}", "save_every=100000", "val_examples=0",
            f"log_every={max(1, steps // 4)}", *extra]  # fmt: skip
    cmd = [sys.executable, "-m", "harness.cli", "train", str(ROOT / "suites" / "python-docs"),
           "--base", model_dir, "--db", str(db), "--json"]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    out = json.loads(res.stdout)
    manifest = json.loads((Path(out["path"]) / "tuneval-manifest.json").read_text())
    return {
        "tok_s": manifest["tokens_per_s"],
        "tokens": manifest["tokens"],
        "seconds": manifest["train_seconds"],
        "process_s": time.perf_counter() - t0,
        "peak_gb": manifest.get("peak_gpu_memory_gb"),
        "compiled": manifest.get("compiled"),
        "token_budget": manifest.get("token_budget"),
        "final_loss": out["final_loss"],
    }


def row_served(model_dir: str, suite_dir: str, work: str) -> dict:
    """`tuneval eval` against `transformers serve` on this machine (a served model's path: HTTP,
    concurrency, the server's own batching), cold store."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "transformers"
    cmd = [str(exe) if exe.exists() else "transformers", "serve", model_dir, "--host",
           "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=_env(), start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("transformers serve did not start") from None
                time.sleep(1)
        db = Path(work) / f"served-{time.time_ns()}.db"
        url = f"http://127.0.0.1:{port}/v1"
        subprocess.run([sys.executable, "-m", "harness.cli", "models", "add", "served", "--url",
                        url, "--model", model_dir, "--no-check", "--db", str(db)],
                       check=True, env=_env(), capture_output=True)  # fmt: skip
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "harness.cli", "eval", suite_dir, "--model",
                              "served", "--db", str(db), "--json"],
                             capture_output=True, text=True, env=_env())  # fmt: skip
        wall = time.perf_counter() - t0
        if res.returncode:
            raise RuntimeError(res.stderr[-2000:])
        sys.path.insert(0, str(ROOT))
        from harness.store import Store

        run_id = json.loads(res.stdout)["run_id"]
        with Store(db, readonly=True) as store:
            rows = store.results(run_id)
        tokens = sum(r["output_tokens"] or 0 for r in rows)
        return {"seconds": wall, "tokens": tokens, "tok_s": tokens / wall,
                "outputs": {r["case_id"]: r["output"] for r in rows}}  # fmt: skip
    finally:
        os.killpg(server.pid, 9)


def _train_data(tok: Any, max_length: int) -> tuple[list[dict], list[list[dict]]]:
    sys.path.insert(0, str(ROOT))
    from harness.generation.tokenize import tokenize_examples
    from harness.suite.loader import load_suite
    from harness.training.data import chat_examples

    convs = chat_examples(load_suite(ROOT / "suites" / "python-docs"), "train")
    return tokenize_examples(tok, convs, max_length), convs


def row_hf_trainer(model_dir: str, steps: int, batch: int) -> dict:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,  # fmt: skip
        TrainingArguments,
    )

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows, _ = _train_data(tok, 512)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=1e-4, bf16=cuda, optim="adamw_torch_fused", logging_steps=10**6,
        report_to="none", save_strategy="no", use_cpu=not cuda, dataloader_drop_last=True,
        disable_tqdm=True, include_num_input_tokens_seen="non_padding",
    )  # fmt: skip
    pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    tokens = 0

    def collator(features: list[dict]) -> Any:
        nonlocal tokens
        batch_out = pad(features)
        tokens += int(batch_out["attention_mask"].sum())  # real tokens, not padding
        return batch_out

    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = trainer.train()
    seconds = result.metrics["train_runtime"]
    seen = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    tokens = seen or tokens  # the Trainer's own count of real tokens trained, where it keeps one
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else None
    return {"tok_s": tokens / seconds, "tokens": tokens, "seconds": seconds, "peak_gb": peak}


def row_trl(model_dir: str, steps: int, batch: int) -> dict:
    import datasets
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    # A dataset's fingerprint pickles the map function; on one machine that pickling failed
    # inside pyarrow types (bench/RESULTS.md). Nothing here needs the datasets cache.
    datasets.disable_caching()

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows, convs = _train_data(tok, 512)
    ds = Dataset.from_list([{"prompt": c[:-1], "completion": c[-1:]} for c in convs])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    cuda = torch.cuda.is_available()
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=1e-4, bf16=cuda, use_cpu=not cuda, max_length=512, packing=True,
        packing_strategy="bfd", gradient_checkpointing=False, optim="adamw_torch_fused",
        logging_steps=10**6, report_to="none", save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tokens = 0
    collate = trainer.data_collator

    def counting(features: list[dict]) -> Any:
        nonlocal tokens
        batch_out = collate(features)
        tokens += int(batch_out["input_ids"].numel())  # padding-free: every position is real
        return batch_out

    trainer.data_collator = counting
    result = trainer.train()
    seconds = result.metrics["train_runtime"]
    counted = result.metrics.get("num_tokens") or trainer.state.log_history[-1].get("num_tokens")
    tokens = int(float(counted)) if counted else tokens  # TRL's own count of trained tokens
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else None
    return {"tok_s": tokens / seconds, "tokens": tokens, "seconds": seconds, "peak_gb": peak}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(path)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


ROW_FUNCTIONS = {
    "generate": row_generate,
    "engine": row_engine,
    "tuneval_eval": row_tuneval_eval,
    "tuneval_train": row_tuneval_train,
    "hf_trainer": row_hf_trainer,
    "trl": row_trl,
    "served": row_served,
}


def run_row(name: str, kind: str, kwargs: dict, timeout: float, log: Path) -> dict:
    """One row in a subprocess: {"row", ..., "ok"} or {"row", "error"}."""
    here = str(Path(__file__).parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); sys.argv = ['gpu']\n"
        "import gpu\n"
        f"out = gpu.ROW_FUNCTIONS[{kind!r}](**json.loads(sys.stdin.read()))\n"
        "print('ROW-RESULT ' + json.dumps(out))\n"
    )
    t0 = time.perf_counter()
    try:
        res = subprocess.run([sys.executable, "-c", code], input=json.dumps(kwargs), text=True,
                             capture_output=True, timeout=timeout, env=_env())  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"row": name, "error": f"timed out after {timeout:.0f}s"}
    with open(log, "a") as f:
        f.write(f"=== {name} ({time.perf_counter() - t0:.1f}s)\n{res.stderr[-4000:]}\n")
    line = next((x for x in res.stdout.splitlines() if x.startswith("ROW-RESULT ")), None)
    if res.returncode or line is None:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return {"row": name, "error": " | ".join(tail)[-600:]}
    return {"row": name, "ok": True, **json.loads(line.removeprefix("ROW-RESULT "))}


def identical(a: dict, b: dict) -> float | None:
    if not a.get("outputs") or not b.get("outputs"):
        return None
    keys = a["outputs"].keys() & b["outputs"].keys()
    return sum(a["outputs"][k] == b["outputs"][k] for k in keys) / max(1, len(keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model in place of both shapes")
    ap.add_argument("--device", default=None, help="cuda (default where present) or cpu")
    ap.add_argument("--only", default="", help="comma-separated row-name prefixes")
    ap.add_argument("--out", default=None, help="folder for results.jsonl and rows.log")
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--budget", type=float, default=540, help="seconds for all rows together")
    args = ap.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out or tempfile.mkdtemp(prefix="tuneval-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tuneval-gpu-work-"))
    tokenizer = find_tokenizer(args.tokenizer)
    shapes = ["tiny"] if args.tiny else ["135m", "1.7b"]
    quick = args.quick
    steps = 6 if args.tiny else (20 if quick else 40)
    suite = eval_suite(work, quick)
    t_start = time.perf_counter()
    models: dict[str, str] = {}
    for shape in shapes:
        target = work / f"smollm2-{shape}-random"
        build_model(shape, tokenizer, target, device)
        models[shape] = str(target)
    print(f"machine: {describe(device)}; models built in {time.perf_counter() - t_start:.0f}s",
          flush=True)  # fmt: skip

    # rows in order of importance: when the time budget runs out, the last ones are skipped
    big, small = shapes[-1], shapes[0]
    m = models[small]
    ev = {"suite_dir": str(suite)}
    plan: list[tuple[str, str, dict]] = [
        (f"eval {small} generate-32", "generate",
         {"model_dir": m, "batch": 32, "dtype": _dtype(device), "n": None, **ev}),
        (f"eval {small} tuneval", "tuneval_eval", {"model_dir": m, "work": str(work), **ev}),
        (f"eval {small} engine", "engine",
         {"model_dir": m, "dtype": _dtype(device), "n": None, **ev}),
    ]  # fmt: skip
    if big != small:
        plan += [
            (f"eval {big} generate-32", "generate",
             {"model_dir": models[big], "batch": 32, "dtype": _dtype(device), "n": None, **ev}),
            (f"eval {big} tuneval", "tuneval_eval",
             {"model_dir": models[big], "work": str(work), **ev}),
        ]  # fmt: skip
    if importlib.util.find_spec("fastapi") is not None:  # transformers serve's extra
        plan.append((f"eval {small} served", "served", {"model_dir": m, "work": str(work), **ev}))
    plan += [
        (f"eval {small} fp32 generate-16", "generate",
         {"model_dir": m, "batch": 16, "dtype": "float32", "n": 16, **ev}),
        (f"eval {small} fp32 engine", "engine",
         {"model_dir": m, "dtype": "float32", "n": 16, **ev}),
        (f"train {small} full tuneval", "tuneval_train",
         {"model_dir": m, "method": "full", "steps": steps, "extra": [], "work": str(work)}),
        (f"train {small} full HF Trainer bs32", "hf_trainer",
         {"model_dir": m, "steps": steps * 4, "batch": 32}),
        (f"train {small} full TRL packing", "trl",
         {"model_dir": m, "steps": steps, "batch": 16}),
        # compile is off by default: the plain row above is the default, this one compiles
        (f"train {small} full tuneval compile=true", "tuneval_train",
         {"model_dir": m, "method": "full", "steps": steps, "extra": ["compile=true"],
          "work": str(work)}),
    ]  # fmt: skip
    if big != small:
        plan += [
            (f"train {big} lora tuneval", "tuneval_train",
             {"model_dir": models[big], "method": "lora", "steps": steps // 2, "extra": [],
              "work": str(work)}),
            (f"train {big} full tuneval", "tuneval_train",
             {"model_dir": models[big], "method": "full", "steps": steps // 2, "extra": [],
              "work": str(work)}),
        ]  # fmt: skip
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    results: list[dict] = []
    for name, kind, kwargs in plan:
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        left = args.budget - (time.perf_counter() - t_start)
        if left < 20:
            results.append({"row": name, "error": "skipped: out of time"})
            continue
        r = run_row(name, kind, kwargs, min(left, 300), out / "rows.log")
        if "error" in r and kind == "tuneval_eval":  # the default engine failed: say so, and
            results.append(r)  # measure the CPU pool there, so the run still shows something
            print(json.dumps(r), flush=True)
            os.environ["TUNEVAL_ENGINE"] = "pool"
            r = run_row(name + " (pool engine)", kind, kwargs, min(left, 300), out / "rows.log")
            os.environ.pop("TUNEVAL_ENGINE")
        results.append(r)
        short = {k: v for k, v in r.items() if k != "outputs"}
        print(json.dumps(short), flush=True)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(short) + "\n")
    report(results, device)


def _dtype(device: str) -> str:
    return "bfloat16" if device == "cuda" else "float32"


def describe(device: str) -> str:
    import torch
    import transformers

    what = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    return f"{what}, torch {torch.__version__}, transformers {transformers.__version__}"


def report(results: list[dict], device: str) -> None:
    by = {r["row"]: r for r in results}
    print(f"\n## GPU benchmark ({describe(device)})\n")
    print("| row | tok/s | seconds | tokens | peak GB | answers = generate | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['row']} | | | | | | {r['error'][:160]} |")
            continue
        same = ""
        if r["row"].startswith("eval") and "generate" not in r["row"]:
            fp32 = " fp32 " in r["row"]
            ref_name = " ".join(r["row"].split()[:2]) + (" fp32 generate-16" if fp32 else
                                                          " generate-32")  # fmt: skip
            share = identical(r, by.get(ref_name, {}))
            same = f"{share:.0%}" if share is not None else ""
        note = ", ".join(f"{k}={r[k]}" for k in ("engine", "compiled", "token_budget") if k in r)
        peak = f"{r['peak_gb']:.1f}" if r.get("peak_gb") else ""
        print(f"| {r['row']} | {r['tok_s']:,.0f} | {r['seconds']:.2f} | {r['tokens']:,} | "
              f"{peak} | {same} | {note} |")  # fmt: skip
    print("\nratios:")
    for a, what in (("tuneval", "tuneval eval (cold, incl. load)"), ("engine", "engine alone")):
        for shape in ("135m", "1.7b", "tiny"):
            x, y = by.get(f"eval {shape} {a}"), by.get(f"eval {shape} generate-32")
            if x and y and x.get("ok") and y.get("ok"):
                print(f"  eval {shape}: {what} {x['tok_s'] / y['tok_s']:.2f}x plain generate"
                      " batch 32")  # fmt: skip
    for shape in ("135m", "tiny"):
        t = by.get(f"train {shape} full tuneval")
        for peer in ("HF Trainer bs32", "TRL packing"):
            p = by.get(f"train {shape} full {peer}")
            if t and p and t.get("ok") and p.get("ok"):
                print(f"  train {shape} full: tuneval {t['tok_s'] / p['tok_s']:.2f}x {peer}")


if __name__ == "__main__":
    main()
