"""A server TLS context fed by a watch on one Secret (`--tls-secret`).

Imported in the worker only, after gevent's monkey-patching (it pulls in requests).
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from runner_sizer.certs.authority import Pair
from runner_sizer.certs.secret_data import SERVING, pair_from
from runner_sizer.certs.settings import SecretRef
from runner_sizer.kube.client import JSON, KubeClient
from runner_sizer.kube.informer import ListWatch
from runner_sizer.webhook.tls import server_context

log = logging.getLogger(__name__)


def memory_context(pair: Pair, scratch: Path) -> ssl.SSLContext:
    """`server_context` for a pair held in memory.

    `load_cert_chain` reads only files: the pair passes through a private
    file in `scratch` (a tmpfs in the pod) that is gone before this returns.
    """
    descriptor, name = tempfile.mkstemp(dir=scratch, suffix=".pem")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pair.key_pem + pair.cert_pem)
        return server_context(Path(name), Path(name))
    finally:
        os.unlink(name)


FIRST_PAIR_WAIT = 5.0
# The earliest end among the live workers: what an alert on a stalled renewal needs.
SERVING_EXPIRY = Gauge(
    "runner_sizer_webhook_serving_certificate_expiry_timestamp_seconds",
    "When the certificate this worker serves from --tls-secret expires (unix seconds).",
    multiprocess_mode="livemin",
)


class SecretServerContext:
    """Quacks like `ssl.SSLContext.wrap_socket`, serving the pair a Secret watch delivers.

    No mount: a watch event reaches the pod in milliseconds, where the kubelet
    refreshes a mounted Secret within a minute or more (and the test cluster
    has no kubelet). Under gevent the watch is a greenlet and a connection that
    arrives before the first pair waits for it cooperatively, then gives up.
    """

    def __init__(self, secret: SecretRef, connect: Callable[[], KubeClient], scratch: Path) -> None:
        self._secret, self._scratch = secret, scratch
        self._context: ssl.SSLContext | None = None
        self._serial: int | None = None
        self._first = threading.Event()
        self.watch = ListWatch(
            connect=connect,
            path=secret.collection,
            params={"fieldSelector": f"metadata.name={secret.name}"},
            on_list=lambda items: self._changed(items[0] if items else {}),
            on_event=lambda kind, obj: self._changed({} if kind == "DELETED" else obj),
        )

    def start(self) -> SecretServerContext:
        self.watch.start(f"tls-secret-{self._secret.name}")
        return self

    def _changed(self, secret: JSON) -> None:
        pair = pair_from(secret.get("data") or {}, SERVING)
        if pair is None:
            if self._context is not None:
                log.warning(
                    "keeping previous serving certificate", extra={"secret": str(self._secret)}
                )
            return
        if pair.cert.serial_number == self._serial:
            return
        try:
            self._context = memory_context(pair, self._scratch)
        except (OSError, ssl.SSLError) as error:
            log.warning("keeping previous serving certificate", extra={"error": str(error)})
            return
        self._serial = pair.cert.serial_number
        SERVING_EXPIRY.set(pair.cert.not_valid_after_utc.timestamp())
        self._first.set()
        log.info("serving certificate loaded", extra={"secret": str(self._secret)})

    def wrap_socket(self, sock: Any, **kwargs: Any) -> Any:
        context = self._context
        if context is None and self._first.wait(FIRST_PAIR_WAIT):
            context = self._context
        if context is None:
            raise ssl.SSLError(f"no serving certificate in Secret {self._secret} yet")
        return context.wrap_socket(sock, **kwargs)
