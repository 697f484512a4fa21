"""The sizer receiver client: cached, deadline-bound, behind a circuit breaker.

The contract relied on is `docs/receiver-openapi.yaml`. Every failure becomes a
`Reason` the admission path records; nothing here raises into an admission.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import gevent
import requests
from cachetools import LRUCache, TLRUCache, TTLCache

from runner_sizer.identity import JobIdentity
from runner_sizer.webhook.breaker import CircuitBreaker
from runner_sizer.webhook.metrics import WebhookMetrics
from runner_sizer.webhook.mutation import Reason
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.sizing import Recommendation, parse_recommendation

log = logging.getLogger(__name__)
DEFAULT_TOKEN_LIFETIME = 300.0


class Deadline:
    """One time budget shared by every receiver call of an admission."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())


@dataclass(frozen=True)
class SizingAnswer:
    recommendation: Recommendation | None
    reason: Reason | None = None


@dataclass(frozen=True)
class TokenAnswer:
    token: str | None
    reason: Reason | None = None
    expires_at: float = 0.0  # monotonic clock


class _HardTimeoutError(Exception):
    """Raised by gevent when a call outlives the admission's budget."""


def _expiry(body: dict[str, Any], now_wall: float) -> float:
    """Seconds of validity from `expiresIn` or `expiresAt` (RFC 3339); 300 if absent."""
    expires_in = body.get("expiresIn")
    if isinstance(expires_in, int | float) and expires_in > 0:
        return float(expires_in)
    expires_at = body.get("expiresAt")
    if isinstance(expires_at, str):
        try:
            moment = datetime.datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
            return max(0.0, moment.timestamp() - now_wall)
        except ValueError:
            pass
    return DEFAULT_TOKEN_LIFETIME


class ReceiverClient:
    def __init__(
        self,
        settings: WebhookSettings,
        metrics: WebhookMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._breaker = CircuitBreaker(
            settings.breaker_failures, settings.breaker_cooldown_seconds, clock
        )
        self._session = requests.Session()  # keeps connections; proxies from the environment
        # Passed per call: a Session-level `verify` loses to REQUESTS_CA_BUNDLE.
        self._verify: str | bool = str(settings.sizer_ca_file) if settings.sizer_ca_file else True
        size = settings.cache_size
        self._sizing: TTLCache[str, SizingAnswer] = TTLCache(
            size, settings.cache_ttl_seconds, clock
        )
        self._absent: TTLCache[str, bool] = TTLCache(
            size, settings.negative_cache_ttl_seconds, clock
        )
        self._last_good: LRUCache[str, SizingAnswer] = LRUCache(size)
        self._tokens: TLRUCache[str, TokenAnswer] = TLRUCache(
            size, lambda _k, v, _now: v.expires_at, clock
        )

    def sizing(self, identity: JobIdentity, deadline: Deadline) -> SizingAnswer:
        key = identity.cache_key()
        cached = self._sizing.get(key)
        if cached is not None:
            self._metrics.cache_lookups.labels("sizing", "hit").inc()
            return cached
        if key in self._absent:
            self._metrics.cache_lookups.labels("sizing", "negative_hit").inc()
            return SizingAnswer(None, reason=Reason.COLD_START)
        self._metrics.cache_lookups.labels("sizing", "miss").inc()
        return self._fetch_sizing(identity, deadline)

    def _fetch_sizing(self, identity: JobIdentity, deadline: Deadline) -> SizingAnswer:
        key = identity.cache_key()
        outcome = self._call(
            "sizing",
            "GET",
            sizing_url(self._settings.sizer_url, identity),
            token=self._settings.sizer_read_token,
            body=None,
            deadline=deadline,
        )
        if isinstance(outcome, Reason):
            return self._stale_or(key, outcome)
        status, body = outcome
        if status == 404:
            self._absent[key] = True
            return SizingAnswer(None, reason=Reason.COLD_START)
        if status != 200:
            return self._stale_or(key, Reason.RECEIVER_ERROR)
        recommendation = parse_recommendation(body)
        if recommendation is None:
            log.warning(
                "receiver sent an unusable recommendation",
                extra={"path": identity.receiver_path(), "project_id": identity.project_id},
            )
            return SizingAnswer(None, reason=Reason.INVALID_ANSWER)
        answer = SizingAnswer(recommendation)
        self._sizing[key] = answer
        self._last_good[key] = answer
        return answer

    def _stale_or(self, key: str, reason: Reason) -> SizingAnswer:
        stale = self._last_good.get(key)
        if stale is not None:
            self._metrics.cache_lookups.labels("sizing", "stale").inc()
            return stale
        return SizingAnswer(None, reason=reason)

    def push_token(self, identity: JobIdentity, deadline: Deadline, lifetime: float) -> TokenAnswer:
        """A push token for the job; cached ones only while they outlive `lifetime` seconds.

        `lifetime` is the job's timeout. A fresh token that dies sooner is still
        returned (nothing better exists) but not cached.
        """
        key = identity.cache_key()
        needed = lifetime + self._settings.token_refresh_margin_seconds
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at - self._clock() >= needed:
            self._metrics.cache_lookups.labels("token", "hit").inc()
            return cached
        self._metrics.cache_lookups.labels("token", "miss").inc()
        outcome = self._call(
            "token",
            "POST",
            f"{self._settings.sizer_url}/api/v1/token",
            token=self._settings.sizer_push_token,
            body=token_scope(identity),
            deadline=deadline,
        )
        if isinstance(outcome, Reason):
            return TokenAnswer(None, outcome)
        status, body = outcome
        token = body.get("token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str) or not token:
            return TokenAnswer(
                None, Reason.RECEIVER_ERROR if status != 200 else Reason.INVALID_ANSWER
            )
        validity = _expiry(body, time.time())
        answer = TokenAnswer(token, expires_at=self._clock() + validity)
        if validity >= needed:
            self._tokens[key] = answer
        return answer

    def _call(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        token: str,
        body: dict[str, str] | None,
        deadline: Deadline,
    ) -> tuple[int, Any] | Reason:
        """(status, parsed JSON or None) or why there is no answer; never raises."""
        budget = min(deadline.remaining(), self._settings.receiver_timeout_seconds)
        if budget <= 0.001:
            return Reason.TIMEOUT
        # From here on every path reports to the breaker: it may have granted its trial.
        if not self._breaker.allow():
            self._metrics.breaker_open.set(1)
            return Reason.BREAKER_OPEN
        started = self._clock()
        status_label = "error"
        outcome: tuple[int, Any] | Reason = Reason.RECEIVER_ERROR
        try:
            with gevent.Timeout(budget, _HardTimeoutError):
                response = self._send(method, url, token, body, budget)
                payload = _json_or_none(response)
            status_label = str(response.status_code)
            outcome = (response.status_code, payload)
        except (_HardTimeoutError, requests.Timeout):
            status_label, outcome = "timeout", Reason.TIMEOUT
        except Exception as error:  # e.g. OSError: the CA file is gone since start
            log.warning(
                "receiver call failed", extra={"endpoint": endpoint, "error": type(error).__name__}
            )
        finally:  # also when the greenlet is killed
            if isinstance(outcome, Reason) or outcome[0] >= 500:
                self._breaker.record_failure()
            else:
                self._breaker.record_success()
            self._metrics.receiver_seconds.labels(endpoint).observe(self._clock() - started)
        self._metrics.receiver_responses.labels(endpoint, status_label).inc()
        self._metrics.breaker_open.set(1 if self._breaker.is_open else 0)
        return outcome

    def _send(
        self, method: str, url: str, token: str, body: dict[str, str] | None, budget: float
    ) -> requests.Response:
        prepared = self._session.prepare_request(
            requests.Request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {token}"} if token else None,
            )
        )
        # requests re-quotes the URL and so decodes %2E: an encoded `..` segment would
        # go out as `..` and be collapsed by the next hop. `url` is encoded already.
        prepared.url = url
        environment = self._session.merge_environment_settings(url, {}, None, self._verify, None)
        return self._session.send(
            prepared,
            timeout=(budget, budget),
            allow_redirects=False,
            proxies=environment["proxies"],
            verify=environment["verify"],
        )


def sizing_url(base: str, identity: JobIdentity) -> str:
    """The sizing URL; the project id, when known, as the `project_id` query parameter."""
    url = f"{base}/api/v1/sizing/repo/{identity.receiver_path()}"
    return f"{url}?{urlencode({'project_id': identity.project_id})}" if identity.project_id else url


def token_scope(identity: JobIdentity) -> dict[str, str]:
    """The `TokenScope` body; `project_id` only when known."""
    scope = {
        "org": identity.org,
        "repo": identity.repo,
        "workflow": identity.workflow,
        "job": identity.job,
    }
    return scope | {"project_id": identity.project_id} if identity.project_id else scope


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
