"""A hostile OpenAI-compatible server, for tests: each path prefix is one way a server can
misbehave. `http://127.0.0.1:PORT/<mode>/v1` serves mode:

- `huge`: a 50 MB answer; `drip`: a valid answer one byte every 0.2 s;
- `gzip-lie`: a gzip Content-Encoding on a plain body; `deep`: JSON nested 100,000 deep;
- `tokens`: `completion_tokens` of 10**30; `echo`: HTTP 400 echoing the request's headers
  (an API key among them) and `ok`: a plain answer.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion(text: str, tokens: Any = 1) -> bytes:
    body = {"choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"completion_tokens": tokens, "prompt_tokens": 1}}  # fmt: skip
    return json.dumps(body).encode()


HUGE = completion("x" * 50_000_000)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, data: bytes, **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # /models
        self._send(200, json.dumps({"data": [{"id": "m"}]}).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        mode = self.path.strip("/").split("/")[0]
        if mode == "huge":
            self._send(200, HUGE)
        elif mode == "drip":
            data = completion("ok")
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass  # the client gave up: that is the point
        elif mode == "gzip-lie":
            self._send(200, completion("ok"), Content_Encoding="gzip")
        elif mode == "deep":
            self._send(200, b"[" * 100_000 + b"]" * 100_000)
        elif mode == "tokens":
            self._send(200, completion("ok", 10**30))
        elif mode == "echo":
            said = json.dumps({"error": f"you sent: {dict(self.headers)}"})
            self._send(400, said.encode())
        else:
            self._send(200, completion("ok"))


class HostileServer:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, mode: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{mode}/v1"

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
