"""A client for the instant-query endpoint of any Prometheus-compatible HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from runner_sizer.webhook.watched import TokenSource


class PrometheusError(RuntimeError):
    """The API could not answer; the message is safe to log (no credentials)."""


class PrometheusClient:
    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        token: TokenSource | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self._endpoint = f"{url}/api/v1/query"
        self._timeout = timeout
        self._token = token
        self._session = requests.Session()
        if ca_file is not None:
            self._session.verify = str(ca_file)
        self.queries = 0

    def query(self, expression: str, at: float) -> list[Any]:
        """An instant vector at `at`, sent by POST (long expressions fit no URL)."""
        headers = {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.current()}"
        form = {"query": expression, "time": f"{at:.3f}", "timeout": f"{self._timeout:g}s"}
        self.queries += 1
        try:
            response = self._session.post(
                self._endpoint, data=form, headers=headers, timeout=self._timeout + 5
            )
            body = response.json()
        except requests.RequestException as error:
            raise PrometheusError(f"{type(error).__name__}: {error}"[:300]) from None
        except ValueError:
            raise PrometheusError(f"HTTP {response.status_code}: not JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error", "") if isinstance(body, dict) else ""
            kind = body.get("errorType", "") if isinstance(body, dict) else ""
            raise PrometheusError(f"HTTP {response.status_code} {kind}: {detail}"[:300])
        data = body.get("data") or {}
        if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise PrometheusError(f"expected a vector, got {data.get('resultType')!r}")
        result: list[Any] = data["result"]
        return result
