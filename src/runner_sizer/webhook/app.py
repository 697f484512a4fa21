"""The WSGI app: /mutate, /healthz, /readyz. Thin: the logic is in `mutation`.

/mutate is plain WSGI: Flask's request and app contexts, routing and response object
cost about as much CPU as the admission itself; the probes stay Flask.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import orjson
from flask import Flask, Response
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from runner_sizer.webhook.constraints import NO_RULES, NamespaceRules
from runner_sizer.webhook.history_view import HistoryView
from runner_sizer.webhook.metrics import WebhookMetrics
from runner_sizer.webhook.mutation import Fetched, Ignore, Plan, build_mutation, plan_admission
from runner_sizer.webhook.namespace_view import NamespaceView
from runner_sizer.webhook.receiver import Deadline, ReceiverClient, TokenAnswer
from runner_sizer.webhook.review import ReviewError, parse_review, review_response
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.shedding import Shedder

log = logging.getLogger(__name__)
DRY_RUN_TOKEN = "dry-run-placeholder"  # noqa: S105 - what the sidecar gets on API dry-run


@dataclass
class Services:
    settings: WebhookSettings
    metrics: WebhookMetrics
    receiver: ReceiverClient | None
    history: HistoryView | None
    namespaces: NamespaceView | None = None
    # None: never shed (the in-process server of the tests has no gevent hub to ask).
    shedder: Shedder | None = None

    def readiness_problem(self) -> str:
        """Empty when ready to admit: history synced (if affinity is on), and the
        namespaces' LimitRanges and ResourceQuotas read (if anything is sized or injected)."""
        if self.settings.enable_affinity and self.history is not None and not self.history.synced:
            return self.history.problem
        if self.namespaces is not None and not self.namespaces.synced:
            return self.namespaces.problem
        return ""


def job_lifetime(plan: Plan, settings: WebhookSettings) -> float:
    """Seconds a push token must stay valid: the job's own timeout, else the configured one."""
    if plan.job_timeout_seconds is not None:
        return plan.job_timeout_seconds
    return settings.job_timeout_seconds


def namespace_rules(plan: Plan, services: Services) -> NamespaceRules | None:
    """The namespace's LimitRanges and quotas; None while they are not known."""
    if not services.settings.watch_namespace_rules:
        return NO_RULES
    if services.namespaces is None or not services.namespaces.synced:
        return None
    return services.namespaces.rules(plan.namespace)


def fetch(plan: Plan, services: Services, deadline: Deadline) -> Fetched:
    """Ask the receiver and the history view for what the plan needs.

    An API dry-run reads (sizing, history) but mints nothing: the sidecar gets
    `DRY_RUN_TOKEN`, so the patch is the one a real admission would get.
    """
    sizing = token = None
    if plan.identity is not None and services.receiver is not None:
        if plan.want_sizing:
            sizing = services.receiver.sizing(plan.identity, deadline)
        if plan.want_sidecar and plan.dry_run:
            token = TokenAnswer(DRY_RUN_TOKEN)
        elif plan.want_sidecar:
            lifetime = job_lifetime(plan, services.settings)
            token = services.receiver.push_token(plan.identity, deadline, lifetime)
    nodes: tuple[str, ...] = ()
    if plan.history_key is not None and services.history is not None:
        nodes = services.history.nodes(plan.history_key)
    return Fetched(
        recommendation=sizing.recommendation if sizing else None,
        sizing_reason=sizing.reason if sizing else None,
        push_token=token.token if token else None,
        token_reason=token.reason if token else None,
        history_nodes=nodes,
        rules=namespace_rules(plan, services),
    )


def admit(body: Any, services: Services, overdue: bool = False) -> dict[str, Any]:
    """One review → its answer; raises ReviewError only for a body that is no review.

    `overdue`: it waited past the shedding budget, so it is allowed unchanged at once.
    """
    review = parse_review(body)
    metrics = services.metrics
    if overdue:
        metrics.admissions.labels("shed").inc()
        return review_response(review.uid)
    try:
        plan = plan_admission(review, services.settings)
        if isinstance(plan, Ignore):
            if plan is Ignore.OPT_OUT:
                metrics.skipped_injections.labels("all", "opt_out").inc()
            metrics.admissions.labels("ignored").inc()
            return review_response(review.uid)
        fetched = fetch(plan, services, Deadline(services.settings.deadline_seconds))
        mutation = build_mutation(plan, fetched, services.settings)
    except Exception:
        # Never block CI: a bug here still admits the pod, unchanged.
        log.exception("admission failed; pod allowed unchanged", extra={"uid": review.uid})
        metrics.admissions.labels("error").inc()
        return review_response(review.uid)
    for feature, reason in mutation.reasons():
        if reason.value != "disabled":
            metrics.skipped_injections.labels(feature, reason.value).inc()
    if services.settings.dry_run:
        metrics.admissions.labels("dry_run").inc()
    else:
        for applied in mutation.applied:
            metrics.mutations.labels(applied).inc()
        metrics.admissions.labels("mutated" if mutation.applied else "annotated").inc()
    return review_response(review.uid, mutation.patch)


def load_json(body: bytes) -> Any:
    """The parsed body; ValueError for anything orjson cannot load (nesting past 1,024
    levels, numbers past a double's range, NaN and invalid UTF-8 included)."""
    return orjson.loads(body)


def read_body(environ: WSGIEnvironment, limit: int) -> bytes:
    """The request body; RequestEntityTooLarge past `limit` bytes.

    With a Content-Length, as the apiserver always sends, straight from the server's
    stream: Werkzeug's limited stream around it cost ~6 % of a worker under load.
    """
    length = environ.get("CONTENT_LENGTH", "")
    if not (length.isascii() and length.isdigit()):
        # Werkzeug's stream stops quietly at its limit: one byte more tells.
        streamed = get_input_stream(environ, max_content_length=limit + 1).read()
        if len(streamed) > limit:
            raise RequestEntityTooLarge
        return streamed
    if int(length) > limit:
        raise RequestEntityTooLarge
    body: bytes = environ["wsgi.input"].read(int(length))
    return body


def mutate(environ: WSGIEnvironment, services: Services) -> tuple[str, bytes]:
    """One POST /mutate: the status line and the JSON body."""
    started = time.perf_counter()
    overdue = services.shedder is not None and services.shedder.overdue()
    try:
        body = read_body(environ, services.settings.max_body_bytes)
        answer = admit(load_json(body), services, overdue)
    except RequestEntityTooLarge:
        services.metrics.admissions.labels("invalid").inc()
        return "413 Request Entity Too Large", _error("review larger than --max-body-bytes")
    except (ValueError, ReviewError) as error:
        services.metrics.admissions.labels("invalid").inc()
        return "400 Bad Request", _error(f"not an AdmissionReview: {error}"[:300])
    finally:
        services.metrics.admission_seconds.observe(time.perf_counter() - started)
        if services.shedder is not None:
            services.shedder.answered()
    return "200 OK", orjson.dumps(answer)


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, mimetype="application/json")


def create_app(services: Services) -> WSGIApplication:
    """A WSGI callable."""
    probes = create_probes(services)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/mutate" or environ.get("REQUEST_METHOD") != "POST":
            return probes(environ, start_response)
        status, body = mutate(environ, services)
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def create_probes(services: Services) -> Flask:
    app = Flask("runner_sizer.webhook")

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        problem = services.readiness_problem()
        return (
            _json({"status": "not ready", "reason": problem}, 503)
            if problem
            else _json({"status": "ready"})
        )

    return app
