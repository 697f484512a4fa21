"""The WSGI app: the sizing path of the receiver contract, probes and /metrics.

Sizing requests are routed on the raw request target, before anything decodes
it (Flask's router sees PATH_INFO, where %2F is already a `/`), and answered on
plain WSGI; the rest is Flask.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl

from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from runner_sizer.recommender.metrics import RecommenderMetrics
from runner_sizer.recommender.paths import PathError, is_sizing_target, raw_target, sizing_segments
from runner_sizer.recommender.table import Outcome, Table
from runner_sizer.webhook.watched import TokenSource


class TableSource(Protocol):
    table: Table | None
    problem: str
    missing: list[str]


@dataclass
class Services:
    source: TableSource
    metrics: RecommenderMetrics
    read_token: TokenSource | None = None


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _json(payload: Any, status: int = 200) -> Response:
    return Response(_dumps(payload), status, mimetype=JSON)


JSON = "application/json"
STATUS = {
    code: f"{code} {HTTPStatus(code).phrase.upper()}" for code in (200, 400, 401, 404, 405, 503)
}
OUTCOMES = (*Outcome, "not_ready", "invalid", "unauthorized")
METHOD_NOT_ALLOWED = _dumps({"error": "method not allowed"})
UNAUTHORIZED = _dumps({"error": "unauthorized"})
NOT_READY = _dumps({"error": "no recommendations yet"})
NO_HISTORY = {o: _dumps({"error": "no history", "reason": o.value}) for o in Outcome}


def _authorized(environ: Mapping[str, Any], token: TokenSource | None) -> bool:
    if token is None:
        return True
    expected = token.current()
    given = str(environ.get("HTTP_AUTHORIZATION", ""))
    return bool(expected) and hmac.compare_digest(given.encode(), f"Bearer {expected}".encode())


def _first(query: str, name: str) -> str | None:
    return next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == name), None)


def answer_sizing(environ: Mapping[str, Any], services: Services) -> tuple[int, bytes, str]:
    """Status, JSON body and outcome label of a sizing request, read from the WSGI environ."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return 405, METHOD_NOT_ALLOWED, "invalid"
    if not _authorized(environ, services.read_token):
        return 401, UNAUTHORIZED, "unauthorized"
    try:
        org, repo, ref, job = sizing_segments(raw_target(environ))
    except PathError as error:
        return 400, _dumps({"error": str(error)}), "invalid"
    table = services.source.table
    if table is None:
        return 503, NOT_READY, "not_ready"
    project_id = _first(str(environ.get("QUERY_STRING", "")), "project_id")
    body, outcome = table.lookup(org, repo, ref, job, project_id)
    if body is None:
        return 404, NO_HISTORY[outcome], outcome.value
    return 200, body, outcome.value


def create_flask(services: Services) -> Flask:
    app = Flask("runner_sizer.recommender")

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        source = services.source
        table = source.table
        if table is None:
            return _json({"status": "not ready", "reason": source.problem}, 503)
        body: dict[str, Any] = {
            "status": "ready",
            "table_built_at": table.built_at,
            "identities": table.identities,
            "recommendations": len(table.exact),
        }
        if source.problem:
            body["last_refresh_error"] = source.problem
        if source.missing:
            body["missing"] = source.missing
        return _json(body)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(services.metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    return app


def create_app(services: Services) -> Any:
    """A WSGI callable. Sizing requests, the hot path, are answered on plain WSGI: the
    body is prebuilt bytes from the table, and no request or response object is made."""
    flask = create_flask(services)
    answers = services.metrics.answers
    counted = {outcome: answers.labels(outcome) for outcome in OUTCOMES}

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not is_sizing_target(raw_target(environ)):
            return flask(environ, start_response)
        status, body, outcome = answer_sizing(environ, services)
        counted[outcome].inc()
        start_response(STATUS[status], [("Content-Type", JSON), ("Content-Length", str(len(body)))])
        return () if environ.get("REQUEST_METHOD") == "HEAD" else (body,)

    return app
