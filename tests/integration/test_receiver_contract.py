"""The receiver stand-in speaks exactly `docs/receiver-openapi.yaml`."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from runner_sizer.devcluster.receiver_standin import SizingRequest, StandinServer
from runner_sizer.recommender.strategy import Sizing
from runner_sizer.recommender.table import answer_body
from tests.integration.conftest import RECOMMENDED

SPEC: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "docs" / "receiver-openapi.yaml").read_text()
)
SIZING = "/api/v1/sizing/repo/{org}/{repo}/{workflow}/{job}"
TOKEN = "/api/v1/token"


def validate(schema_name: str, body: Any) -> None:
    schema = {**SPEC["components"]["schemas"][schema_name], "components": SPEC["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)


def documented_statuses(path: str, method: str) -> set[str]:
    return set(SPEC["paths"][path][method]["responses"])


def test_sizing_answers_match_the_document(standin: StandinServer) -> None:
    standin.state.recommendations["acme/app/feature/x/unit tests"] = RECOMMENDED
    standin.state.set_mode("ok")
    url = f"{standin.url}/api/v1/sizing/repo/acme/app/feature%2Fx/unit%20tests"
    auth = {"Authorization": "Bearer read-token"}
    ok = requests.get(url, headers=auth, timeout=5)
    assert ok.status_code == 200
    validate("Recommendation", ok.json())
    statuses = documented_statuses(SIZING, "get")
    missing = requests.get(url.replace("acme", "other"), headers=auth, timeout=5)
    unauthorized = requests.get(url, timeout=5)
    assert {str(missing.status_code), str(unauthorized.status_code)} <= statuses


def test_sizing_is_keyed_by_the_documented_project_id(standin: StandinServer) -> None:
    parameters = SPEC["paths"][SIZING]["get"]["parameters"]
    (documented,) = (p for p in parameters if p["name"] == "project_id")
    assert (documented["in"], documented["required"], documented["schema"]) == (
        "query",
        False,
        {"type": "string"},
    )
    standin.state.recommendations["7:acme/app/main/lint"] = RECOMMENDED
    url = f"{standin.url}/api/v1/sizing/repo/acme/app/main/lint"
    auth = {"Authorization": "Bearer read-token"}
    ok = requests.get(url, params={"project_id": "7"}, headers=auth, timeout=5)
    assert ok.status_code == 200
    validate("Recommendation", ok.json())
    other = requests.get(url, params={"project_id": "8"}, headers=auth, timeout=5)
    assert other.status_code == 404, "another project with the same namespace and name"
    assert standin.state.sizing_requests[-2:] == [
        SizingRequest(("acme", "app", "main", "lint"), "7"),
        SizingRequest(("acme", "app", "main", "lint"), "8"),
    ]


def test_token_answers_match_the_document(standin: StandinServer) -> None:
    standin.state.set_mode("ok")
    url, auth = f"{standin.url}{TOKEN}", {"Authorization": "Bearer push-token"}
    scope = {"org": "acme", "repo": "app", "workflow": "main", "job": "build", "project_id": "7"}
    validate("TokenScope", scope)
    ok = requests.post(url, json=scope, headers=auth, timeout=5)
    assert ok.status_code == 200
    validate("PushToken", ok.json())
    statuses = documented_statuses(TOKEN, "post")
    assert (
        str(requests.post(url, json={"org": "x"}, headers=auth, timeout=5).status_code) in statuses
    )
    assert str(requests.post(url, json=scope, timeout=5).status_code) in statuses
    assert standin.state.token_scopes[-2] == scope


def test_token_scope_holds_nothing_undocumented() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate("TokenScope", {"org": "a", "repo": "r", "workflow": "w", "job": "j", "x": "1"})


@pytest.mark.parametrize(
    "body", [{"requests": {"cpu": "-1"}}, {"cpu": "1"}, {"requests": {"cpu": "lots"}}]
)
def test_document_rejects_what_the_client_ignores(body: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate("Recommendation", body)


def test_the_recommenders_oom_field_is_an_optional_documented_extension() -> None:
    sizing = Sizing(
        cpu=Decimal(1),
        memory=Decimal(2 * 2**30),
        memory_limit=Decimal(2 * 2**30),
        runs=5,
        oom_floor=Decimal(2 * 2**30),
        killed_at=1_790_000_000.0,
    )
    body = json.loads(answer_body(sizing))
    assert body["oom"] == {"memory_floor": "2Gi", "killed_at": "2026-09-21T14:13:20.000Z"}
    validate("Recommendation", body)
    validate("Recommendation", {k: v for k, v in body.items() if k != "oom"})
    assert "oom" not in SPEC["components"]["schemas"]["Recommendation"].get("required", [])
    with pytest.raises(jsonschema.ValidationError):
        validate("Recommendation", {**body, "oom": {"killed_at": body["oom"]["killed_at"]}})
