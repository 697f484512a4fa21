"""Reads the recorder's OOM records for each refresh: the recommender's only Kubernetes call."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import requests

from runner_sizer.history.oom_store import read_oom_records
from runner_sizer.history.ooms import OomRecord
from runner_sizer.kube.client import KubeClient, KubeError
from runner_sizer.recommender.ooms import OomSourceError
from runner_sizer.recommender.settings import RecommenderSettings

OomReader = Callable[[], Sequence[OomRecord]]


def oom_reader(settings: RecommenderSettings) -> OomReader | None:
    """A reader of the configured ConfigMap; None when none is configured."""
    if settings.oom_configmap is None:
        return None
    namespace, name = settings.oom_configmap
    kube = KubeClient.from_kubeconfig(settings.kubeconfig)

    def read() -> Sequence[OomRecord]:
        try:
            return read_oom_records(kube, namespace, name)
        except KubeError as error:
            if error.status == 404:  # the recorder has recorded nothing yet
                return []
            raise OomSourceError(f"OOM records {namespace}/{name}: {error}"[:300]) from None
        except requests.RequestException as error:
            detail = f"{type(error).__name__}: {error}"
            raise OomSourceError(f"OOM records {namespace}/{name}: {detail}"[:300]) from None

    return read
