"""The certificate keeper as its own process, started by the webhook's gunicorn master.

Its own process, not a thread of the master: the master must not import
requests before gevent patches the workers it forks, and a keeper that dies
is restarted without touching the workers. It reads the webhook's own flags.
"""

from __future__ import annotations

import signal
import sys

from runner_sizer.certs.keeper import CertificateKeeper
from runner_sizer.kube.client import KubeClient
from runner_sizer.observability.logs import configure_logging
from runner_sizer.webhook.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    settings = load_settings(sys.argv[1:] if argv is None else argv)
    if settings.tls_management is None:
        return 2
    configure_logging(settings.log_level)
    keeper = CertificateKeeper(
        settings.tls_management, KubeClient.from_kubeconfig(settings.kubeconfig)
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: keeper.stop.set())
    keeper.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
