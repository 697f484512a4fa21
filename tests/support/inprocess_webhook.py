"""A webhook served from the test process over TLS on loopback, for the apiserver to call."""

from __future__ import annotations

import ssl
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.webhooks import apply_mutating_webhook, url_webhook_configuration
from runner_sizer.kube.client import KubeClient


class SwitchableApp:
    """A WSGI app whose inner app (and so its settings) may be replaced between requests."""

    def __init__(self, current: Any = None) -> None:
        self.current = current

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.current(environ, start_response)


def serve_tls(app: Any, ca: CertificateAuthority) -> BaseWSGIServer:
    """Serve `app` on 127.0.0.1 (a free port) with a certificate from `ca`."""
    pair = ca.serving("in-process-webhook")
    directory = Path(tempfile.mkdtemp(prefix="runner-sizer-webhook-"))
    cert, key = pair.write(directory, "serving")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def register_fail_closed(
    kube: KubeClient,
    server: BaseWSGIServer,
    ca: CertificateAuthority,
    *,
    namespace_selector: dict[str, Any],
    object_selector: dict[str, Any] | None = None,
) -> str:
    """Register the served webhook with `failurePolicy: Fail`, so a crash or a timeout
    shows as a refused pod; returns the configuration's name."""
    name = f"in-process-{uuid.uuid4().hex[:6]}"
    manifest = url_webhook_configuration(
        name,
        f"https://127.0.0.1:{server.server_port}/mutate",
        ca.cert_pem,
        namespace_selector=namespace_selector,
        object_selector=object_selector,
        failure_policy="Fail",
    )
    apply_mutating_webhook(kube, manifest)
    return name
