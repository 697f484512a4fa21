"""A receiver that answers whatever a test scripts, on and beyond the contract.

The stand-in (`runner_sizer.devcluster.receiver_standin`) speaks the documented
contract; this one is for the property test, which must also try what a broken
receiver sends: odd units, wrong types, huge bodies, slow answers and 5xx.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    delay: float = 0.0


@dataclass
class Script:
    sizing: Answer = field(default_factory=Answer)
    token: Answer = field(default_factory=lambda: Answer(body=b'{"token":"t","expiresIn":7200}'))
    calls: Counter[str] = field(default_factory=Counter)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self, endpoint: str, answer: Answer) -> None:
        self.server.script.calls[endpoint] += 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        time.sleep(answer.delay)
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def do_GET(self) -> None:
        self._answer("sizing", self.server.script.sizing)

    def do_POST(self) -> None:
        self._answer("token", self.server.script.token)

    def log_message(self, format: str, *args: object) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script


class ScriptedReceiver:
    """Serves on 127.0.0.1; `script` may be replaced between requests."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.script = Script()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def script(self) -> Script:
        return self._server.script

    @script.setter
    def script(self, script: Script) -> None:
        self._server.script = script

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
