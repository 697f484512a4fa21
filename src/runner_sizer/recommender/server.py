"""The gunicorn application: one gevent (pywsgi) worker holds the table and serves it.

One process, so one refresher and one copy of the table: a second worker would
double the queries and the memory; a replica more is the way to scale. Lookups
are a dictionary read, so gunicorn's own work per request is most of the cost.

Measured in one run, alternating, with vegeta at 1,000 sizing requests/s over
keep-alive on 2 cores shared with other work (load ~5): gthread (8 threads)
used 600-730 us of worker CPU per request (each request goes poller thread →
pool thread → poller thread), p99 6-17 ms; gevent with the post-request yield
and without gunicorn's access-log record (built per request though no handler
printed it) 340-380 us, p99 5-31 ms. In `make bench`, one connection's
sequential p99 went from 2.9 to 1.2 ms. On such a box p99 is set by the time the
worker waits for a CPU, which the CPU it needs per request shortens.

Since sizing answers skip Werkzeug (see app.py), gunicorn's own work is most of
what is left: sending headers and body in two sends (~30 % of the worker's busy
time in py-spy), parsing (~20 %), the environ. Tried alternately against it in
one run (load 8-13 from other work; worker CPU per request): gunicorn's C parser
(gunicorn[fast], gunicorn_h1c 0.6.9) 275-313 against 275-286 us, as the Python
header policy around it is most of the parse; TCP_CORK from the app to
post_request, one segment per answer, 278-314 against 281-343 us. gevent's pywsgi
server under gunicorn, with one write per answer and the yield, does less per
request (serving.py), so it serves here.

The refresh is CPU-bound for seconds (the first one for ~30 s): it runs in a
native thread, so the event loop and the worker's heartbeat go on meanwhile.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from runner_sizer.observability.logs import gunicorn_logging
from runner_sizer.recommender.settings import RecommenderSettings
from runner_sizer.serving import WORKER_CLASS

log = logging.getLogger(__name__)


def build_app(settings: RecommenderSettings) -> Any:
    """Services, the refresher thread and the WSGI app (in the worker, after fork)."""
    from runner_sizer.recommender.app import Services, create_app  # noqa: PLC0415
    from runner_sizer.recommender.metrics import build_metrics  # noqa: PLC0415
    from runner_sizer.recommender.prometheus import PrometheusClient  # noqa: PLC0415
    from runner_sizer.recommender.refresher import Refresher  # noqa: PLC0415
    from runner_sizer.webhook.watched import TokenSource  # noqa: PLC0415

    def token(path: Any) -> TokenSource | None:
        """A mounted token, its file looked at again at most once a second."""
        return None if path is None else TokenSource(path=path, recheck_after=1.0)

    metrics = build_metrics()
    client = PrometheusClient(
        settings.prometheus_url,
        timeout=settings.query_timeout,
        token=token(settings.prometheus_token_file),
        ca_file=settings.prometheus_ca_file,
    )

    class FrozenRefresher(Refresher):
        def refresh(self) -> None:
            """A refresh, then what it leaves (table, ledger) out of the collector's sight.

            With 60,000 runs held, a full collection took ~100 ms: a pause that every
            request waited out (max latency ~100 ms at 1,000/s). Frozen objects are
            still freed by their reference counts once a later table replaces them.
            """
            super().refresh()
            gc.collect()
            gc.freeze()

    refresher = FrozenRefresher(settings, client, metrics)
    import gevent  # noqa: PLC0415 - the worker has patched everything by now

    gevent.get_hub().threadpool.spawn(refresher.run)
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
            "worker_class": WORKER_CLASS,
            "worker_connections": 1000,
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
