"""The gunicorn application: one worker process holds the table; threads serve it.

One process, so one refresher and one copy of the table: a second worker would
double the queries and the memory. Lookups are a dictionary read, so threads
are enough; a replica more is the way to scale.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from runner_sizer.observability.logs import gunicorn_logging
from runner_sizer.recommender.settings import RecommenderSettings

log = logging.getLogger(__name__)


def build_app(settings: RecommenderSettings) -> Any:
    """Services, the refresher thread and the WSGI app (in the worker, after fork)."""
    from runner_sizer.recommender.app import Services, create_app  # noqa: PLC0415
    from runner_sizer.recommender.metrics import build_metrics  # noqa: PLC0415
    from runner_sizer.recommender.prometheus import PrometheusClient  # noqa: PLC0415
    from runner_sizer.recommender.refresher import Refresher  # noqa: PLC0415
    from runner_sizer.webhook.watched import TokenSource  # noqa: PLC0415

    def token(path: Any) -> TokenSource | None:
        return None if path is None else TokenSource(path=path)

    metrics = build_metrics()
    client = PrometheusClient(
        settings.prometheus_url,
        timeout=settings.query_timeout,
        token=token(settings.prometheus_token_file),
        ca_file=settings.prometheus_ca_file,
    )
    refresher = Refresher(settings, client, metrics).start()
    return create_app(Services(refresher, metrics, token(settings.read_token_file)))


class RecommenderServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: RecommenderSettings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        host = f"[{settings.listen_host}]" if ":" in settings.listen_host else settings.listen_host
        options: dict[str, Any] = {
            "bind": [f"{host}:{settings.listen_port}"],
            "workers": 1,
            "worker_class": "gthread",
            "threads": settings.threads,
            "keepalive": 120,
            # A refresh runs in its own thread: the worker's heartbeat goes on meanwhile.
            "timeout": 30,
            "graceful_timeout": 5,
            "when_ready": self._when_ready,
            **gunicorn_logging(settings.log_level),
            "worker_tmp_dir": settings.worker_tmp_dir,
            "proc_name": "runner-sizer-recommender",
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def _when_ready(self, _arbiter: Any) -> None:
        log.info(
            "recommender ready",
            extra={
                "listen": f"{self.settings.listen_host}:{self.settings.listen_port}",
                "settings": repr(self.settings),
            },
        )

    def load(self) -> Any:
        return build_app(self.settings)
