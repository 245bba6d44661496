"""The in-process vLLM worker: run by the vLLM venv's python (`python -P vllm_worker.py ARGS`),
never imported by tuneval (whose venv cannot import vllm). It builds one `vllm.LLM` on the model
folder and answers requests read from stdin, one JSON object a line, on stdout, one JSON object a
line; vLLM's own logging goes to stderr.

    -> {"ready": true}                                      once the engine is built
    <- {"generate": [{"ids": [...], "max_tokens": N, "temperature": T, "top_p": P,
                      "seed": S|null, "stop": [...]}, ...], "lora": true|false}
    -> {"i": k, "ids": [...], "prompt": n}                  each answer as it finishes
    -> {"done": true}
    <- {"loglik": [{"ids": [...], "n": k}, ...]}             sum of the last k tokens' logprobs
    -> {"lls": [...]}
    -> {"error": "..."}                                      a request vLLM refused

Every request of a batch is added at once and the engine is stepped until none is left, so vLLM
schedules them as one continuous batch, and each answer goes back the moment it is finished (the
caller commits it: a killed run keeps what came back). Prompts come as token ids, rendered and
tokenized by tuneval as for its local engine; answers go back as token ids, decoded by tuneval, so
prompts, detokenization and stop strings are the local engine's own.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _protocol() -> Any:
    """stdout for the protocol alone: vLLM prints to fd 1, so fd 1 becomes stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--lora", help="an adapter folder, served by vLLM's LoRA on the model")
    ap.add_argument("--max-lora-rank", type=int, default=16)
    ap.add_argument("--max-num-seqs", type=int, help="rows decoded together (vLLM's default)")
    args = ap.parse_args(argv)
    out = _protocol()

    def say(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")

    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    kwargs: dict[str, Any] = {"dtype": args.dtype, "seed": 0}
    if args.lora:
        kwargs.update(enable_lora=True, max_lora_rank=args.max_lora_rank)
    if args.max_num_seqs:
        kwargs["max_num_seqs"] = args.max_num_seqs
    llm = LLM(model=args.model, **kwargs)
    lora = LoRARequest("adapter", 1, args.lora) if args.lora else None
    say({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "generate" in request:
                rows = request["generate"]
                params = [
                    SamplingParams(
                        max_tokens=r["max_tokens"],
                        temperature=r["temperature"],
                        top_p=r["top_p"] if r["temperature"] > 0 else 1.0,
                        seed=r["seed"],
                        stop=r["stop"] or None,
                        include_stop_str_in_output=True,  # tuneval cuts it, as it does locally
                    )
                    for r in rows
                ]
                _run(llm, [r["ids"] for r in rows], params, lora, say)
                say({"done": True})
            elif "loglik" in request:
                rows = request["loglik"]
                one = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
                outs = llm.generate(
                    [{"prompt_token_ids": r["ids"]} for r in rows], one,
                    use_tqdm=False, lora_request=lora,
                )  # fmt: skip
                say({"lls": [_tail_logprob(o, r["n"]) for o, r in zip(outs, rows, strict=True)]})
        except (ValueError, TypeError, KeyError) as e:  # vLLM's refusals of a request
            say({"error": f"{type(e).__name__}: {e}"})
    return 0


def _run(llm: Any, prompts: list[list[int]], params: list[Any], lora: Any, say: Any) -> None:
    """All prompts into the engine at once; each answer said the moment it is finished."""
    ids = llm.enqueue(
        [{"prompt_token_ids": p} for p in prompts], params, lora_request=lora, use_tqdm=False
    )
    # enqueue answers the engine's ids ("7-1a2b3c4d"), finished outputs carry the caller's ("7")
    row = {rid.split("-", 1)[0]: i for i, rid in enumerate(ids)}
    engine = llm.llm_engine
    while engine.has_unfinished_requests():
        for output in engine.step():
            if output.finished:
                say({
                    "i": row[output.request_id],
                    "ids": list(output.outputs[0].token_ids),
                    "prompt": len(output.prompt_token_ids or ()),
                })  # fmt: skip


def _tail_logprob(output: Any, n: int) -> float:
    """The summed logprobs of a prompt's last n tokens (each position's own token is always in
    vLLM's prompt logprobs, whatever the number of alternatives asked)."""
    ids, lps = output.prompt_token_ids, output.prompt_logprobs
    return float(sum(lps[j][ids[j]].logprob for j in range(len(ids) - n, len(ids))))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
