"""The recorder's job identity info metric: live pods only, leader only, gaps counted."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
from runner_sizer.recorder.jobinfo import JobInfoCollector, LivePods

INFO = "runner_sizer_job_info"


def pod(namespace: str, name: str, job: RunnerJob | None = None) -> dict[str, Any]:
    manifest = runner_pod(job or RunnerJob())
    manifest["metadata"] |= {"namespace": namespace, "name": name}
    return manifest


def unverified(namespace: str, name: str) -> dict[str, Any]:
    """A runner < 17.9 pod whose env claims another project than its name."""
    job = RunnerJob(runner_version=(17, 5))
    manifest = pod(namespace, f"{job.pod_label}-{name}", job)
    for variable in manifest["spec"]["containers"][0]["env"]:
        if variable["name"] == "CI_PROJECT_ID":
            variable["value"] = "999"
    return manifest


def exposition(pods: LivePods, leading: bool = True) -> str:
    registry = CollectorRegistry()
    registry.register(JobInfoCollector(pods, lambda: leading))
    return generate_latest(registry).decode()


def info_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(INFO + "{")]


def test_one_series_per_live_pod_with_the_shared_identity() -> None:
    pods = LivePods(())
    job = RunnerJob(project_id=42, project_path="acme/tools/app", ref="feat/x.y", job_name="t 1")
    pods.changed("ADDED", pod("ci", "runner-a", job))
    assert info_lines(exposition(pods)) == [
        'runner_sizer_job_info{job_name="t 1",namespace="ci",pod="runner-a",project="app",'
        'project_id="42",ref="feat/x.y",root_namespace="acme"} 1.0'
    ]


def test_a_deleted_pod_leaves_and_a_relist_replaces_its_namespace_only() -> None:
    pods = LivePods(())
    for name in ("a", "b"):
        pods.changed("ADDED", pod("ci", name))
    pods.changed("ADDED", pod("other", "c"))
    pods.changed("DELETED", pod("ci", "a"))
    assert {line.split('pod="')[1].split('"')[0] for line in info_lines(exposition(pods))} == {
        "b",
        "c",
    }
    pods.listed([pod("ci", "d")], namespace="ci")
    assert len(info_lines(exposition(pods))) == 2
    pods.listed([], namespace=None)
    assert info_lines(exposition(pods)) == []


def test_followers_export_no_series() -> None:
    pods = LivePods(())
    pods.changed("ADDED", pod("ci", "a"))
    text = exposition(pods, leading=False)
    assert info_lines(text) == []
    assert f"# TYPE {INFO} gauge" in text


def test_pods_without_identity_are_counted_not_exported() -> None:
    pods = LivePods(())
    pods.changed("ADDED", unverified("ci", "a"))
    no_identity = pod("ci", "b")
    no_identity["spec"]["containers"][0]["env"] = []
    no_identity["metadata"]["annotations"] = {"job.runner.gitlab.com/id": "1"}
    no_identity["metadata"]["labels"] = {}
    pods.changed("ADDED", no_identity)
    text = exposition(pods)
    assert info_lines(text) == []
    assert 'runner_sizer_recorder_identity_gaps{reason="unverified_identity"} 1.0' in text
    assert 'runner_sizer_recorder_identity_gaps{reason="no_identity"} 1.0' in text


def test_only_runner_pods_in_the_watched_namespaces() -> None:
    pods = LivePods(("ci",))
    pods.changed("ADDED", pod("elsewhere", "a"))
    plain = pod("ci", "b")
    plain["metadata"]["labels"] = {"app": "web"}
    plain["metadata"]["annotations"] = {}
    pods.changed("ADDED", plain)
    pods.changed("ADDED", pod("ci", "c"))
    assert [line.split('pod="')[1][0] for line in info_lines(exposition(pods))] == ["c"]
    plain_now = pod("ci", "c")
    plain_now["metadata"]["labels"] = {}
    plain_now["metadata"]["annotations"] = {}
    pods.changed("MODIFIED", plain_now)
    assert info_lines(exposition(pods)) == []
