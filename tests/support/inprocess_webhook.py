"""A webhook served from the test process over TLS on loopback, for the apiserver to call."""

from __future__ import annotations

import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from runner_sizer.devcluster.pki import CertificateAuthority


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
