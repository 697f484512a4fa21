"""Lease-based leader election (coordination.k8s.io/v1), on plain JSON.

The official client's elector exits the process on bad arguments and blocks
its caller; this one is a step function a loop calls every retry period.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner_sizer.history.ledger import timestamp
from runner_sizer.kube.client import KubeClient, KubeError
from runner_sizer.kube.configmap import MissingNamespaceError, create
from runner_sizer.observability.problems import RecurringProblem

log = logging.getLogger(__name__)


def _now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElector:
    kube: KubeClient
    namespace: str
    name: str
    identity: str
    lease_seconds: int = 15
    renew_deadline: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _last_renewed: float = field(default=-1e9, init=False)
    _problem: RecurringProblem = field(
        default_factory=lambda: RecurringProblem(log, "lease update failed"), init=False
    )

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    @property
    def is_leader(self) -> bool:
        return self.clock() - self._last_renewed < self.renew_deadline

    def step(self) -> bool:
        """Try to acquire or renew once; returns whether we lead afterwards."""
        try:
            self._try()
        except KubeError as error:
            if error.status != 409:  # 409: another candidate updated first
                self._problem.occurred(error)
        except (OSError, MissingNamespaceError) as error:
            self._problem.occurred(error)
        else:
            self._problem.resolved()
        return self.is_leader

    def _try(self) -> None:
        now = _now_micro()
        try:
            lease = self.kube.get(f"{self.path}/{self.name}")
        except KubeError as error:
            if error.status != 404:
                raise
            create(
                self.kube,
                self.path,
                self.namespace,
                self._lease({}, now, transitions=0, acquired=now),
            )
            self._last_renewed = self.clock()
            return
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder != self.identity:
            expires = timestamp(spec.get("renewTime") or "") / 1000 + int(
                spec.get("leaseDurationSeconds") or self.lease_seconds
            )
            if holder and time.time() < expires:
                return  # someone else holds a live lease
            transitions, acquired = int(spec.get("leaseTransitions") or 0) + 1, now
        else:
            transitions, acquired = (
                int(spec.get("leaseTransitions") or 0),
                spec.get("acquireTime") or now,
            )
        body = self._lease(lease["metadata"], now, transitions=transitions, acquired=acquired)
        self.kube.put(f"{self.path}/{self.name}", body)
        if holder != self.identity:
            log.info("became leader", extra={"identity": self.identity, "previous": holder})
        self._last_renewed = self.clock()

    def _lease(
        self, metadata: dict[str, Any], now: str, *, transitions: int, acquired: str
    ) -> dict[str, Any]:
        meta = {"name": self.name, "namespace": self.namespace}
        if metadata.get("resourceVersion"):
            meta["resourceVersion"] = metadata["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": acquired,
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }

    def release(self) -> None:
        """Give the lease up on shutdown so a follower takes over at once."""
        if not self.is_leader:
            return
        try:
            lease = self.kube.get(f"{self.path}/{self.name}")
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                self.kube.put(f"{self.path}/{self.name}", lease)
        except (KubeError, OSError) as error:
            log.warning("could not release lease", extra={"error": str(error)})
        self._last_renewed = -1e9
