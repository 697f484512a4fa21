"""Where Kubernetes credentials come from, decided before anything connects.

Kept free of the kubernetes and requests imports, so the webhook's gunicorn
master can check it before its workers patch sockets for gevent. The webhook
and the recorder both stop at start-up with this one-line answer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubeConfigError(Exception):
    """No usable Kubernetes credentials; the message says what to pass."""


def kubeconfig_problem(
    path: str | None, environ: Mapping[str, str], in_cluster_token: Path = IN_CLUSTER_TOKEN
) -> str | None:
    """Why no credentials would be found, or None.

    Without `path`, the official loaders try $KUBECONFIG (else ~/.kube/config),
    then the in-cluster service account.
    """
    if path:
        return None if Path(path).is_file() else f"no such file: {path}"
    candidates = environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    if any(Path(c).is_file() for c in candidates.split(os.pathsep) if c):
        return None
    service = environ.get("KUBERNETES_SERVICE_HOST") and environ.get("KUBERNETES_SERVICE_PORT")
    if service and in_cluster_token.is_file():
        return None
    return "not running in a cluster and no kubeconfig found: pass --kubeconfig"
