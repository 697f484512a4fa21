"""`runner-sizer-webhook`: validate settings, then serve."""

from __future__ import annotations

import os
import sys

from runner_sizer.kube.kubeconfig import kubeconfig_problem
from runner_sizer.observability.logs import configure_logging
from runner_sizer.observability.multiproc import multiprocess_dir
from runner_sizer.options import setting
from runner_sizer.webhook.settings import ENV_PREFIX, SettingsError, WebhookSettings, load_settings
from runner_sizer.webhook.tls import pair_problem


def check_environment(settings: WebhookSettings) -> None:
    """What settings parsing cannot see: the serving pair and the Kubernetes credentials."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if settings.tls_secret is None and (cert is None or key is None):
        raise SettingsError(
            f"{setting(ENV_PREFIX, 'tls-cert-file')} or {setting(ENV_PREFIX, 'tls-secret')}: "
            "required for HTTPS"
        )
    problem = pair_problem(cert, key) if cert and key else None
    if problem:
        raise SettingsError(
            f"{setting(ENV_PREFIX, 'tls-cert-file')}/{setting(ENV_PREFIX, 'tls-key-file')}: "
            f"{problem}"
        )
    if settings.needs_kubernetes and (
        problem := kubeconfig_problem(settings.kubeconfig, os.environ)
    ):
        remedy = (
            " (--tls-secret reads the certificate through the API)"
            if settings.tls_secret
            else ", or turn off affinity (--enable-affinity=false) and namespace rules "
            "(--watch-namespace-rules=false)"
        )
        raise SettingsError(f"{setting(ENV_PREFIX, 'kubeconfig')}: {problem}{remedy}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = load_settings(args)
        check_environment(settings)
    except SettingsError as error:
        print(f"runner-sizer-webhook: invalid configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    with multiprocess_dir():
        from runner_sizer.webhook.server import WebhookServer  # noqa: PLC0415 - after the dir

        WebhookServer(settings, args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
