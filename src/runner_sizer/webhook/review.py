"""AdmissionReview in, AdmissionReview out: parsing and the response envelope."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

API_VERSION = "admission.k8s.io/v1"


class ReviewError(ValueError):
    """The body is not an AdmissionReview we can answer (→ HTTP 400)."""


@dataclass(frozen=True)
class AdmissionRequest:
    uid: str
    operation: str
    resource: str
    namespace: str
    dry_run: bool
    pod: dict[str, Any]


def parse_review(body: Any) -> AdmissionRequest:
    """Validate the envelope; a review for anything but a Pod still parses (and is allowed)."""
    if not isinstance(body, dict) or not isinstance(body.get("request"), dict):
        raise ReviewError("expected an admission.k8s.io/v1 AdmissionReview with a request")
    request = body["request"]
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing")
    resource = request.get("resource") or {}
    obj = request.get("object")
    return AdmissionRequest(
        uid=uid,
        operation=str(request.get("operation", "")),
        resource=str(resource.get("resource", "")) if isinstance(resource, dict) else "",
        namespace=str(request.get("namespace", "")),
        dry_run=bool(request.get("dryRun", False)),
        pod=obj if isinstance(obj, dict) else {},
    )


def review_response(uid: str, patch: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Always `allowed: true`; a JSONPatch only when there is something to change."""
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(patch)).decode()
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}
