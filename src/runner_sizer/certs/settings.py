"""The webhook's flags for a certificate kept in a Secret, and for keeping it."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from runner_sizer.certs.plan import Policy
from runner_sizer.options import Option, OptionError, setting

_DURATION = re.compile(r"^([0-9]+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def duration(value: str) -> datetime.timedelta:
    match = _DURATION.match(value.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(f"{value!r} is not a positive duration such as 60s, 30m, 12h or 90d")
    return datetime.timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class SecretRef:
    namespace: str
    name: str

    @property
    def collection(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/secrets"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def secret_ref(value: str) -> SecretRef:
    namespace, _, name = value.partition("/")
    if not (_DNS_SUBDOMAIN.match(namespace) and _DNS_SUBDOMAIN.match(name)):
        raise ValueError(f"{value!r} is not NAMESPACE/NAME")
    return SecretRef(namespace, name)


def _configuration_name(value: str) -> str:
    if value and not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a MutatingWebhookConfiguration name")
    return value


@dataclass(frozen=True)
class Management:
    """Keep `secret` (CA, serving certificate, bundle) and `configuration`'s caBundle."""

    secret: SecretRef
    configuration: str
    policy: Policy
    identity: str


OPTIONS: list[Option] = [
    (
        "tls-secret",
        secret_ref,
        None,
        "serve the tls.crt/tls.key of this Secret (NAMESPACE/NAME), followed through a watch; "
        "instead of --tls-cert-file/--tls-key-file",
    ),
    (
        "tls-manage-webhook",
        _configuration_name,
        "",
        "keep a CA and serving certificate in --tls-secret and this "
        "MutatingWebhookConfiguration's caBundle (one pod at a time, by a Lease named "
        "after the Secret)",
    ),
    ("tls-ca-validity", duration, "365d", "lifetime of the kept CA; renewed with a third left"),
    (
        "tls-cert-validity",
        duration,
        "90d",
        "lifetime of the kept serving certificate (at most --tls-ca-validity)",
    ),
    (
        "tls-overlap",
        duration,
        "60s",
        "how long a new caBundle, then a new serving certificate, stays in place before "
        "a CA rotation takes its next step",
    ),
]


def management(values: dict[str, Any], prefix: str, identity: str) -> Management | None:
    """The kept-certificate settings, or None; raises OptionError naming a bad one."""
    configuration: str = values["tls_manage_webhook"]
    if not configuration:
        return None
    secret: SecretRef | None = values["tls_secret"]
    if secret is None:
        raise OptionError(f"{setting(prefix, 'tls-manage-webhook')}: needs --tls-secret")
    policy = Policy(values["tls_ca_validity"], values["tls_cert_validity"], values["tls_overlap"])
    if policy.cert_validity > policy.ca_validity:
        raise OptionError(f"{setting(prefix, 'tls-cert-validity')}: longer than --tls-ca-validity")
    # A CA rotation takes two overlaps, all within the last third of the CA's life.
    if policy.overlap * 6 >= policy.cert_validity:
        raise OptionError(
            f"{setting(prefix, 'tls-overlap')}: must be under a sixth of --tls-cert-validity"
        )
    return Management(secret, configuration, policy, identity)
