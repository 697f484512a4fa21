"""A thin Kubernetes REST client on plain JSON dicts.

The official client's typed models cost about 12x `json.loads` to build; watch
streams and admission paths work on dicts instead. Credentials (kubeconfig,
exec plugins, in-cluster service-account tokens that rotate) are still resolved
by the official client's configuration loaders.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from runner_sizer.kube.kubeconfig import KubeConfigError, kubeconfig_problem

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class KubeError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason


class _BearerFromConfiguration(requests.auth.AuthBase):
    """Ask the configuration for the token on every request (it may rotate)."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self._configuration = configuration

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        value = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if value:
            request.headers["Authorization"] = value
        return request


@dataclass
class KubeClient:
    server: str
    session: requests.Session
    timeout: float = 10.0

    @classmethod
    def from_configuration(cls, configuration: k8s_client.Configuration) -> KubeClient:
        session = requests.Session()
        # REQUESTS_CA_BUNDLE and friends would override the cluster CA.
        session.trust_env = False
        session.verify = configuration.ssl_ca_cert or configuration.verify_ssl
        if configuration.cert_file and configuration.key_file:
            session.cert = (configuration.cert_file, configuration.key_file)
        session.auth = _BearerFromConfiguration(configuration)
        session.headers["Accept"] = "application/json"
        return cls(configuration.host.rstrip("/"), session)

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> KubeClient:
        """`path`, else $KUBECONFIG / ~/.kube/config, else the in-cluster account.

        Raises KubeConfigError with a one-line reason when there are no usable credentials.
        """
        problem = kubeconfig_problem(path, os.environ)
        if problem:
            raise KubeConfigError(problem)
        configuration = k8s_client.Configuration()
        try:
            try:
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=path, client_configuration=configuration
                )
            except (k8s_config.ConfigException, FileNotFoundError):
                if path:
                    raise
                k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
        except (k8s_config.ConfigException, OSError, ValueError) as error:
            where = path or "kubeconfig or in-cluster account"
            raise KubeConfigError(f"unusable {where}: {error}") from None
        return cls.from_configuration(configuration)

    def with_token(self, token: str) -> KubeClient:
        """The same server and CA, authenticated only by `token`."""
        session = requests.Session()
        session.trust_env = False
        session.verify = self.session.verify
        session.headers.update(self.session.headers)
        session.headers["Authorization"] = f"Bearer {token}"
        return KubeClient(self.server, session, self.timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        response = self.session.request(
            method,
            self.server + path,
            data=None if body is None else json.dumps(body),
            params=params,
            headers={"Content-Type": content_type},
            timeout=self.timeout,
        )
        _raise_for_status(response)
        result: JSON = response.json()
        return result

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> JSON:
        return self.request("GET", path, params=params)

    def post(
        self, path: str, body: Mapping[str, Any], params: Mapping[str, str | int] | None = None
    ) -> JSON:
        return self.request("POST", path, body=body, params=params)

    def put(self, path: str, body: Mapping[str, Any]) -> JSON:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: Mapping[str, Any], content_type: str = MERGE_PATCH) -> JSON:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, params: Mapping[str, str | int] | None = None) -> JSON:
        return self.request("DELETE", path, params=params)

    def watch(
        self, path: str, params: Mapping[str, str | int], read_timeout: float
    ) -> Iterator[JSON]:
        """Yield watch events (`{"type", "object"}`) until the server ends the stream."""
        query = {**params, "watch": "true"}
        with self.session.get(
            self.server + path, params=query, stream=True, timeout=(self.timeout, read_timeout)
        ) as response:
            _raise_for_status(response)
            # One event per line. A ConfigMap event can be ~1 MB arriving in many
            # chunks: search each byte once (requests' iter_lines re-splits it all).
            buffer = bytearray()
            for chunk in response.iter_content(chunk_size=None):
                searched = len(buffer)
                buffer += chunk
                while (end := buffer.find(b"\n", searched)) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    searched = 0
                    if line.strip():
                        event: JSON = json.loads(line)
                        yield event


def _raise_for_status(response: requests.Response) -> None:
    if response.status_code < 400:
        return
    try:
        status = response.json()
        message, reason = status.get("message", ""), status.get("reason", "")
    except ValueError:
        message, reason = response.text[:300], response.reason or ""
    raise KubeError(response.status_code, reason, message)
