"""Judges: a model given a prompt that answers by choosing one of a few fixed answers.

A judge is any model spec: the packaged model, a local folder or adapter, a trained candidate, or
a served endpoint. It never writes free text for us to interpret where we can avoid it:

- a local model scores every allowed answer by its log-likelihood as the continuation of the
  rendered prompt (chat template and assistant header), so the verdict is a distribution over
  the choices, read from one batched forward pass per few prompts;
- a served model is asked for `logprobs`/`top_logprobs`; the first answer token's alternatives
  give the distribution when the server returns them. Otherwise its answer must be exactly one
  of the choices (case, quotes and trailing punctuation aside); anything else is a failed verdict
  that says what the judge answered.

Verdicts are cached in the store's generation cache, keyed by the judge's fingerprint, the prompt,
the choices and the dtype, and saved per chunk: asking again costs nothing, and a killed run
resumes where it stopped.

The judges a suite's rubric names are part of a run's identity (`judge_fingerprints`): a judge
name pointed at another model, or a judge folder that changed, makes another run, and `compare`
warns when two runs were graded by different judges.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.errors import UserError
from harness.generation.models import ModelRef
from harness.generation.types import Messages
from harness.progress import Progress

CHUNK = 32  # prompts judged (and committed to the cache) together
_VERSION = "judge-1"  # part of every cache key: bump when scoring changes


@dataclass(frozen=True)
class Verdict:
    """A judge's answer: a probability per choice, or why there is none."""

    probs: dict[str, float] | None
    answer: str = ""  # what a served judge wrote, when it wrote text
    error: str = ""

    @property
    def choice(self) -> str | None:
        if not self.probs:
            return None
        return max(self.probs, key=lambda c: self.probs[c] if self.probs else 0.0)

    def to_json(self) -> dict[str, Any]:
        return {"probs": self.probs, "answer": self.answer, "error": self.error}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Verdict:
        return cls(d.get("probs"), d.get("answer", ""), d.get("error", ""))


def normalized(logprobs: dict[str, float]) -> dict[str, float]:
    """Probabilities over the choices from their (unnormalized) log-probabilities."""
    top = max(logprobs.values())
    weights = {c: math.exp(lp - top) for c, lp in logprobs.items()}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


class Chooser(Protocol):
    """Anything that turns judge prompts into verdicts over the same choices."""

    def choose(self, prompts: Sequence[Messages], choices: Sequence[str]) -> list[Verdict]: ...


# --- local models: log-likelihood of each choice ---------------------------------------------


@dataclass
class LocalChooser:
    ref: ModelRef
    dtype: str | None = None
    batch_size: int = 16  # (prompt, choice) sequences per forward pass
    _model: Any = field(default=None, repr=False)
    _tok: Any = field(default=None, repr=False)

    def _load(self) -> None:
        if self._model is None:
            from harness.generation.models import load

            self._model, self._tok = load(self.ref, self.dtype)

    def choose(self, prompts: Sequence[Messages], choices: Sequence[str]) -> list[Verdict]:
        from harness.generation.local import render

        self._load()
        tok = self._tok
        contexts = tok([render(tok, m) for m in prompts], add_special_tokens=False)["input_ids"]
        conts = tok(list(choices), add_special_tokens=False)["input_ids"]
        jobs = [(i, k) for i in range(len(prompts)) for k in range(len(choices))]
        jobs.sort(key=lambda j: -len(contexts[j[0]]))  # similar lengths share a batch
        scores: dict[tuple[int, int], float] = {}
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            lls = self.loglikelihoods([contexts[i] for i, _ in batch], [conts[k] for _, k in batch])
            scores.update(zip(batch, lls, strict=True))
        return [
            Verdict(normalized({c: scores[i, k] for k, c in enumerate(choices)}))
            for i in range(len(prompts))
        ]

    def loglikelihoods(self, contexts: list[list[int]], conts: list[list[int]]) -> list[float]:
        """log P(continuation | context) for each pair, in one left-padded forward pass; only
        the last positions' logits are computed (a full vocabulary row per token is large)."""
        import torch

        self._load()
        model, tok = self._model, self._tok
        seqs = [c + x for c, x in zip(contexts, conts, strict=True)]
        width = max(len(s) for s in seqs)
        keep = max(len(x) for x in conts) + 1
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            ids[row, width - len(s) :] = torch.tensor(s)
            mask[row, width - len(s) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        with torch.inference_mode():
            try:
                logits = model(**inputs, logits_to_keep=keep).logits
            except TypeError:  # models without logits_to_keep
                logits = model(**inputs).logits[:, -keep:]
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # predicts the last keep-1 ids
        out = []
        for row, x in enumerate(conts):
            target = ids[row, width - len(x) :].to(logp.device)
            picked = logp[row, logp.shape[1] - len(x) :].gather(-1, target.unsqueeze(-1))
            out.append(float(picked.sum()))
        return out


# --- served models: logprobs when the API gives them, else a strict parse -------------------


@dataclass
class VllmChooser:
    """A Chooser whose log-likelihoods are vLLM's prompt logprobs: the same
    tokenization and scoring as LocalChooser, only the forward pass is vLLM's."""

    ref: ModelRef
    dtype: str
    _local: Any = field(default=None, repr=False)

    def choose(self, prompts: Sequence[Messages], choices: Sequence[str]) -> list[Any]:
        from harness.generation.models import load_tokenizer

        if self._local is None:
            self._local = LocalChooser(self.ref, self.dtype, batch_size=1 << 20)  # one request
            self._local._tok = load_tokenizer(self.ref)
            self._local._model = self  # never loaded: loglikelihoods below do the scoring
            self._local.loglikelihoods = self.loglikelihoods  # type: ignore[method-assign]
        return list(self._local.choose(prompts, choices))

    def loglikelihoods(self, contexts: list[list[int]], conts: list[list[int]]) -> list[float]:
        from harness.generation.vllm_inproc import shared_worker

        worker = shared_worker(self.ref, self.dtype)
        seqs = [c + x for c, x in zip(contexts, conts, strict=True)]
        return worker.loglikelihoods(seqs, [len(x) for x in conts])


def _strip(text: str) -> str:
    return text.strip().strip("\"'`*.:!").strip().casefold()


def choice_probs(top: Sequence[dict[str, Any]], choices: Sequence[str]) -> dict[str, float] | None:
    """A distribution over the choices from the first answer token's top logprobs: a token counts
    for a choice when it is a prefix of that choice alone ("Y" for "yes" but not if "yeah" is
    also a choice). None when no listed token names any choice."""
    mass: dict[str, float] = {}
    for entry in top:
        token = _strip(str(entry.get("token", "")))
        if not token:
            continue
        matches = [c for c in choices if c.casefold().startswith(token)]
        if len(matches) == 1:
            c = matches[0]
            mass[c] = mass.get(c, 0.0) + math.exp(float(entry["logprob"]))
    if not mass:
        return None
    total = sum(mass.values())
    return {c: mass.get(c, 0.0) / total for c in choices}


def parse_choice(text: str, choices: Sequence[str]) -> str | None:
    """The choice a judge's text names exactly, or None."""
    said = _strip(text)
    return next((c for c in choices if c.casefold() == said), None)


@dataclass
class ServedChooser:
    ref: ModelRef
    top_logprobs: int = 20

    def choose(self, prompts: Sequence[Messages], choices: Sequence[str]) -> list[Verdict]:
        import httpx

        from harness.generation.served import Endpoint, Stats

        ep = Endpoint.from_info(self.ref.served or {})
        stats = Stats()
        longest = max(len(c) for c in choices)
        with (
            httpx.Client(timeout=ep.timeout) as client,
            ThreadPoolExecutor(ep.concurrency, thread_name_prefix="tuneval-judge") as pool,
        ):
            return list(
                pool.map(lambda m: self._one(client, ep, stats, m, choices, longest), prompts)
            )

    def _one(
        self, client: Any, ep: Any, stats: Any, messages: Messages, choices: Sequence[str],
        longest: int,
    ) -> Verdict:  # fmt: skip
        from harness.generation.served import chat_completion, shown_answer

        body = {
            "model": ep.model,
            "messages": messages,
            "max_tokens": max(4, longest),  # room for the longest choice, not for an essay
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        r = chat_completion(client, ep, self.ref.name, body, stats)
        try:
            choice = r.json()["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            said = shown_answer(r, ep)
            raise UserError(f"judge '{self.ref.name}': not a chat completion: {said}") from None
        content = ((choice.get("logprobs") or {}).get("content")) or []
        if content and content[0].get("top_logprobs"):
            probs = choice_probs(content[0]["top_logprobs"], choices)
            if probs:
                return Verdict(probs, text)
        picked = parse_choice(text, choices)
        if picked is None:
            said = " ".join(text.split())[:80]
            return Verdict(None, text, f"answered '{said}', not one of {', '.join(choices)}")
        return Verdict({c: float(c == picked) for c in choices}, text)


# --- the judge: a chooser behind the cache --------------------------------------------------


@dataclass
class Judge:
    ref: ModelRef
    chooser: Chooser
    store: Any = None  # harness.store.Store; None: no cache
    dtype: str = ""  # part of the cache key for local judges
    progress: bool = False

    def key(self, prompt: Messages, choices: Sequence[str]) -> str:
        blob = [_VERSION, self.ref.fingerprint, self.dtype, prompt, list(choices)]
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def choose(self, prompts: Sequence[Messages], choices: Sequence[str]) -> list[Verdict]:
        """One verdict per prompt, from the cache where it holds one."""
        if len(set(choices)) < 2:
            raise UserError("a judge needs at least two different choices")
        keys = [self.key(p, choices) for p in prompts]
        hits = self.store.cached_generations(keys) if self.store is not None else {}
        out: dict[int, Verdict] = {
            i: Verdict.from_json(json.loads(hits[k]["output"]))
            for i, k in enumerate(keys)
            if k in hits
        }
        todo = [i for i in range(len(prompts)) if i not in out]
        with Progress(f"judging ({self.ref.name})", len(todo), enabled=self.progress) as bar:
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start : start + CHUNK]
                t0 = time.perf_counter()
                verdicts = self.chooser.choose([prompts[i] for i in chunk], choices)
                seconds = (time.perf_counter() - t0) / max(len(chunk), 1)
                out.update(zip(chunk, verdicts, strict=True))
                self._save([(keys[i], prompts[i], out[i]) for i in chunk], choices, seconds)
                bar.advance(len(chunk))
        return [out[i] for i in range(len(prompts))]

    def _save(
        self, rows: list[tuple[str, Messages, Verdict]], choices: Sequence[str], seconds: float
    ) -> None:
        if self.store is None or self.store.readonly:
            return
        from harness.store import generation_row

        settings = {"judge": _VERSION, "choices": list(choices), "dtype": self.dtype}
        self.store.save_generations(
            [
                generation_row(
                    key,
                    self.ref.fingerprint,
                    prompt,
                    settings,
                    json.dumps(v.to_json()),
                    seconds=seconds,
                )  # fmt: skip
                for key, prompt, v in rows
            ]
        )


_JUDGES: dict[tuple[str, str, bool], Judge] = {}
_LOCK = threading.Lock()


def judge_fingerprints(suite: Any, store: Any = None) -> dict[str, str]:
    """{criterion id: fingerprint of its judge} for each rubric criterion that holds a judge,
    nested checks and the cases' own checks included (several judges in one: joined by '+')."""
    from harness import criteria

    fingerprints: dict[str, str] = {}
    found: dict[str, set[str]] = {}
    for _, c in suite.criteria():
        for use in criteria.uses(c.id, c.type, c.params(), suite.cases):
            spec = use.params.get("model")
            if use.type != "judge" or not isinstance(spec, str):
                continue
            if spec not in fingerprints:
                fingerprints[spec] = judge_for(spec, store).ref.fingerprint
            found.setdefault(c.id, set()).add(fingerprints[spec])
    return {cid: "+".join(sorted(fps)) for cid, fps in found.items()}


def judge_for(spec: str, store: Any = None, progress: bool = False) -> Judge:
    """The judge a model spec names, loaded once per process (several criteria, a rubric and a
    pairwise comparison share it)."""
    from harness.generation.models import resolve
    from harness.generation.vllm_engine import judges_on_vllm

    ref = resolve(spec, store)
    vllm = judges_on_vllm() and ref.kind != "served"
    with _LOCK:
        judge = _JUDGES.get((spec, ref.fingerprint, vllm))
        if judge is None:
            if ref.is_served:
                judge = Judge(ref, ServedChooser(ref), dtype="served")
            else:
                from harness.generation.hardware import dtype_for_cache

                dtype = dtype_for_cache()
                judge = Judge(ref, LocalChooser(ref, dtype), dtype=dtype)
                if vllm:  # vLLM's prompt logprobs, verdicts cached apart
                    judge = Judge(ref, VllmChooser(ref, dtype), dtype=f"{dtype}+vllm")
            _JUDGES[(spec, ref.fingerprint, vllm)] = judge
    judge.store, judge.progress = store, progress
    return judge
