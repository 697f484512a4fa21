"""What to change in the stored CA, serving certificate and trust bundle, and when.

One step at a time, each safe on its own, so an apiserver never meets a serving
certificate its caBundle does not trust:

1. nothing usable stored: a new CA, a serving certificate it signs, a bundle of it;
2. the CA nears its end: a next CA joins the bundle (serving unchanged);
3. once the webhook configuration has carried that bundle for the overlap: the
   next CA becomes the signer and signs a new serving certificate;
4. once that certificate has been stored for the overlap (webhook pods follow the
   Secret in well under that): the old CA leaves the bundle.

A serving certificate is re-issued when it nears its end (unless step 3 is due
anyway), names other hosts than the configuration dials, or was not signed by
the signer.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace

from cryptography import x509

from runner_sizer.certs.authority import (
    Pair,
    hosts_of,
    issue_serving,
    new_ca,
    remaining,
    signed_by,
)

# Renew when a third of the lifetime is left, as cert-manager does by default.
RENEW_WHEN_LEFT = 1 / 3
SLACK = datetime.timedelta(minutes=1)


@dataclass(frozen=True)
class Policy:
    ca_validity: datetime.timedelta
    cert_validity: datetime.timedelta
    overlap: datetime.timedelta
    common_name: str = "runner-sizer-webhook-ca"


@dataclass(frozen=True)
class TlsState:
    signer: Pair | None = None
    next_signer: Pair | None = None
    serving: Pair | None = None
    trusted: tuple[bytes, ...] = ()  # PEM CAs the webhook configuration should trust

    @property
    def bundle(self) -> bytes:
        return b"".join(self.trusted)


@dataclass(frozen=True)
class Observed:
    """How long things have been in place, as this process has seen them."""

    # The webhook configuration has carried exactly the state's bundle (None: it does not).
    bundle_age: datetime.timedelta | None
    # The stored serving certificate has been in the Secret.
    serving_age: datetime.timedelta


@dataclass(frozen=True)
class Step:
    state: TlsState
    reasons: tuple[str, ...]


def _usable_ca(pair: Pair | None, now: datetime.datetime) -> Pair | None:
    if pair is None or remaining(pair.cert, now) <= datetime.timedelta(0):
        return None
    return pair


def _due(pair: Pair, validity: datetime.timedelta, now: datetime.datetime) -> bool:
    """A third of the lifetime left, or more than a whole one: a shortened validity
    (to force a rotation, or a stricter policy) applies at once."""
    left = remaining(pair.cert, now)
    return left < validity * RENEW_WHEN_LEFT or left > validity + SLACK


def _serving_problem(
    state: TlsState, signer: Pair, hosts: tuple[str, ...], now: datetime.datetime, policy: Policy
) -> str:
    serving = state.serving
    if serving is None or remaining(serving.cert, now) <= datetime.timedelta(0):
        return "no serving certificate"
    if not signed_by(serving.cert, signer.cert):
        return "serving certificate not signed by the CA"
    if hosts_of(serving.cert) != frozenset(hosts):
        return "serving certificate names other hosts"
    # While a next CA is pending, its promotion brings a new serving certificate.
    if state.next_signer is None and _due(serving, policy.cert_validity, now):
        return "serving certificate renewed"
    return ""


def _fresh(hosts: tuple[str, ...], now: datetime.datetime, policy: Policy) -> TlsState:
    ca = new_ca(policy.common_name, now, policy.ca_validity)
    return TlsState(ca, None, issue_serving(ca, hosts, now, policy.cert_validity), (ca.cert_pem,))


def _alive(pem: bytes, now: datetime.datetime) -> bool:
    try:
        return remaining(x509.load_pem_x509_certificate(pem), now) > datetime.timedelta(0)
    except ValueError:
        return False


def plan(
    state: TlsState,
    hosts: tuple[str, ...],
    now: datetime.datetime,
    policy: Policy,
    observed: Observed,
) -> Step | None:
    """The next state, or None when nothing is due."""
    signer = _usable_ca(state.signer, now)
    if signer is None:
        return Step(_fresh(hosts, now, policy), ("issued a new CA",))
    nxt = _usable_ca(state.next_signer, now)
    trusted = [c for c in state.trusted if _alive(c, now)]
    for ca in (signer, nxt):
        if ca is not None and ca.cert_pem not in trusted:
            trusted.append(ca.cert_pem)
    reasons = [] if tuple(trusted) == state.trusted else ["bundle repaired"]
    # Only a bundle the configuration has carried for the overlap is known to be trusted.
    settled = (
        not reasons and observed.bundle_age is not None and observed.bundle_age >= policy.overlap
    )
    serving = state.serving
    if nxt is not None and settled:
        signer, nxt = nxt, None
        serving = issue_serving(signer, hosts, now, policy.cert_validity)
        reasons.append("serving from the next CA")
    elif nxt is None and _due(signer, policy.ca_validity, now):
        nxt = new_ca(policy.common_name, now, policy.ca_validity)
        trusted.append(nxt.cert_pem)
        reasons.append("next CA added to the bundle")
    elif (
        len(trusted) > (1 if nxt is None else 2)
        and observed.serving_age >= policy.overlap
        and serving is not None
        and signed_by(serving.cert, signer.cert)
    ):
        keep = {signer.cert_pem, nxt.cert_pem if nxt else b""}
        trusted = [c for c in trusted if c in keep]
        reasons.append("old CA removed from the bundle")
    new = TlsState(signer, nxt, serving, tuple(trusted))
    if problem := _serving_problem(new, signer, hosts, now, policy):
        new = replace(new, serving=issue_serving(signer, hosts, now, policy.cert_validity))
        reasons.append(problem)
    return Step(new, tuple(reasons)) if reasons else None
