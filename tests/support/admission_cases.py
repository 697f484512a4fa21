"""Generated admission cases: a runner pod, the namespace it lands in, the receiver's
answer and the webhook's settings. Used by the property test of the never-block promise.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.webhook.settings import WebhookSettings
from runner_sizer.webhook.sizing import Bounds, SizingMode
from tests.support.scripted_receiver import Answer

PROJECT_IDS = (1000, 1001, 2002)
HARDENED_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def sometimes(draw: st.DrawFn, one_in: int) -> bool:
    """True once in `one_in` draws; False is the simple case hypothesis favours and shrinks to."""
    return draw(st.integers(0, one_in - 1)) == one_in - 1


# Every form a quantity takes in a runner's config or a job's variables.
CPU_FORMS = ("{m}m", "{c}", "{u}u", "{n}n", "{c}e0", "{k}k")
MEMORY_FORMS = ("{g}G", "{gi}Gi", "{mi}Mi", "{b}", "{ge}e9", "{kk}k", "{m}M")


# The value of every quantity text generated here, recorded as it is made: the cases
# must not depend on the parser of the code under test.
_VALUES: dict[str, Decimal] = {"0": Decimal(0)}


def _quantity(text: str, value: Decimal) -> str:
    _VALUES[text] = value
    return text


@st.composite
def cpu_quantity(draw: st.DrawFn) -> str:
    millis = draw(st.integers(min_value=1, max_value=4_000))
    cores = Decimal(millis) / 1000
    form = draw(st.sampled_from(CPU_FORMS))
    if form == "{c}":
        text = draw(st.sampled_from(("0.75", "1", "2", "1.5", "0.1")))
        return _quantity(text, Decimal(text))
    if form == "{k}k":
        return _quantity("0.001k", Decimal(1))
    micros = millis * 1000 + draw(st.integers(0, 999))
    nanos = millis * 1_000_000 + draw(st.integers(0, 999_999))
    values = {
        "{m}m": cores,
        "{u}u": Decimal(micros) / 10**6,
        "{n}n": Decimal(nanos) / 10**9,
        "{c}e0": cores,
    }
    return _quantity(form.format(m=millis, c=cores, u=micros, n=nanos), values[form])


@st.composite
def memory_quantity(draw: st.DrawFn) -> str:
    mib = draw(st.integers(min_value=16, max_value=8 * 1024))
    form = draw(st.sampled_from(MEMORY_FORMS))
    values = {
        "{g}G": Decimal(max(1, mib // 1000) * 10**9),
        "{gi}Gi": Decimal(max(1, mib // 1024) * 2**30),
        "{mi}Mi": Decimal(mib * 2**20),
        "{b}": Decimal(mib * 1_000_003),
        "{ge}e9": Decimal(mib) / 1000 * 10**9,
        "{kk}k": Decimal(mib * 1000 * 1000),
        "{m}M": Decimal(mib * 10**6),
    }
    text = form.format(
        g=max(1, mib // 1000),
        gi=max(1, mib // 1024),
        mi=mib,
        b=mib * 1_000_003,
        ge=Decimal(mib) / 1000,
        kk=mib * 1000,
        m=mib,
    )
    return _quantity(text, values[form])


STORAGE = (("1Gi", Decimal(2**30)), ("10G", Decimal(10**10)), ("500Mi", Decimal(500 * 2**20)))


@st.composite
def resources(draw: st.DrawFn, with_storage: bool = True) -> dict[str, Any]:
    """requests and/or limits, each with cpu and/or memory, or nothing."""
    result: dict[str, Any] = {}
    for section in ("requests", "limits"):
        values: dict[str, str] = {}
        if not sometimes(draw, 3):
            values["cpu"] = draw(cpu_quantity())
        if not sometimes(draw, 3):
            values["memory"] = draw(memory_quantity())
        if with_storage and sometimes(draw, 6):
            text, value = draw(st.sampled_from(STORAGE))
            values["ephemeral-storage"] = _quantity(text, value)
        if values:
            result[section] = values
    requests, limits = result.get("requests", {}), result.get("limits", {})
    for name in set(requests) & set(limits):  # the apiserver rejects request > limit outright
        if _amount(requests[name]) > _amount(limits[name]):
            requests[name], limits[name] = limits[name], requests[name]
    return result


def _amount(quantity: str) -> Decimal:
    return _VALUES[quantity]


AFFINITIES: tuple[dict[str, Any] | None, ...] = (
    None,
    {},
    {"nodeAffinity": {}},
    {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ci"]}]}
                ]
            }
        }
    },
    {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "preference": {
                        "matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]
                    },
                }
            ]
        }
    },
    {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"pod": "x"}},
                    },
                }
            ]
        }
    },
)

EXPLICIT_VARIABLES = {
    ("requests", "cpu"): "KUBERNETES_CPU_REQUEST",
    ("limits", "cpu"): "KUBERNETES_CPU_LIMIT",
    ("requests", "memory"): "KUBERNETES_MEMORY_REQUEST",
    ("limits", "memory"): "KUBERNETES_MEMORY_LIMIT",
}


@st.composite
def runner_pods(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from(((18, 4), (17, 9), (18, 10), (17, 5))))
    project_id = draw(st.sampled_from(PROJECT_IDS))
    job = RunnerJob(
        project_id=project_id,
        project_path=draw(st.sampled_from(("acme/platform/ml-pipeline", "acme/api", "org/a.b"))),
        job_name=draw(st.sampled_from(("build", "test: unit", "deploy/prod", ".."))),
        ref=draw(st.sampled_from(("main", "feature/x", "release/1.x"))),
        runner_version=version,
        services=tuple(
            draw(st.lists(st.sampled_from(("postgres", "redis")), max_size=2, unique=True))
        ),
        cache_volume=draw(st.sampled_from(("runner-cache", "runner-cache-go", None))),
    )
    pod = runner_pod(job, affinity=copy.deepcopy(draw(st.sampled_from(AFFINITIES))))
    spec, metadata = pod["spec"], pod["metadata"]
    containers = spec["containers"]
    build = containers[0]
    build["resources"] = draw(resources())
    containers[1]["resources"] = draw(resources(with_storage=False))
    for service in containers[2:]:
        service["resources"] = draw(resources(with_storage=False))
    if draw(st.booleans()):
        del metadata["generateName"]
        metadata["name"] = f"{job.pod_label}-{draw(st.sampled_from(('abcd1234', 'zz9x0y1w')))}"
    if sometimes(draw, 4):
        spec["initContainers"].append(
            {
                "name": "istio-proxy",
                "image": "istio/proxyv2:1.24",
                "restartPolicy": "Always",
                "resources": draw(resources(with_storage=False)),
            }
        )
    # Jobs that set KUBERNETES_* variables: the runner applied them, env shows them.
    for (section, name), variable in EXPLICIT_VARIABLES.items():
        value = (build["resources"].get(section) or {}).get(name)
        if value is not None and sometimes(draw, 4):
            build["env"].append({"name": variable, "value": value})
    if version >= (18, 10) and sometimes(draw, 2):
        spec["resources"] = _pod_level(draw, spec)
    if sometimes(draw, 10):  # a job that claims another project's identity
        for variable in build["env"]:
            if variable["name"] == "CI_PROJECT_ID":
                variable["value"] = "31337"
    if sometimes(draw, 15):
        metadata["annotations"]["runner-sizer.io/inject"] = "false"
    if sometimes(draw, 5):
        _harden(pod)
    if sometimes(draw, 2):
        cpu = draw(st.sampled_from((("250m", "0.25"), ("1", "1"), ("1500500u", "1.5005"))))
        _limit_everything(pod, _quantity(cpu[0], Decimal(cpu[1])))
    return pod


def _limit_everything(pod: dict[str, Any], cpu: str) -> None:
    """What a runner configured for a quota'd namespace sends: every container limited."""
    spec = pod["spec"]
    for container in spec["containers"] + spec["initContainers"]:
        resources = container.setdefault("resources", {})
        for section in ("requests", "limits"):
            values = resources.setdefault(section, {})
            values.setdefault("cpu", cpu)
            values.setdefault("memory", _quantity("256Mi", Decimal(256 * 2**20)))
        requests, limits = resources["requests"], resources["limits"]
        for name in ("cpu", "memory"):
            if _amount(requests[name]) > _amount(limits[name]):
                requests[name] = limits[name]


def _pod_level(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    """Pod-level resources that cover what the containers ask for, with some room."""
    everything = spec["containers"] + spec["initContainers"]
    pod_level: dict[str, Any] = {}
    for name, unit in (("cpu", Decimal(1)), ("memory", Decimal(2**30))):
        if not draw(st.booleans()):
            continue
        requested = sum((_amount(_resource(c, "requests", name)) for c in everything), Decimal(0))
        limited = max(
            _amount(_resource(c, "limits", name) or _resource(c, "requests", name))
            for c in everything
        )
        spare = Decimal(draw(st.integers(0, 8))) * unit / 4
        request, limit = requested + spare, max(requested, limited) + spare
        if draw(st.booleans()):
            pod_level.setdefault("requests", {})[name] = _render(name, request)
        if draw(st.booleans()):
            pod_level.setdefault("limits", {})[name] = _render(name, limit)
    return pod_level


def _resource(container: dict[str, Any], section: str, name: str) -> str:
    return str((container.get("resources") or {}).get(section, {}).get(name, "0"))


def _render(name: str, amount: Decimal) -> str:
    if name == "cpu":
        return _quantity(f"{math.ceil(amount * 1000)}m", Decimal(math.ceil(amount * 1000)) / 1000)
    return _quantity(str(math.ceil(amount)), Decimal(math.ceil(amount)))


def _harden(pod: dict[str, Any]) -> None:
    """A pod the `restricted` Pod Security level admits: no hostPath, locked-down containers."""
    spec = pod["spec"]
    spec["volumes"] = [v for v in spec["volumes"] if "hostPath" not in v]
    names = {v["name"] for v in spec["volumes"]}
    for container in spec["containers"] + spec["initContainers"]:
        container["securityContext"] = copy.deepcopy(HARDENED_CONTEXT)
        mounts = container.get("volumeMounts") or []
        container["volumeMounts"] = [m for m in mounts if m["name"] in names]


# What a receiver may send as one quantity: the contract, and well beyond it.
ODD_QUANTITIES: tuple[Any, ...] = (
    "1e20",
    "1e1000000",
    "1e5000",
    "-1",
    "-500m",
    "NaN",
    "Infinity",
    "0",
    "0.0000001",
    "1500500u",
    "123456789n",
    "1.5Gi",
    "2e3Mi",
    "12 Gi",
    "",
    "x" * 70_000,
    True,
    None,
    [1],
    {"value": "1"},
    1.5,
    3,
    -2,
    1e300,
    10**40,
)


@st.composite
def receiver_quantity(draw: st.DrawFn, resource: str) -> Any:
    if sometimes(draw, 7):
        return draw(st.sampled_from(ODD_QUANTITIES))
    return draw(cpu_quantity() if resource == "cpu" else memory_quantity())


@st.composite
def receiver_answers(draw: st.DrawFn) -> Answer:
    kind = draw(st.sampled_from(("ok",) * 8 + ("404", "5xx", "slow", "garbage", "huge", "array")))
    if kind == "404":
        return Answer(404, b'{"error":"no history"}')
    if kind == "5xx":
        return Answer(draw(st.sampled_from((500, 502, 503, 429))), b'{"error":"busy"}')
    if kind == "garbage":
        return Answer(200, b"<html>not json")
    if kind == "array":
        return Answer(200, b"[1,2,3]")
    body: dict[str, Any] = {}
    for section in ("requests", "limits"):
        if sometimes(draw, 4):
            continue
        chosen = [r for r in ("cpu", "memory") if not sometimes(draw, 4)]
        values = {r: draw(receiver_quantity(r)) for r in chosen}
        body[section] = "not-a-map" if sometimes(draw, 10) else values
    if sometimes(draw, 2):  # runner-sizer's recommender after an OOM kill, or a broken one
        floor = {
            "memory_floor": draw(st.sampled_from(("8Gi", "64Gi")) | receiver_quantity("memory")),
            "killed_at": "2026-11-26T15:00:00Z",
        }
        body["oom"] = draw(st.sampled_from(("not-a-map", {}))) if sometimes(draw, 8) else floor
    if kind == "huge":
        body["explanation"] = "y" * 300_000
    raw = json.dumps(body, allow_nan=True).encode()
    delay = 0.5 if kind == "slow" else 0.0
    return Answer(200, raw, delay)


@st.composite
def webhook_settings(draw: st.DrawFn, base: WebhookSettings) -> WebhookSettings:
    bounds_min: dict[str, Decimal] = {}
    bounds_max: dict[str, Decimal] = {}
    if draw(st.booleans()):
        bounds_min["cpu"] = Decimal(draw(st.sampled_from(("0.1", "0.25", "1"))))
    if draw(st.booleans()):
        bounds_max["cpu"] = Decimal(draw(st.sampled_from(("1", "2", "8"))))
    if draw(st.booleans()):
        bounds_min["memory"] = Decimal(draw(st.sampled_from((2**26, 2**28, 2**30))))
    if draw(st.booleans()):
        bounds_max["memory"] = Decimal(draw(st.sampled_from((2**30, 10**9 * 4, 2**34))))
    for name in set(bounds_min) & set(bounds_max):
        if bounds_min[name] > bounds_max[name]:
            bounds_min[name], bounds_max[name] = bounds_max[name], bounds_min[name]
    defaults: dict[str, Decimal] = {}
    if draw(st.booleans()):
        defaults = {"cpu": Decimal("0.5"), "memory": Decimal(2**30)}
    return replace(
        base,
        sizing_mode=draw(st.sampled_from(tuple(SizingMode))),
        bounds=Bounds(bounds_min, bounds_max),
        default_requests=defaults,
        enable_sizing=not sometimes(draw, 6),
        enable_sidecar=not sometimes(draw, 6),
        enable_affinity=not sometimes(draw, 6),
        sidecar_image=draw(st.sampled_from(("registry.example/collector:1", ""))),
        dry_run=sometimes(draw, 20),
    )
