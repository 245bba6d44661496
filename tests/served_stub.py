"""An OpenAI-compatible chat-completions server for tests, with faults on demand: 429, 500,
connection resets and slow answers, drawn at random from a seed. Answers are a function of the
user message, so a test knows what every case should get."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # injected resets make the handler's final flush fail; that is the point


class StubServer:
    def __init__(
        self,
        answer: Callable[[str], str],
        *,
        model: str = "stub-model",
        faults: float = 0.0,
        delay: float = 0.0,
        seed: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.answer, self.model, self.faults, self.delay = answer, model, faults, delay
        self.api_key = api_key
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.served: Counter[str] = Counter()  # user message -> answers sent
        self.injected: Counter[str] = Counter()  # fault kind -> times
        self.auth_seen: set[str] = set()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _fault(self) -> str | None:
        with self.lock:
            if self.rng.random() >= self.faults:
                return None
            kind = self.rng.choice(["429", "500", "reset", "slow"])
            self.injected[kind] += 1
            return kind

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization", "")
                stub.auth_seen.add(auth)
                if stub.api_key and auth != f"Bearer {stub.api_key}":
                    self._send(401, {"error": {"message": "bad key"}})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if not self._authorized():
                    return
                self._send(200, {"object": "list", "data": [{"id": stub.model}]})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if not self._authorized():
                    return
                fault = stub._fault()
                if fault == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    self.connection.close()  # RST: the client sees a broken connection
                    return
                if fault in ("429", "500"):
                    self._send(int(fault), {"error": {"message": "injected"}})
                    return
                time.sleep(stub.delay + (1.5 if fault == "slow" else 0.0))
                user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
                text = stub.answer(user)
                with stub.lock:
                    stub.served[user] += 1
                self._send(
                    200,
                    {
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": len(user.split()) + 5,
                                  "completion_tokens": len(text.split()) + 1},
                    },
                )  # fmt: skip

        return Handler
