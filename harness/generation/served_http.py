"""One HTTP exchange with a served model, bounded in size and in total time.

httpx's timeout is per network operation: a server that drips a byte every half second never
trips it, and a 50 MB answer is read whole into memory (then into the store). Here the body is
read in pieces, and the exchange is cut off once it passes `max_bytes()` (decompressed: a gzip
bomb counts at its real size) or its total deadline. A body that claims a compression it does not
have, or JSON nested past Python's recursion limit, is the server's fault, said in one line.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

MAX_BYTES_VAR = "TUNEVAL_SERVED_MAX_MB"
DEFAULT_MAX_MB = 8  # a chat completion is kilobytes; this leaves room for long answers


def max_bytes() -> int:
    """How large one answer may be (TUNEVAL_SERVED_MAX_MB, default 8)."""
    try:
        return max(1, int(os.environ.get(MAX_BYTES_VAR, DEFAULT_MAX_MB))) << 20
    except ValueError:
        return DEFAULT_MAX_MB << 20


class TooLarge(Exception):
    """The answer passed max_bytes()."""


class TooSlow(Exception):
    """The exchange passed its total deadline."""


class Undecodable(Exception):
    """The body cannot be decoded as its headers say (a gzip header on a plain body)."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.content)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def post(
    client: Any, url: str, body: dict[str, Any], headers: dict[str, str], seconds: float
) -> Answer:
    """POST `body` as JSON; the answer read whole within `seconds` in all and max_bytes()."""
    return request(client, "POST", url, seconds, json=body, headers=headers)


def request(client: Any, method: str, url: str, seconds: float, **kwargs: Any) -> Answer:
    import httpx

    deadline = time.monotonic() + seconds
    limit = max_bytes()
    # each network wait is also held to the time left, so the total can pass `seconds` by no
    # more than one scheduling slice
    with client.stream(method, url, timeout=httpx.Timeout(seconds), **kwargs) as r:
        parts, size = [], 0
        try:
            for part in r.iter_bytes():
                size += len(part)
                if size > limit:
                    raise TooLarge(f"the answer passed {limit >> 20} MiB ({MAX_BYTES_VAR})")
                if time.monotonic() > deadline:
                    raise TooSlow(f"no complete answer within {seconds:g}s")
                parts.append(part)
        except httpx.DecodingError as e:
            raise Undecodable(f"the body cannot be decoded as its headers say ({e})") from None
        return Answer(r.status_code, b"".join(parts))
