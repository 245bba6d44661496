"""A hostile served model: answers capped in size, requests bounded by a total deadline, and
every failure one line with no secret in it (tests/hostile_server.py plays the server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.errors import UserError
from harness.generation.models import ModelRef
from harness.generation.served import Endpoint, ServedBackend, normalize_url, redact
from harness.generation.types import GenSettings
from tests.hostile_server import HostileServer

KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def _ask(url: str, monkeypatch: pytest.MonkeyPatch, timeout: float = 30.0) -> Any:
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    ep = Endpoint(url, "m", api_key_env="HOSTILE_KEY", timeout=timeout, retries=0)
    ref = ModelRef("hostile", url, __import__("pathlib").Path("."), "served", "f",
                   served=ep.info())  # fmt: skip
    backend = ServedBackend.from_ref(ref, concurrency=1, progress=False)
    got: list[Any] = []
    backend.generate([[{"role": "user", "content": "q"}]], GenSettings(max_new_tokens=4),
                     lambda rows, gens: got.extend(gens))  # fmt: skip
    return got


@pytest.mark.parametrize(
    "mode,expect",
    [("huge", "passed 1 MiB"), ("gzip-lie", "cannot be decoded"), ("deep", "not a chat completion"),
     ("tokens", "not a chat completion"), ("drip", "within 1s"), ("echo", "HTTP 400")],
)  # fmt: skip
def test_hostile_answer_is_one_line(
    mode: str, expect: str, hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEVAL_SERVED_MAX_MB", "1")
    with pytest.raises(UserError) as e:
        _ask(hostile.url(mode), monkeypatch, timeout=1.0 if mode == "drip" else 20.0)
    text = str(e.value)
    assert expect in text and "\n" not in text.strip(), text
    assert KEY not in text and "Bearer sk" not in text, text


def test_plain_answer_still_arrives(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [g.output for g in _ask(hostile.url("ok"), monkeypatch)] == ["ok"]


@pytest.mark.parametrize(
    "url,expect",
    [("http://[::1", "not a URL"), ("http://host\x01:8000/v1", "control character"),
     ("http://user:hunter2@host/v1", "credentials"), ("ftp://host/v1", "expected http")],
)  # fmt: skip
def test_bad_urls_refused(url: str, expect: str) -> None:
    with pytest.raises(UserError) as e:
        normalize_url(url)
    assert expect in str(e.value) and "hunter2" not in str(e.value)


def test_redact() -> None:
    said = '{"Authorization": "Bearer sk-abcdefgh123", "x-api-key": "k1234567"} http://u:p@h/v1'
    shown = redact(said, "k1234567")
    assert "sk-abcdefgh123" not in shown and "k1234567" not in shown and "u:p@" not in shown
    assert "Authorization" in shown and "h/v1" in shown
