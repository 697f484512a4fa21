"""The webhook serves the pair of a Secret it watches (`--tls-secret`), with no mount."""

from __future__ import annotations

import base64
import datetime
import re
from pathlib import Path

import requests

from runner_sizer.certs.authority import Pair, issue_serving, new_ca
from runner_sizer.devcluster.pki import CertificateAuthority
from runner_sizer.devcluster.webhook_process import NO_KUBERNETES, WebhookProcess
from tests.e2e.conftest import ClusterUnderTest
from tests.support.kube import wait_for

HOUR = datetime.timedelta(hours=1)


def _signed_pair() -> tuple[Pair, Pair]:
    now = datetime.datetime.now(datetime.UTC)
    ca = new_ca("test-secret-ca", now, HOUR)
    return ca, issue_serving(ca, ("127.0.0.1",), now, HOUR)


def _data(pair: Pair) -> dict[str, str]:
    return {
        "tls.crt": base64.b64encode(pair.cert_pem).decode(),
        "tls.key": base64.b64encode(pair.key_pem).decode(),
    }


def _trusted_by(url: str, ca: Pair, tmp_path: Path) -> bool:
    bundle = tmp_path / f"{ca.cert.serial_number}.crt"
    bundle.write_bytes(ca.cert_pem)
    try:
        return requests.get(f"{url}/healthz", verify=str(bundle), timeout=5).ok
    except requests.exceptions.SSLError:
        return False


def _served_expiry(metrics_url: str) -> float | None:
    text = requests.get(metrics_url, timeout=5).text
    found = re.search(
        r"^runner_sizer_webhook_serving_certificate_expiry_timestamp_seconds (\S+)$",
        text,
        re.MULTILINE,
    )
    return float(found[1]) if found else None


def test_serves_the_secrets_pair_and_follows_its_updates(
    cluster: ClusterUnderTest, namespace: str, tmp_path: Path
) -> None:
    secrets = f"/api/v1/namespaces/{namespace}/secrets"
    first_ca, first = _signed_pair()
    cluster.kube.post(secrets, {"metadata": {"name": "serving"}, "data": _data(first)})
    webhook = WebhookProcess(
        CertificateAuthority(),
        extra_args=[*NO_KUBERNETES, f"--kubeconfig={cluster.kubeconfig}"],
        tls_secret=f"{namespace}/serving",
    )
    webhook.start()
    try:
        assert _trusted_by(webhook.url, first_ca, tmp_path)
        second_ca, second = _signed_pair()
        cluster.kube.put(
            f"{secrets}/serving", {"metadata": {"name": "serving"}, "data": _data(second)}
        )
        wait_for(
            lambda: _trusted_by(webhook.url, second_ca, tmp_path),
            timeout=10,
            what="the updated pair to be served",
        )
        assert not _trusted_by(webhook.url, first_ca, tmp_path)
        expiry = second.cert.not_valid_after_utc.timestamp()
        wait_for(
            lambda: _served_expiry(webhook.metrics_url) == expiry,
            timeout=10,
            what="the expiry gauge of the new pair",
        )
        # A half-written or broken Secret keeps the last good pair in service.
        broken = {"tls.crt": _data(second)["tls.crt"], "tls.key": _data(first)["tls.key"]}
        cluster.kube.put(f"{secrets}/serving", {"metadata": {"name": "serving"}, "data": broken})
        cluster.kube.delete(f"{secrets}/serving")
        assert _trusted_by(webhook.url, second_ca, tmp_path)
        assert webhook.process.running
        assert "keeping previous serving certificate" in webhook.process.log_tail()
    finally:
        webhook.stop()
