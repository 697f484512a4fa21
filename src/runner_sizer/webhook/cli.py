"""`runner-sizer-webhook`: validate settings, then serve."""

from __future__ import annotations

import sys

from runner_sizer.observability.logs import configure_logging
from runner_sizer.observability.multiproc import prepare_multiprocess_dir
from runner_sizer.webhook.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
        if settings.tls_cert_file is None:
            raise SettingsError("--tls-cert-file (WEBHOOK_TLS_CERT_FILE): required for HTTPS")
    except SettingsError as error:
        print(f"runner-sizer-webhook: invalid configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    prepare_multiprocess_dir()
    from runner_sizer.webhook.server import WebhookServer  # noqa: PLC0415 - imports prometheus_client

    WebhookServer(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
