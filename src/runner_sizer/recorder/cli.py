"""`runner-sizer-recorder`: validate settings, serve probes and metrics, record."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runner_sizer.kube.client import KubeClient
from runner_sizer.kube.kubeconfig import KubeConfigError
from runner_sizer.observability.logs import configure_logging
from runner_sizer.options import OptionError, setting
from runner_sizer.recorder.metrics import build_metrics
from runner_sizer.recorder.service import Recorder
from runner_sizer.recorder.settings import ENV_PREFIX, load_settings

log = logging.getLogger(__name__)


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(recorder.metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._json(200, {"status": "ok"})
            elif self.path == "/readyz":
                problem = recorder.readiness_problem()
                self._json(
                    503 if problem else 200,
                    {"status": "not ready", "reason": problem} if problem else {"status": "ready"},
                )
            else:
                self._json(404, {"error": "not found"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
        try:
            kube = KubeClient.from_kubeconfig(settings.kubeconfig)
        except KubeConfigError as error:
            raise OptionError(f"{setting(ENV_PREFIX, 'kubeconfig')}: {error}") from None
    except OptionError as error:
        print(f"runner-sizer-recorder: invalid configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    recorder = Recorder(settings, kube, build_metrics())
    server = ThreadingHTTPServer((settings.listen_host, settings.listen_port), _handler(recorder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    log.info("recorder starting", extra={"settings": repr(settings)})
    threading.Thread(target=recorder.start, daemon=True).start()
    stopping.wait()
    recorder.stop()
    server.shutdown()
    log.info("recorder stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
