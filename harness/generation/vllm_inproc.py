"""vLLM without HTTP: `harness/generation/vllm_worker.py`, run by the vLLM venv's python, holds one
`vllm.LLM` on the model folder and takes whole batches over a pipe (JSON lines). This is the
`vllm` engine's default way in (`TUNEVAL_VLLM_VIA=server` starts vLLM's OpenAI server instead;
bench/eval_vs_vllm.py measures both, bench/RESULTS.md has the figures and the rule).

tuneval renders and tokenizes each prompt as for its local engine and decodes the answer's token
ids itself, cutting stop strings the same way (`apply_stop`), so only the forward passes are
vLLM's. The worker leads its own process group under the same guard as the server
(`vllm_engine._GUARD`): it dies with tuneval, `kill -9` included. Judges' log-likelihood choices
go through the same worker (`VllmChooser`): the summed prompt logprobs of each choice's tokens.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import UserError
from harness.generation.models import ModelRef
from harness.generation.types import (
    Generation,
    GenSettings,
    Messages,
    OnBatch,
    apply_stop,
    request_seed,
)
from harness.progress import Progress

WORKER = Path(__file__).with_name("vllm_worker.py")


class Worker:
    """The worker process, started and ready; `close` stops its whole process group."""

    def __init__(self, ref: ModelRef, dtype: str, max_num_seqs: int | None = None) -> None:
        from harness.generation import vllm_engine
        from harness.processes import child_dies_with_parent

        folder = ref.base.path if ref.base is not None else ref.path
        cmd = [str(vllm_engine.python()), "-P", str(WORKER), str(folder), "--dtype", dtype]
        if ref.base is not None:
            cmd += ["--lora", str(ref.path), "--max-lora-rank", str(vllm_engine.lora_rank(ref))]
        if max_num_seqs:  # --batch-size: rows vLLM decodes together
            cmd += ["--max-num-seqs", str(max_num_seqs)]
        self.name = ref.name
        self.log = tempfile.TemporaryFile()
        self.lock = threading.Lock()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", vllm_engine._GUARD, *cmd], env=vllm_engine.server_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            start_new_session=True,
            preexec_fn=child_dies_with_parent(os.getpid(), signal.SIGTERM),
        )  # fmt: skip
        try:
            self._read()  # {"ready": true}, or the worker's end
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.perf_counter() - t0

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            from harness.generation.vllm_engine import _tail

            raise UserError(f"--engine vllm: the vLLM worker exited ({self.proc.returncode}): "
                            f"{_tail(self.log)}")  # fmt: skip
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise UserError(f"--engine vllm: model '{self.name}': vLLM refused: {msg['error']}")
        return msg

    def _send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def generate(self, rows: list[dict[str, Any]]) -> Any:
        """Yield (row, answer ids, prompt tokens) as vLLM finishes each row."""
        with self.lock:
            self._send({"generate": rows})
            while "done" not in (msg := self._read()):
                yield msg["i"], msg["ids"], msg["prompt"]

    def loglikelihoods(self, seqs: list[list[int]], n_cont: list[int]) -> list[float]:
        with self.lock:
            self._send({"loglik": [{"ids": s, "n": n} for s, n in zip(seqs, n_cont, strict=True)]})
            return [float(x) for x in self._read()["lls"]]

    def close(self) -> None:
        from harness.processes import stop_group

        stop_group(self.proc, 15.0)  # type: ignore[arg-type]
        self.log.close()


@dataclass
class WorkerStats:
    """What the run stores of the engine: how long vLLM took to be ready, and its batches."""

    start_seconds: float = 0.0
    batches: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "via": "worker",
            "batches": self.batches,
            "start_seconds": round(self.start_seconds, 1),
        }


@dataclass
class WorkerBackend:
    """A Backend: each `generate` starts the worker on the model, gives it every conversation as
    one batch, hands back each answer as it finishes, and stops the worker."""

    ref: ModelRef
    dtype: str
    max_num_seqs: int | None = None
    progress: bool = True
    stats: WorkerStats = field(default_factory=WorkerStats)
    engine_ran: ClassVar[str] = "vllm"  # see harness.generation.dispatch

    def generate(
        self,
        conversations: Sequence[Messages],
        settings: GenSettings,
        on_batch: OnBatch,
        *,
        seeds: Sequence[int] | None = None,
    ) -> None:
        from harness.generation.local import render
        from harness.generation.models import load_tokenizer

        tok = load_tokenizer(self.ref)
        prompts = tok([render(tok, m) for m in conversations], add_special_tokens=False)
        rows = [
            {
                "ids": ids, "max_tokens": settings.max_new_tokens,
                "temperature": settings.temperature, "top_p": settings.top_p,
                "seed": request_seed(settings.seed if seeds is None else seeds[i], conv)
                if settings.temperature > 0 else None,
                "stop": list(settings.stop),
            }
            for i, (ids, conv) in enumerate(zip(prompts["input_ids"], conversations, strict=True))
        ]  # fmt: skip
        if self.progress:
            sys.stderr.write("starting vLLM (a first start compiles for minutes)\n")
        worker = Worker(self.ref, self.dtype, self.max_num_seqs)
        self.stats.start_seconds, self.stats.batches = worker.start_seconds, 1
        try:
            self._collect(worker, tok, rows, settings, on_batch)
        finally:
            worker.close()

    def _collect(
        self, worker: Worker, tok: Any, rows: list[dict[str, Any]], settings: GenSettings,
        on_batch: OnBatch,
    ) -> None:  # fmt: skip
        prev = last = time.perf_counter()
        done: list[tuple[int, Generation]] = []
        with Progress("generating (vllm)", len(rows), enabled=self.progress) as bar:
            for k, (i, ids, n_prompt) in enumerate(worker.generate(rows), 1):
                text = tok.decode(ids, skip_special_tokens=True)
                # the time since the answer before it: the answers' seconds sum to the batch's
                # time, as the local engine's shares of a batch do
                now = time.perf_counter()
                gen = Generation(apply_stop(text, settings.stop).strip(), len(ids), now - prev,
                                 n_prompt)  # fmt: skip
                done.append((i, gen))
                prev = now
                if now - last >= 0.5 or k == len(rows):
                    idx, gens = zip(*done, strict=True)
                    on_batch(list(idx), list(gens))  # committed as they arrive
                    bar.advance(len(done))
                    done, last = [], now


# --- judges: log-likelihood choices through the worker's prompt logprobs --------------------

_WORKERS: dict[tuple[str, str], Worker] = {}
_WORKERS_LOCK = threading.Lock()


def shared_worker(ref: ModelRef, dtype: str) -> Worker:
    """One worker per judge model and dtype for the whole process, stopped when it exits."""
    with _WORKERS_LOCK:
        key = (ref.fingerprint, dtype)
        if key not in _WORKERS:
            if not _WORKERS:
                atexit.register(_close_all)
            _WORKERS[key] = Worker(ref, dtype)
        return _WORKERS[key]


def _close_all() -> None:
    with _WORKERS_LOCK:
        for w in _WORKERS.values():
            w.close()
        _WORKERS.clear()
