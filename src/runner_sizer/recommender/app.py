"""The WSGI app: the sizing path of the receiver contract, probes and /metrics.

Sizing requests are routed on the raw request target, before anything decodes
it (Flask's router sees PATH_INFO, where %2F is already a `/`); the rest is Flask.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Request, Response

from runner_sizer.recommender.metrics import RecommenderMetrics
from runner_sizer.recommender.paths import PathError, is_sizing_target, raw_target, sizing_segments
from runner_sizer.recommender.table import Table
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


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status, mimetype="application/json")


def _authorized(request: Request, token: TokenSource | None) -> bool:
    if token is None:
        return True
    expected = token.current()
    given = request.headers.get("Authorization", "")
    return bool(expected) and hmac.compare_digest(given.encode(), f"Bearer {expected}".encode())


def answer_sizing(request: Request, services: Services) -> tuple[Response, str]:
    """The response and its outcome label."""
    if request.method not in ("GET", "HEAD"):
        return _json({"error": "method not allowed"}, 405), "invalid"
    if not _authorized(request, services.read_token):
        return _json({"error": "unauthorized"}, 401), "unauthorized"
    try:
        org, repo, ref, job = sizing_segments(raw_target(request.environ))
    except PathError as error:
        return _json({"error": str(error)}, 400), "invalid"
    table = services.source.table
    if table is None:
        return _json({"error": "no recommendations yet"}, 503), "not_ready"
    project_id = request.args.get("project_id")
    body, outcome = table.lookup(org, repo, ref, job, project_id)
    if body is None:
        return _json({"error": "no history", "reason": outcome.value}, 404), outcome.value
    return Response(body, 200, mimetype="application/json"), outcome.value


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
    """A WSGI callable."""
    flask = create_flask(services)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not is_sizing_target(raw_target(environ)):
            return flask(environ, start_response)
        response, outcome = answer_sizing(Request(environ), services)
        services.metrics.answers.labels(outcome).inc()
        return response(environ, start_response)

    return app
