"""Model references are typed per kind, decided once by `resolve`; the backend for a reference is
chosen in one place (`harness.generation.dispatch`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UserError
from harness.generation import models
from harness.generation.dispatch import backend_for, backend_kind, engine_ran
from harness.generation.local import HFBackend
from harness.generation.models import MODEL_KINDS, ModelRef
from harness.generation.types import GenSettings
from harness.store import Store
from tests.hub_stub import add_snapshot


def _register(store: Store, name: str, kind: str, path: Path | None, **info: Any) -> None:
    store.register_model(
        {
            "name": name, "spec": name, "path": str(path) if path else None,
            "fingerprint": "fp-" + name, "kind": kind, "base": None, "produced_by": None,
            "info": info, "created_at": time.time(),
        }
    )  # fmt: skip


def _adapter(folder: Path, base: Path) -> Path:
    """An adapter folder as `resolve` sees it (config and weights hashed, never loaded)."""
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (folder / "adapter_model.safetensors").write_bytes(b"not loaded by resolve")
    return folder


def test_resolve_decides_each_kind_once(
    tmp_path: Path, store: Store, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    add_snapshot(tmp_path / "hub", "org/tiny", tiny_model_dir)
    monkeypatch.setattr(models, "materialize_default", lambda: tiny_model_dir)
    _register(store, "cand", "trained", tiny_model_dir)
    _register(store, "remote", "served", None, url="http://127.0.0.1:9/v1", model="m")
    specs = {
        "packaged": models.DEFAULT_MODEL,
        "local": str(tiny_model_dir),
        "adapter": str(_adapter(tmp_path / "lora", tiny_model_dir)),
        "trained": "cand",
        "hub": "org/tiny",
        "served": "remote",
    }
    refs = {kind: models.resolve(spec, store) for kind, spec in specs.items()}
    assert {kind: ref.kind for kind, ref in refs.items()} == {k: k for k in specs}
    assert set(MODEL_KINDS) - set(specs) == {"live"}  # the one kind made in memory, not resolved
    assert [k for k, ref in refs.items() if ref.is_served] == ["served"]
    assert refs["adapter"].base is not None and refs["adapter"].base.kind == "local"
    assert refs["hub"].hub is not None and refs["served"].served == {
        "url": "http://127.0.0.1:9/v1", "model": "m"
    }  # fmt: skip


def test_a_kind_outside_the_list_is_refused(store: Store, tiny_model_dir: Path) -> None:
    """mypy refuses a wrong kind in the code (`ModelKind` is a Literal); a kind read from the
    store is checked at resolve time, in one line."""
    _register(store, "odd", "checkpoint", tiny_model_dir)
    with pytest.raises(UserError, match="model 'odd': the store registers it with an unknown kind"):
        models.resolve("odd", store)
    with pytest.raises(ValueError, match="unknown kind 'servd'"):
        ModelRef("x", "x", Path("."), "servd", "fp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="endpoint info goes with kind 'served' only"):
        ModelRef("x", "x", Path("."), "served", "fp")


def test_one_dispatch_picks_the_backend(
    store: Store, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.generation.served import ServedBackend
    from harness.generation.vllm_engine import VIA_VAR, VllmBackend
    from harness.generation.vllm_inproc import WorkerBackend

    local = models.resolve(str(tiny_model_dir), store)
    served = ModelRef(
        "s", "s", Path("."), "served", "fp", served={"url": "http://x/v1", "model": "m"}
    )
    greedy, vllm = GenSettings(), GenSettings(engine="vllm")
    assert isinstance(backend_for(local, greedy), HFBackend) and backend_kind(local, greedy) == "hf"
    assert (
        isinstance(backend_for(local, vllm), WorkerBackend) and backend_kind(local, vllm) == "vllm"
    )
    monkeypatch.setenv(VIA_VAR, "server")
    assert isinstance(backend_for(local, vllm), VllmBackend)
    monkeypatch.delenv(VIA_VAR)
    assert isinstance(backend_for(served, greedy), ServedBackend)
    assert backend_kind(served, greedy) == "served"
    # the engine each names for the run: the local one's is chosen as it generates
    engines = [engine_ran(backend_for(r, s)) for r, s in ((served, greedy), (local, vllm))]
    assert engines == ["served", "vllm"] and engine_ran(backend_for(local, greedy)) is None
