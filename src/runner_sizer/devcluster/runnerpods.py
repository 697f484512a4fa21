"""Pods shaped like the ones GitLab Runner's Kubernetes executor creates.

Follows what the runner's `buildLabels()`/`buildPodAnnotations()` produce: the
`pod` label on every version, the `*.runner.gitlab.com` labels from 17.9 on,
unsanitized job annotations, `build`/`helper`/service containers and the
`init-permissions` init container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.]")


def sanitize_label(value: str) -> str:
    """The runner's label sanitizer: unsafe characters become `_`, cut to 63."""
    return _LABEL_UNSAFE.sub("_", value).strip("_-.")[:63]


@dataclass(frozen=True)
class RunnerJob:
    project_id: int = 1000
    project_path: str = "acme/platform/ml-pipeline"
    job_id: int = 8400000
    job_name: str = "build"
    ref: str = "main"
    pipeline_id: int = 420000
    runner_short: str = "7fc08398"
    concurrent: int = 0
    runner_version: tuple[int, int] = (18, 4)
    services: tuple[str, ...] = ("postgres",)
    cache_volume: str | None = "runner-cache"
    extra_labels: dict[str, str] = field(default_factory=dict)
    extra_annotations: dict[str, str] = field(default_factory=dict)
    # KUBERNETES_{CPU,MEMORY}_{REQUEST,LIMIT} the job set: the runner applies them to
    # `build`, and they show up in its env like every job variable.
    overwrites: dict[str, str] = field(default_factory=dict)

    @property
    def pod_label(self) -> str:
        return f"runner-{self.runner_short}-project-{self.project_id}-concurrent-{self.concurrent}"

    @property
    def root_namespace(self) -> str:
        return self.project_path.split("/", 1)[0]

    @property
    def namespace_path(self) -> str:
        return self.project_path.rsplit("/", 1)[0]

    @property
    def project_name(self) -> str:
        return self.project_path.rsplit("/", 1)[-1]


def _labels(job: RunnerJob) -> dict[str, str]:
    labels = {"pod": job.pod_label}
    if job.runner_version >= (17, 9):
        labels |= {
            "job.runner.gitlab.com/pod": job.pod_label,
            "project.runner.gitlab.com/id": str(job.project_id),
            "project.runner.gitlab.com/name": sanitize_label(job.project_name),
            "project.runner.gitlab.com/namespace": sanitize_label(job.namespace_path),
            "project.runner.gitlab.com/root-namespace": sanitize_label(job.root_namespace),
            "manager.runner.gitlab.com/name": "gitlab-runner-7d9f8c6b5-x2k4j",
            "manager.runner.gitlab.com/id-short": job.runner_short[:8],
        }
    return labels | job.extra_labels


def _annotations(job: RunnerJob) -> dict[str, str]:
    annotations = {
        "job.runner.gitlab.com/id": str(job.job_id),
        "job.runner.gitlab.com/url": f"https://gitlab.example.com/{job.project_path}/-/jobs/{job.job_id}",
        "job.runner.gitlab.com/sha": "02a57925ebcef3f211081895fa0ea77b10e6c457",
        "job.runner.gitlab.com/before_sha": "2c15a0e51d78e61cdcd8ea02fd5d558df9becc97",
        "job.runner.gitlab.com/ref": job.ref,
        "job.runner.gitlab.com/name": job.job_name,
        "project.runner.gitlab.com/id": str(job.project_id),
    }
    if job.runner_version >= (17, 11):
        annotations["job.runner.gitlab.com/timeout"] = "1h0m0s"
    return annotations | job.extra_annotations


def ci_variables(job: RunnerJob) -> dict[str, str]:
    """The public CI variables the runner puts on the `build` container."""
    return {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": "https://gitlab.example.com",
        "CI_SERVER_HOST": "gitlab.example.com",
        "CI_PROJECT_ID": str(job.project_id),
        "CI_PROJECT_NAME": job.project_name,
        "CI_PROJECT_PATH": job.project_path,
        "CI_PROJECT_NAMESPACE": job.namespace_path,
        "CI_PROJECT_ROOT_NAMESPACE": job.root_namespace,
        "CI_PROJECT_DIR": f"/builds/{job.project_path}",
        "CI_JOB_ID": str(job.job_id),
        "CI_JOB_NAME": job.job_name,
        "CI_JOB_STAGE": "build",
        "CI_JOB_URL": f"https://gitlab.example.com/{job.project_path}/-/jobs/{job.job_id}",
        "CI_PIPELINE_ID": str(job.pipeline_id),
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_SHA": "02a57925ebcef3f211081895fa0ea77b10e6c457",
        "CI_COMMIT_REF_NAME": job.ref,
        "CI_CONCURRENT_ID": str(job.concurrent),
        "CI_RUNNER_ID": "40",
        "CI_RUNNER_SHORT_TOKEN": job.runner_short,
        "CI_RUNNER_VERSION": ".".join(map(str, job.runner_version)) + ".0",
        "CI_JOB_TOKEN": "glcbt-64_secret-job-token-never-to-be-logged",
    }


def runner_pod(job: RunnerJob, affinity: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Pod manifest as the runner would POST it for `job`."""
    scripts = f"scripts-{job.project_id}-{job.job_id}"
    logs = f"logs-{job.project_id}-{job.job_id}"
    mounts: list[dict[str, Any]] = [
        {"name": "repo", "mountPath": "/builds"},
        {"name": scripts, "mountPath": f"/{scripts}"},
        {"name": logs, "mountPath": f"/{logs}"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "repo", "emptyDir": {}},
        {"name": scripts, "emptyDir": {}},
        {"name": logs, "emptyDir": {}},
    ]
    if job.cache_volume:
        volumes.append(
            {
                "name": job.cache_volume,
                "hostPath": {"path": "/mnt/runner-cache", "type": "DirectoryOrCreate"},
            }
        )
        mounts.append({"name": job.cache_volume, "mountPath": "/cache"})
    shell = ["sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi"]
    helper_image = (
        "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v18.4.0"
    )
    build_resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "4Gi"},
    }
    for variable, value in job.overwrites.items():
        _, resource, kind = variable.lower().split("_")
        build_resources["requests" if kind == "request" else "limits"][resource] = value
    containers: list[dict[str, Any]] = [
        {
            "name": "build",
            "image": "alpine:3.20",
            "command": shell,
            "env": [
                {"name": k, "value": v} for k, v in (ci_variables(job) | job.overwrites).items()
            ],
            "resources": build_resources,
            "volumeMounts": mounts,
            "stdin": True,
        },
        {
            "name": "helper",
            "image": helper_image,
            "command": shell,
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"memory": "256Mi"},
            },
            "volumeMounts": mounts,
            "stdin": True,
        },
    ]
    legacy_service_names = job.runner_version < (17, 9)
    for index, service in enumerate(job.services):
        containers.append(
            {
                "name": f"svc-{index}" if legacy_service_names else service,
                "image": f"{service}:16",
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
            }
        )
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 30,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "securityContext": {"fsGroup": 1000},
        "initContainers": [
            {
                "name": "init-permissions",
                "image": helper_image,
                "command": ["sh", "-c", f"touch /{logs}/output.log"],
                "volumeMounts": mounts[:3],
            }
        ],
        "containers": containers,
        "volumes": volumes,
    }
    if affinity is not None:
        spec["affinity"] = affinity
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{job.pod_label}-",
            "labels": _labels(job),
            "annotations": _annotations(job),
        },
        "spec": spec,
    }
