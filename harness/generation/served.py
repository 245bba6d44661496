"""Served models: any OpenAI-compatible endpoint (vLLM, SGLang, TGI, llama.cpp's server,
`transformers serve`), registered once with `tuneval models add NAME --url ... --model ...` and
then used wherever a model spec goes.

Requests go out concurrently (a bounded pool), each with a timeout, and are retried with
exponential backoff and jitter on 429, 5xx, timeouts and broken connections. Answers are handed
back as they arrive, so the runner commits them as they come and a killed run resumes where it
stopped. The API key is read from the named environment variable at request time and never
written anywhere. A served model cannot be hashed: its fingerprint is its served id and revision,
which every run, comparison and report marks as not verified.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

from harness.errors import UserError
from harness.generation import served_http
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
from harness.store import ModelRow

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_STOP = 4  # stop sequences the OpenAI API accepts; the rest are applied here


@dataclass(frozen=True)
class Endpoint:
    url: str  # the API base, e.g. http://host:8000/v1
    model: str  # the id the server serves the model under
    api_key_env: str | None = None
    revision: str | None = None
    concurrency: int = 16
    timeout: float = 300.0  # seconds per request
    retries: int = 8

    def info(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "revision": self.revision,
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "retries": self.retries,
        }

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Endpoint:
        keys = ("url", "model", "api_key_env", "revision", "concurrency", "timeout", "retries")
        return cls(**{k: info[k] for k in keys if k in info})


def fingerprint(model: str, revision: str | None) -> str:
    """What identifies a served model: its served id and revision, not where it is served."""
    return hashlib.sha256(f"served\0{model}\0{revision or ''}".encode()).hexdigest()


def served_ref(row: ModelRow) -> ModelRef:
    return ModelRef(
        row["name"], row["spec"], Path("."), "served", row["fingerprint"] or "", served=row["info"]
    )


def normalize_url(url: str) -> str:
    """The API base, checked: http(s), a host, no control characters or spaces (stored, they
    would break every later request), and no `user:password@` (kept out of the store: put the
    key in an environment variable and name it with --api-key-env)."""
    shown = redact(url)
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise UserError(f"--url {shown!r}: holds a space or a control character")
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as e:
        raise UserError(f"--url {shown!r}: not a URL ({e})") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(f"--url {shown!r}: expected http(s)://host[:port]/v1")
    if parsed.username is not None or parsed.password is not None:
        raise UserError(
            f"--url {shown!r}: holds credentials; they would be stored and shown in plain text "
            "(pass the key in an environment variable named by --api-key-env)"
        )
    return url.rstrip("/")


_SECRETS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (
        re.compile(
            r"(?i)([\"']?(?:authorization|api[-_]?key|x-api-key)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\"',}\s]+"
        ),
        r"\1***",
    ),  # fmt: skip
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "sk-***"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@"), r"\1***@"),  # user:password@host
]


def redact(text: str, *secrets: str | None) -> str:
    """`text` with API keys, Authorization headers and URL credentials replaced by ***: what a
    server echoes back (`you sent: {"Authorization": "Bearer sk-..."}`) must not reach the
    terminal, a log or the store."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _key(endpoint: Endpoint | None) -> str | None:
    if endpoint is None or not endpoint.api_key_env:
        return None
    return os.environ.get(endpoint.api_key_env)


def headers(endpoint: Endpoint, name: str) -> dict[str, str]:
    if not endpoint.api_key_env:
        return {}
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise UserError(
            f"served model '{name}': environment variable {endpoint.api_key_env} (its API key) "
            "is not set"
        )
    return {"Authorization": f"Bearer {key}"}


def check_reachable(endpoint: Endpoint, name: str) -> list[str]:
    """The ids the server lists under /models; a UserError naming the URL if it cannot answer."""
    import httpx

    url = redact(endpoint.url)
    try:
        with httpx.Client() as client:
            r = served_http.request(
                client, "GET", f"{endpoint.url}/models", 10.0, headers=headers(endpoint, name)
            )
    except (httpx.HTTPError, served_http.TooLarge, served_http.TooSlow,
            served_http.Undecodable) as e:  # fmt: skip
        why = redact(f"{type(e).__name__}: {e}", _key(endpoint))
        raise UserError(f"served model '{name}': cannot reach {url} ({why})") from None
    if r.status_code in (401, 403):
        raise UserError(f"served model '{name}': {url} refused the API key ({r.status_code})")
    if r.status_code >= 400:
        raise UserError(f"served model '{name}': {url}/models answered HTTP {r.status_code}")
    try:
        return [str(m.get("id")) for m in r.json().get("data", [])]
    except (ValueError, AttributeError, TypeError):
        return []


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, retries: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.retries += retries

    def to_json(self) -> dict[str, int]:
        return {"requests": self.requests, "retries": self.retries}


def chat_completion(
    client: Any, ep: Endpoint, name: str, body: dict[str, Any], stats: Stats
) -> served_http.Answer:
    """POST one chat completion, retried with backoff and jitter on 429, 5xx, timeouts and
    broken connections; the answer, or a UserError naming the URL. Each attempt is bounded by
    `ep.timeout` seconds in all and by served_http.max_bytes(); every message is redacted."""
    import httpx

    url = f"{ep.url}/chat/completions"
    shown, key = redact(url), _key(ep)
    for attempt in range(ep.retries + 1):
        try:
            r = served_http.post(client, url, body, headers(ep, name), ep.timeout)
            if r.status_code not in RETRY_STATUS:
                break
            reason = f"HTTP {r.status_code}"
        except (httpx.TimeoutException, httpx.TransportError, served_http.TooSlow) as e:
            reason = redact(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, key)
        except (served_http.TooLarge, served_http.Undecodable, httpx.HTTPError) as e:
            raise UserError(f"served model '{name}': {shown}: {redact(str(e), key)}") from None
        if attempt == ep.retries:
            raise UserError(
                f"served model '{name}': {shown} failed {ep.retries + 1} times "
                f"(last: {reason[:200]}); rerun the same command to resume"
            )
        stats.add(retries=1)
        time.sleep(min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5))
    stats.add(requests=1)
    if r.status_code >= 400:
        said = redact(r.text[:2000], key)[:300]
        raise UserError(f"served model '{name}': {shown} answered HTTP {r.status_code}: {said}")
    return r


def shown_answer(r: served_http.Answer, ep: Endpoint | None) -> str:
    """The start of an answer, for an error message: redacted."""
    return redact(r.text[:2000], _key(ep))[:300]


@dataclass
class ServedBackend:
    """Chat completions from an OpenAI-compatible endpoint, `concurrency` requests in flight."""

    engine_ran: ClassVar[str] = "served"  # see harness.generation.dispatch
    name: str
    endpoint: Endpoint
    concurrency: int = 16
    progress: bool = True
    stats: Stats = field(default_factory=Stats)

    @classmethod
    def from_ref(
        cls, ref: ModelRef, concurrency: int | None = None, progress: bool = True
    ) -> ServedBackend:
        endpoint = Endpoint.from_info(ref.served or {})
        return cls(ref.name, endpoint, concurrency or endpoint.concurrency, progress)

    def check(self) -> None:
        check_reachable(self.endpoint, self.name)

    def generate(
        self,
        conversations: Sequence[Messages],
        settings: GenSettings,
        on_batch: OnBatch,
        *,
        seeds: Sequence[int] | None = None,
    ) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency)
        done: list[tuple[int, Generation]] = []
        last = time.perf_counter()
        with (
            httpx.Client(timeout=self.endpoint.timeout, limits=limits) as client,
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="tuneval-served") as pool,
            Progress("requesting", len(conversations), enabled=self.progress) as bar,
        ):
            pending: set[Future[tuple[int, Generation]]] = {
                pool.submit(
                    self._answer, client, i, conv, settings, None if seeds is None else seeds[i]
                )
                for i, conv in enumerate(conversations)
            }
            try:
                while pending:
                    finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                    done += [f.result() for f in finished]  # re-raises a request's error
                    now = time.perf_counter()
                    if done and (now - last >= 0.5 or not pending or len(done) >= 64):
                        rows, gens = zip(*done, strict=True)
                        on_batch(list(rows), list(gens))  # committed as they arrive
                        bar.advance(len(done), f"{self.stats.retries} retries")
                        done, last = [], now
            except BaseException:
                for f in pending:
                    f.cancel()
                raise

    def _answer(
        self, client: Any, i: int, conv: Messages, settings: GenSettings, seed: int | None = None
    ) -> tuple[int, Generation]:
        ep = self.endpoint
        body: dict[str, Any] = {
            "model": ep.model,
            "messages": conv,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
        }
        if settings.stop:
            body["stop"] = list(settings.stop[:MAX_STOP])
        if settings.temperature > 0:
            body["top_p"] = settings.top_p
            body["seed"] = request_seed(settings.seed if seed is None else seed, conv)
        t0 = time.perf_counter()
        r = chat_completion(client, ep, self.name, body, self.stats)
        return i, self._parse(r, settings, time.perf_counter() - t0)

    def _parse(self, r: Any, settings: GenSettings, seconds: float) -> Generation:
        try:
            data = r.json()
            text = data["choices"][0]["message"]["content"] or ""
            usage = data.get("usage") or {}
            if not isinstance(text, str) or not isinstance(usage, dict):
                raise TypeError
            n = _tokens(usage.get("completion_tokens") or 0)
            prompt = usage.get("prompt_tokens")
            prompt = _tokens(prompt) if prompt is not None else None
        except (ValueError, KeyError, IndexError, TypeError, OverflowError):
            said = shown_answer(r, self.endpoint)
            raise UserError(f"served model '{self.name}': not a chat completion: {said}") from None
        # JSON can spell a lone surrogate ("\ud800"), which no database can store: mark it
        text = text.encode("utf-8", "replace").decode("utf-8")
        out = apply_stop(text, settings.stop).strip()
        return Generation(out, n, seconds, prompt)


def _tokens(value: Any) -> int:
    """A token count from a server: a whole number a database can hold (not 10**30)."""
    n = int(value)
    if not 0 <= n < 1 << 62:
        raise ValueError(f"token count {str(value)[:40]}")
    return n
