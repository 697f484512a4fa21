"""The gunicorn application: gevent workers over TLS, /metrics from the master.

gevent workers keep connections alive, do each TLS handshake in the
connection's own greenlet and bound receiver calls with gevent.Timeout.
Measured with wrk over 8 TLS connections: gthread (8 threads) 1,561/s at
p99 9.4 ms; gevent with a yield after each request 4,250/s at p99 6.8 ms.
The workers serve on gevent's pywsgi (serving.py), which does less per request
than gunicorn's own gevent worker.
Heavy imports (requests, ssl users) happen in the worker, after gevent's
monkey-patching.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from gunicorn.app.base import BaseApplication
from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from runner_sizer.observability.logs import gunicorn_logging
from runner_sizer.serving import WORKER_CLASS, freeze_when_ready
from runner_sizer.webhook.keeper_child import KeeperChild
from runner_sizer.webhook.settings import WebhookSettings

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from runner_sizer.webhook.app import Services

log = logging.getLogger(__name__)


def _build_services(settings: WebhookSettings) -> Services:
    from runner_sizer.kube.client import KubeClient  # noqa: PLC0415 - after monkey-patching
    from runner_sizer.webhook.app import Services  # noqa: PLC0415
    from runner_sizer.webhook.history_view import HistoryView  # noqa: PLC0415
    from runner_sizer.webhook.metrics import build_metrics  # noqa: PLC0415
    from runner_sizer.webhook.namespace_view import NamespaceView  # noqa: PLC0415
    from runner_sizer.webhook.receiver import ReceiverClient  # noqa: PLC0415
    from runner_sizer.webhook.shedding import HubWait, Shedder  # noqa: PLC0415

    def connect() -> KubeClient:
        return KubeClient.from_kubeconfig(settings.kubeconfig)

    metrics = build_metrics(None)
    receiver = ReceiverClient(settings, metrics) if settings.sizer_url else None
    history = None
    if settings.enable_affinity:
        history = HistoryView(
            connect, settings.history_namespace, settings.history_configmap, metrics
        )
        history.start()
    namespaces = None
    if settings.needs_namespace_rules:
        namespaces = NamespaceView(connect)
        namespaces.start()
    shedder = None
    if settings.shed_after_seconds > 0:
        shedder = Shedder(settings.shed_after_seconds, HubWait())
    return Services(settings, metrics, receiver, history, namespaces, shedder)


class WebhookServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: WebhookSettings, argv: list[str] | None = None) -> None:
        """`argv`: the flags `settings` came from, for the certificate keeper child."""
        self.settings = settings
        self.keeper = KeeperChild(argv or []) if settings.tls_management else None
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        options: dict[str, Any] = {
            "bind": [f"{_bracket(settings.listen_host)}:{settings.listen_port}"],
            "workers": settings.workers,
            "worker_class": WORKER_CLASS,
            "worker_connections": 1000,
            # Longer than the apiserver's idle-connection timeout (90 s).
            "keepalive": 120,
            "timeout": 30,
            # An admission never outlives its deadline (< 5 s): draining needs no more.
            "graceful_timeout": 5,
            # gunicorn serves TLS only with a certfile set; with --tls-secret the
            # context ignores it (os.devnull only passes gunicorn's existence check).
            "certfile": str(settings.tls_cert_file or os.devnull),
            "keyfile": str(settings.tls_key_file or os.devnull),
            "ssl_context": self._ssl_context,
            "child_exit": _child_exit,
            "when_ready": self._when_ready,
            "on_exit": self._on_exit,
            **gunicorn_logging(settings.log_level),
            "worker_tmp_dir": settings.worker_tmp_dir,
            "proc_name": "runner-sizer-webhook",
            # Runtime management is not needed, and it would write under $HOME.
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def _on_exit(self, _arbiter: Any) -> None:
        if self.keeper is not None:
            self.keeper.stop()

    def _when_ready(self, _arbiter: Any) -> None:
        if self.keeper is not None:
            self.keeper.start()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(self.settings.metrics_port, self.settings.metrics_host, registry=registry)
        log.info(
            "webhook ready",
            extra={
                "listen": f"{self.settings.listen_host}:{self.settings.listen_port}",
                "metrics_port": self.settings.metrics_port,
                "settings": repr(self.settings),
            },
        )

    def _ssl_context(self, config: Any, _default_factory: Any) -> Any:
        """Per worker, after gevent's monkey-patching."""
        from runner_sizer.kube.client import KubeClient  # noqa: PLC0415
        from runner_sizer.webhook.tls import ReloadingServerContext  # noqa: PLC0415
        from runner_sizer.webhook.tls_secret import SecretServerContext  # noqa: PLC0415

        secret = self.settings.tls_secret
        if secret is None:
            return ReloadingServerContext(Path(config.certfile), Path(config.keyfile))
        kubeconfig = self.settings.kubeconfig
        scratch = Path(self.settings.worker_tmp_dir or tempfile.gettempdir())
        return SecretServerContext(
            secret, lambda: KubeClient.from_kubeconfig(kubeconfig), scratch
        ).start()

    def load(self) -> WSGIApplication:
        from runner_sizer.webhook.app import create_app  # noqa: PLC0415

        services = _build_services(self.settings)
        gevent.spawn(freeze_when_ready, services.readiness_problem)
        return create_app(services)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _child_exit(_server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
