"""The in-cluster CA's pure core: issue, rotate, bundle, SANs, Secret data."""

from __future__ import annotations

import datetime

from cryptography import x509

from runner_sizer.certs.authority import hosts_of, signed_by, split_pem
from runner_sizer.certs.hosts import hosts_for
from runner_sizer.certs.keeper import FirstSeen, carried_bundle, with_bundle
from runner_sizer.certs.plan import Observed, Policy, TlsState, plan
from runner_sizer.certs.secret_data import decode, encode

DAY = datetime.timedelta(days=1)
OVERLAP = datetime.timedelta(seconds=60)
POLICY = Policy(ca_validity=90 * DAY, cert_validity=30 * DAY, overlap=OVERLAP)
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
HOSTS = ("127.0.0.1",)
SETTLED = Observed(bundle_age=OVERLAP, serving_age=OVERLAP)
JUST_NOW = Observed(bundle_age=None, serving_age=datetime.timedelta(0))


def fresh() -> TlsState:
    step = plan(TlsState(), HOSTS, T0, POLICY, JUST_NOW)
    assert step is not None
    return step.state


def test_nothing_stored_issues_a_ca_a_serving_certificate_and_a_bundle_of_it() -> None:
    state = fresh()
    assert state.signer is not None and state.serving is not None and state.next_signer is None
    assert state.trusted == (state.signer.cert_pem,)
    assert signed_by(state.serving.cert, state.signer.cert)
    assert hosts_of(state.serving.cert) == {"127.0.0.1"}
    assert state.serving.cert.not_valid_after_utc == T0 + POLICY.cert_validity


def test_nothing_is_due_the_next_day() -> None:
    assert plan(fresh(), HOSTS, T0 + DAY, POLICY, SETTLED) is None


def test_other_hosts_reissue_the_serving_certificate_from_the_same_ca() -> None:
    state = fresh()
    step = plan(state, ("rs-webhook", "rs-webhook.ns.svc"), T0, POLICY, SETTLED)
    assert step is not None and step.state.signer == state.signer
    assert step.state.serving is not None and step.state.serving != state.serving
    assert hosts_of(step.state.serving.cert) == {"rs-webhook", "rs-webhook.ns.svc"}
    assert step.state.trusted == state.trusted


def test_a_due_serving_certificate_is_renewed_without_touching_the_bundle() -> None:
    state = fresh()
    step = plan(state, HOSTS, T0 + 21 * DAY, POLICY, SETTLED)
    assert step is not None and step.reasons == ("serving certificate renewed",)
    assert step.state.trusted == state.trusted and step.state.signer == state.signer


def test_ca_rotation_waits_for_the_published_bundle_and_for_the_serving_certificate() -> None:
    renewed = plan(fresh(), HOSTS, T0 + 55 * DAY, POLICY, SETTLED)
    assert renewed is not None
    state = renewed.state
    later = T0 + 61 * DAY  # under a third of 90 days left
    added = plan(state, HOSTS, later, POLICY, SETTLED)
    assert added is not None and added.reasons == ("next CA added to the bundle",)
    assert added.state.serving == state.serving, "serving stays until the bundle is out"
    assert added.state.next_signer is not None
    assert added.state.trusted == (state.signer.cert_pem, added.state.next_signer.cert_pem)  # type: ignore[union-attr]
    # The configuration does not carry the new bundle yet, or not for long enough.
    assert plan(added.state, HOSTS, later, POLICY, JUST_NOW) is None
    young = Observed(bundle_age=OVERLAP / 2, serving_age=OVERLAP)
    assert plan(added.state, HOSTS, later, POLICY, young) is None
    promoted = plan(added.state, HOSTS, later, POLICY, SETTLED)
    assert promoted is not None and promoted.state.signer == added.state.next_signer
    assert promoted.state.serving is not None
    assert signed_by(promoted.state.serving.cert, added.state.next_signer.cert)
    assert promoted.state.trusted == added.state.trusted, "both CAs stay trusted"
    # The old CA goes once the new serving certificate has been stored for the overlap.
    assert plan(promoted.state, HOSTS, later, POLICY, JUST_NOW) is None
    dropped = plan(promoted.state, HOSTS, later, POLICY, SETTLED)
    assert dropped is not None and dropped.reasons == ("old CA removed from the bundle",)
    assert dropped.state.trusted == (added.state.next_signer.cert_pem,)


def test_every_serving_certificate_is_trusted_by_the_bundle_published_before_it() -> None:
    """Minute by minute over 120 days: the apiserver sees each bundle only one step late."""
    policy = Policy(ca_validity=10 * DAY, cert_validity=4 * DAY, overlap=OVERLAP)
    state, published, since = TlsState(), b"", T0
    now, rotations = T0, 0
    while now < T0 + 120 * DAY:
        age = now - since if published == state.bundle else None
        step = plan(state, HOSTS, now, policy, Observed(age, OVERLAP))
        if step is not None:
            if state.serving is not None:
                assert step.state.serving is not None
                # The configuration still carries the old bundle when the new serving cert lands.
                trusted = [x509.load_pem_x509_certificate(c) for c in split_pem(published)]
                assert any(signed_by(step.state.serving.cert, ca) for ca in trusted), step.reasons
            rotations += "serving from the next CA" in step.reasons
            state = step.state
        if published != state.bundle:
            published, since = state.bundle, now
            now += datetime.timedelta(seconds=1)  # the patch lands a moment later
        else:
            now += datetime.timedelta(hours=1)
    assert rotations >= 10


def test_an_expired_ca_starts_over() -> None:
    step = plan(fresh(), HOSTS, T0 + 91 * DAY, POLICY, SETTLED)
    assert step is not None and step.reasons == ("issued a new CA",)


def test_the_serving_certificate_never_outlives_its_ca() -> None:
    policy = Policy(ca_validity=10 * DAY, cert_validity=10 * DAY, overlap=OVERLAP)
    state = plan(TlsState(), HOSTS, T0, policy, JUST_NOW).state  # type: ignore[union-attr]
    step = plan(state, ("other",), T0 + 5 * DAY, policy, SETTLED)
    assert step is not None and step.state.serving is not None
    assert step.state.serving.cert.not_valid_after_utc == T0 + 10 * DAY


def test_secret_data_round_trips_and_garbage_reads_as_nothing() -> None:
    state = fresh()
    assert decode(encode(state)) == state
    assert decode({"tls.crt": "not base64!", "tls.key": "", "ca.crt": "AAAA"}) == TlsState()
    assert decode(None) == TlsState()
    swapped = encode(state)
    swapped["tls.key"] = swapped["ca-signer.key"]
    assert decode(swapped).serving is None


def test_hosts_follow_the_client_config() -> None:
    service = {
        "webhooks": [{"clientConfig": {"service": {"name": "rs-webhook", "namespace": "ns"}}}]
    }
    assert hosts_for(service) == (
        "rs-webhook",
        "rs-webhook.ns",
        "rs-webhook.ns.svc",
        "rs-webhook.ns.svc.cluster.local",
    )
    url = {"webhooks": [{"clientConfig": {"url": "https://127.0.0.1:8443/mutate"}}]}
    assert hosts_for(url) == ("127.0.0.1",)
    assert hosts_for({}) == ()


def test_a_shortened_validity_rotates_the_ca_at_once() -> None:
    shorter = Policy(ca_validity=30 * DAY, cert_validity=10 * DAY, overlap=OVERLAP)
    step = plan(fresh(), HOSTS, T0 + DAY, shorter, SETTLED)
    assert step is not None and step.reasons == ("next CA added to the bundle",)


def test_the_keeper_reads_and_writes_every_webhooks_bundle() -> None:
    configuration = {
        "webhooks": [
            {"clientConfig": {"url": "https://127.0.0.1:1/mutate", "caBundle": "QQ=="}},
            {"clientConfig": {"url": "https://127.0.0.1:2/mutate"}},
        ]
    }
    assert carried_bundle(configuration) is None, "the webhooks disagree"
    patched = with_bundle(configuration, "Qg==")
    assert carried_bundle(patched) == "Qg=="
    assert "caBundle" not in configuration["webhooks"][1]["clientConfig"], "a copy is patched"


def test_first_seen_restarts_with_each_new_value() -> None:
    now = [100.0]
    seen = FirstSeen(lambda: now[0])
    assert seen.age("a") == datetime.timedelta(0)
    now[0] = 103.0
    assert seen.age("a") == datetime.timedelta(seconds=3)
    assert seen.age("b") == datetime.timedelta(0)
    assert seen.age(None) is None
    assert seen.age("b") == datetime.timedelta(0)
