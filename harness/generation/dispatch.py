"""The one place a backend is chosen, from the model reference and the generation settings:

- a served model (`ModelRef.is_served`) is answered by its endpoint (`harness.generation.served`);
- `settings.engine == "vllm"` starts vLLM on the model (`harness.generation.vllm_engine`);
- anything else runs locally (`harness.generation.local.HFBackend`), which picks its engine
  (pool, static or hf) once the model is loaded.

Each backend names the engine that answered its last `generate` (`engine_ran`): the run records
it, so `tuneval runs show` and the report say which engine made a run's answers and timings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from harness.generation.models import ModelRef
    from harness.generation.types import Backend, GenSettings

# "hf" is the local transformers backend, whose engine (pool, static, hf) the run notes apart
BackendKind = Literal["served", "vllm", "hf"]
CACHE = "cache"  # what a run records when every answer came from the generation cache


def backend_kind(ref: ModelRef, settings: GenSettings) -> BackendKind:
    """Which backend answers for `ref` under `settings`, as a run records it ("backend")."""
    if ref.is_served:
        return "served"
    from harness.generation.vllm_engine import ENGINE

    return "vllm" if settings.engine == ENGINE else "hf"


def backend_for(
    ref: ModelRef, settings: GenSettings, *, batch_size: int | None = None, progress: bool = True
) -> Backend:
    """The backend that answers for `ref` under `settings`. Builds it only: nothing is loaded,
    started or asked until its first `generate` (or `check_ready`)."""
    kind = backend_kind(ref, settings)
    if kind == "served":
        from harness.generation.served import ServedBackend

        return ServedBackend.from_ref(ref, concurrency=batch_size, progress=progress)
    if kind == "vllm":
        from harness.generation import vllm_engine

        # the in-process worker, or vLLM's server with TUNEVAL_VLLM_VIA=server
        return vllm_engine.backend(ref, settings.dtype, batch_size, progress)
    from harness.generation.local import HFBackend

    return HFBackend(ref, batch_size=batch_size, dtype=settings.dtype, progress=progress)


def check_ready(backend: Backend, needed: Callable[[], bool] = lambda: True) -> None:
    """Fail in one line before a run is recorded when the backend cannot answer and `needed()`
    says some answer is not cached: a served endpoint is asked once (exit 2 naming its URL).
    The local engines fail on loading, vLLM in `vllm_engine.check`."""
    from harness.generation.served import ServedBackend

    if isinstance(backend, ServedBackend) and needed():
        backend.check()


def engine_ran(backend: Backend) -> str | None:
    """The engine that answered the backend's last `generate` (pool, static, hf, served, vllm),
    None for a backend that does not say (a test's fake, a caller's own)."""
    name = getattr(backend, "engine_ran", None)
    return name if isinstance(name, str) and name else None
