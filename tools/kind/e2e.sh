#!/usr/bin/env bash
# `make e2e-kind`: the in-cluster path for machines with Docker (not the CI machines,
# which have no Docker engine). Builds both images, loads them into a kind cluster,
# installs the chart with its Service-based webhook, and checks that a runner pod
# comes back with the collector sidecar and the status annotation.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cluster="${KIND_CLUSTER:-runner-sizer}"
tag="dev-$(git -C "$root" rev-parse --short HEAD)"
for tool in docker kind helm kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: needs $tool on PATH" >&2; exit 3; }
done

kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
for service in webhook recorder; do
  docker build -f "$root/services/$service/Dockerfile" -t "runner-sizer-$service:$tag" "$root"
  kind load docker-image --name "$cluster" "runner-sizer-$service:$tag"
done

kubectl create namespace ci-sizer --dry-run=client -o yaml | kubectl apply -f -
kubectl -n ci-sizer delete pod receiver --ignore-not-found
kubectl -n ci-sizer run receiver --image="runner-sizer-webhook:$tag" --image-pull-policy=Never --port=8080 \
  --command -- python -m runner_sizer.devcluster.receiver_standin --host 0.0.0.0 --port 8080
kubectl -n ci-sizer expose pod receiver --port=8080 --dry-run=client -o yaml | kubectl apply -f -

helm upgrade --install runner-sizer "$root/charts/runner-sizer" -n ci-sizer --wait --timeout 180s \
  --set global.imageRegistry= \
  --set "webhook.image.tag=$tag" --set webhook.image.pullPolicy=Never \
  --set "recorder.image.tag=$tag" --set recorder.image.pullPolicy=Never \
  --set global.sizer.url=http://receiver.ci-sizer:8080 \
  --set global.sizer.readToken=read-token --set global.sizer.pushToken=push-token \
  --set webhook.sidecarImage=busybox:1.36

# The default TLS mode (managed) fills the caBundle from the webhook pod after install.
for _ in $(seq 60); do
  bundle="$(kubectl get mutatingwebhookconfigurations -l app.kubernetes.io/instance=runner-sizer \
    -o jsonpath='{.items[*].webhooks[*].clientConfig.caBundle}')"
  [ -n "$bundle" ] && break
  sleep 2
done
[ -n "$bundle" ] || { echo "e2e-kind: the webhook never patched its caBundle" >&2; exit 1; }

kubectl create namespace gitlab-runner --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace gitlab-runner ci-sizer.devfw.io/watch=true --overwrite
"$root/.venv/bin/python" - <<'PY' | kubectl -n gitlab-runner create -o name -f - > /tmp/runner-sizer-kind-pod
import json
from runner_sizer.devcluster.runnerpods import RunnerJob, runner_pod
print(json.dumps(runner_pod(RunnerJob())))
PY
pod="$(cat /tmp/runner-sizer-kind-pod)"
status="$(kubectl -n gitlab-runner get "$pod" -o jsonpath='{.metadata.annotations.runner-sizer\.io/status}')"
sidecar="$(kubectl -n gitlab-runner get "$pod" -o jsonpath='{.spec.initContainers[-1].name}')"
echo "status: $status"
[ "$sidecar" = "sizer-collector" ] || { echo "e2e-kind: no collector sidecar" >&2; exit 1; }
echo "e2e-kind: passed"
