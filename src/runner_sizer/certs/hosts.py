"""The names a serving certificate needs: whatever the webhook configuration dials."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

CLUSTER_DOMAIN = "cluster.local"


def hosts_for(configuration: dict[str, Any]) -> tuple[str, ...]:
    """Every webhook's Service DNS names, or the host of its URL; sorted, no repeats."""
    hosts: set[str] = set()
    for webhook in configuration.get("webhooks") or []:
        client = webhook.get("clientConfig") or {}
        if client.get("url"):
            host = urlsplit(str(client["url"])).hostname
            if host:
                hosts.add(host)
        elif service := client.get("service"):
            name, namespace = service.get("name"), service.get("namespace")
            if name and namespace:
                svc = f"{name}.{namespace}.svc"
                hosts.update({name, f"{name}.{namespace}", svc, f"{svc}.{CLUSTER_DOMAIN}"})
    return tuple(sorted(hosts))
