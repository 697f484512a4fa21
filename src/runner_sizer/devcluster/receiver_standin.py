"""A stand-in for the sizer receiver, speaking `docs/receiver-openapi.yaml`.

For tests, the demo and docker-compose. Switches make it misbehave the ways a
real receiver can: slow, 404, 500, garbage, hang; `down` is stopping it.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

MODES = ("ok", "slow", "404", "500", "garbage", "hang")


@dataclass(frozen=True)
class SizingRequest:
    """What one sizing call asked for: the decoded segments and the project id (or None)."""

    segments: tuple[str, ...]
    project_id: str | None


@dataclass
class StandinState:
    """`recommendations` is keyed by `org/repo/workflow/job` (decoded), or by
    `{project_id}:org/repo/workflow/job` for an answer to that project only."""

    read_token: str = "read-token"  # noqa: S105 - a test double's credential
    push_token: str = "push-token"  # noqa: S105
    recommendations: dict[str, dict[str, Any]] = field(default_factory=dict)
    mode: str = "ok"
    delay: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    token_lifetime: float = 4 * 3600  # outlives a 1 h job: a cached token gets reused
    sizing_requests: list[SizingRequest] = field(default_factory=list)
    token_scopes: list[dict[str, Any]] = field(default_factory=list)
    _serial: itertools.count[int] = field(default_factory=itertools.count)
    _release: threading.Event = field(default_factory=threading.Event)

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self._release.set()  # free requests held by a previous `hang`
        self._release = threading.Event()
        self.mode, self.delay = mode, delay


def _misbehave(state: StandinState) -> Response | None:
    if state.mode == "hang":
        state._release.wait(60)
    if state.mode == "slow" or state.delay:
        time.sleep(state.delay)
    if state.mode == "500":
        return Response('{"error":"internal"}', 500, mimetype="application/json")
    if state.mode == "garbage":
        return Response("<html>definitely not json", 200, mimetype="application/json")
    return None


def _refusal(state: StandinState, endpoint: str, token: str) -> Response | None:
    """Count the call, check its bearer token, apply the misbehaviour switch."""
    state.calls[endpoint] += 1
    if request.headers.get("Authorization") != f"Bearer {token}":
        return Response('{"error":"unauthorized"}', 401, mimetype="application/json")
    return _misbehave(state)


def receiver_segments(raw_path: str) -> tuple[str, ...]:
    """The decoded segments after `/api/v1/sizing/repo/` of a raw request path.

    Dot segments are removed first (RFC 3986 §5.2.4), as any proxy or router on the
    way may do; segments are split before decoding, since `/` travels as %2F.
    """
    kept: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            kept = kept[:-1]
        elif segment != ".":
            kept.append(segment)
    return tuple(unquote(s) for s in kept[5:])


def create_standin_app(state: StandinState) -> Flask:
    app = Flask("receiver-standin")

    @app.get("/api/v1/sizing/repo/<path:_>")
    def sizing(_: str) -> Response:
        refusal = _refusal(state, "sizing", state.read_token)
        if refusal is not None:
            return refusal
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI", "")
        segments = receiver_segments(raw.split("?", 1)[0])
        project_id = request.args.get("project_id")
        state.sizing_requests.append(SizingRequest(segments, project_id))
        if len(segments) != 4:
            return Response(
                '{"error":"expected org/repo/workflow/job"}', 400, mimetype="application/json"
            )
        key = "/".join(segments)
        answer = state.recommendations.get(f"{project_id}:{key}") or state.recommendations.get(key)
        if state.mode == "404" or answer is None:
            return Response('{"error":"no history"}', 404, mimetype="application/json")
        return jsonify(answer)

    @app.post("/api/v1/token")
    def token() -> Response:
        refusal = _refusal(state, "token", state.push_token)
        if refusal is not None:
            return refusal
        scope = request.get_json(silent=True)
        if not isinstance(scope, dict):
            scope = {}
        state.token_scopes.append(scope)
        if not all(isinstance(scope.get(k), str) for k in ("org", "repo", "workflow", "job")) or (
            not isinstance(scope.get("project_id", ""), str)
        ):
            return Response('{"error":"scope required"}', 400, mimetype="application/json")
        return jsonify({"token": f"push-{next(state._serial)}", "expiresIn": state.token_lifetime})

    return app


class StandinServer:
    """The stand-in on a loopback port, served from a background thread."""

    def __init__(
        self,
        state: StandinState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls` serves HTTPS (a receiver behind a private CA)."""
        self.state = state or StandinState()
        self._scheme = "https" if tls else "http"
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._server: BaseWSGIServer = make_server(
            host, port, create_standin_app(self.state), threaded=True, ssl_context=tls
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_port}"

    def start(self) -> StandinServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.set_mode("ok")
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    state = StandinState(
        recommendations={
            "acme/ml-pipeline/main/build": {
                "requests": {"cpu": "1500m", "memory": "3Gi"},
                "limits": {"cpu": "2", "memory": "4Gi"},
            }
        }
    )
    StandinServer(state, args.host, args.port)._server.serve_forever()


if __name__ == "__main__":
    main()
