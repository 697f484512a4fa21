"""Keeps the CA and serving certificate in a Secret, and the caBundle of one configuration.

Thin edge around `plan`: two watches (the Secret, the MutatingWebhookConfiguration)
feed the latest objects; the Lease holder plans, writes the Secret, then patches
the caBundle. Writes carry the resourceVersion read, so two leaders for a moment
never overwrite each other. A configuration whose caBundle a sync or a mode
switch wiped is patched again on the next watch event.

The configuration is kept only while it names the Secret in the annotation
`runner-sizer.io/inject-ca-from` (as cert-manager's cainjector does): after a
switch to another TLS mode, a pod still running the old mode leaves it alone.
"""

from __future__ import annotations

import base64
import copy
import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from runner_sizer.certs.hosts import hosts_for
from runner_sizer.certs.plan import Observed, TlsState, plan
from runner_sizer.certs.secret_data import decode, encode
from runner_sizer.certs.settings import Management
from runner_sizer.kube.client import JSON, KubeClient, KubeError
from runner_sizer.kube.informer import ListWatch
from runner_sizer.kube.leader import LeaderElector
from runner_sizer.observability.problems import RecurringProblem

log = logging.getLogger(__name__)
INJECT_ANNOTATION = "runner-sizer.io/inject-ca-from"
CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


class FirstSeen:
    """How long one value has been seen without a change."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._value: object = None
        self._since = 0.0

    def age(self, value: object) -> datetime.timedelta | None:
        if value is None:
            self._value = None
            return None
        if value != self._value:
            self._value, self._since = value, self._clock()
        return datetime.timedelta(seconds=self._clock() - self._since)


def carried_bundle(configuration: JSON) -> str | None:
    """The caBundle every webhook of the configuration carries, if they agree."""
    bundles = {
        (w.get("clientConfig") or {}).get("caBundle") or ""
        for w in configuration.get("webhooks") or []
    }
    return bundles.pop() if len(bundles) == 1 else None


def with_bundle(configuration: JSON, bundle: str) -> JSON:
    updated = copy.deepcopy(configuration)
    for webhook in updated.get("webhooks") or []:
        webhook.setdefault("clientConfig", {})["caBundle"] = bundle
    return updated


class CertificateKeeper:
    def __init__(
        self,
        management: Management,
        kube: KubeClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_period: float = 2.0,
    ) -> None:
        self._m = management
        self._kube = kube
        self._secret: JSON | None = None
        self._configuration: JSON | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.stop = threading.Event()
        self._bundle_seen = FirstSeen(clock)
        self._serving_seen = FirstSeen(clock)
        self._period = min(retry_period, management.policy.overlap.total_seconds() / 2)
        self._problem = RecurringProblem(log, "cannot keep the webhook certificate")
        secret = management.secret
        self.elector = LeaderElector(kube, secret.namespace, secret.name, management.identity)
        self._watches = [
            self._watch(secret.collection, secret.name, "_secret"),
            self._watch(CONFIGURATIONS, management.configuration, "_configuration"),
        ]

    def _watch(self, path: str, name: str, attribute: str) -> ListWatch:
        def store(obj: JSON | None) -> None:
            with self._lock:
                setattr(self, attribute, obj)
            self._wake.set()

        return ListWatch(
            connect=lambda: self._kube,
            path=path,
            params={"fieldSelector": f"metadata.name={name}"},
            on_list=lambda items: store(items[0] if items else None),
            on_event=lambda kind, obj: store(None if kind == "DELETED" else obj),
            stop=self.stop,
        )

    def run(self) -> None:
        """Until `stop` is set; then hand the Lease over."""
        for index, watch in enumerate(self._watches):
            watch.start(f"tls-keeper-watch-{index}")
        while not self.stop.is_set():
            if self.elector.step():
                try:
                    self.keep()
                    self._problem.resolved()
                except KubeError as error:
                    if error.status != 409:  # a newer object is on its way through the watch
                        self._problem.occurred(error)
                except OSError as error:
                    self._problem.occurred(error)
            self._wake.wait(self._period)
            self._wake.clear()
        self.elector.release()

    def keep(self) -> None:
        """One reconciliation: plan, write the Secret, then patch the caBundle."""
        with self._lock:
            secret, configuration = self._secret, self._configuration
        m = self._m
        if configuration is None or secret is None:
            missing = "Secret" if secret is None else "MutatingWebhookConfiguration"
            raise KubeError(404, "NotFound", f"{missing} to keep not found (yet)")
        annotations = (configuration.get("metadata") or {}).get("annotations") or {}
        if annotations.get(INJECT_ANNOTATION) != str(m.secret):
            return
        hosts = hosts_for(configuration)
        if not hosts:
            raise KubeError(422, "Invalid", f"{m.configuration} names no Service or URL host")
        state = decode(secret.get("data"))
        bundle = base64.b64encode(state.bundle).decode()
        observed = Observed(
            bundle_age=self._bundle_seen.age(
                bundle if state.trusted and carried_bundle(configuration) == bundle else None
            ),
            serving_age=self._serving_seen.age(state.serving and state.serving.cert_pem)
            or datetime.timedelta(0),
        )
        step = plan(state, hosts, datetime.datetime.now(datetime.UTC), m.policy, observed)
        if step is not None:
            self._write_secret(secret, step.state)
            state = step.state
            log.info(
                "webhook certificate changed",
                extra={"secret": str(m.secret), "steps": list(step.reasons)},
            )
        bundle = base64.b64encode(state.bundle).decode()
        if carried_bundle(configuration) != bundle:
            self._put(
                f"{CONFIGURATIONS}/{m.configuration}",
                with_bundle(configuration, bundle),
                "_configuration",
            )
            log.info("caBundle patched", extra={"configuration": m.configuration})

    def _write_secret(self, secret: JSON, state: TlsState) -> JSON:
        body: dict[str, Any] = {**secret, "data": encode(state)}
        return self._put(f"{self._m.secret.collection}/{self._m.secret.name}", body, "_secret")

    def _put(self, path: str, body: JSON, attribute: str) -> JSON:
        stored = self._kube.put(path, body)
        with self._lock:
            setattr(self, attribute, stored)
        return stored
