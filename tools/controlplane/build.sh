#!/usr/bin/env bash
# Builds the real control-plane binaries (kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl, etcd) and the tools the tests use (helm,
# promtool; vegeta with `bench`) from the published Go modules,
# version-stamped and static, into a cache keyed by version. A warm run is a
# few stat calls.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
VEGETA_VERSION="${VEGETA_VERSION:-v12.13.0}"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
HELM_DOCS_VERSION="${HELM_DOCS_VERSION:-v1.14.2}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.21.2}"

root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${RUNNER_SIZER_BIN_CACHE:-$root/.cache/bin}"
k8s_dir="$cache/kubernetes-$K8S_VERSION"
etcd_dir="$cache/etcd-$ETCD_VERSION"
helm_dir="$cache/helm-$HELM_VERSION"
vegeta_dir="$cache/vegeta-$VEGETA_VERSION"
promtool_dir="$cache/promtool-$PROMETHEUS_VERSION"
helm_docs_dir="$cache/helm-docs-$HELM_DOCS_VERSION"

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: needs a Go toolchain (>= 1.25) and the Go module proxy to build the control plane; or point the tests at an existing cluster: KUBECONFIG=/path/to/kubeconfig make e2e" >&2
    exit 3
  fi
}

build_kubernetes() (
  [ -x "$k8s_dir/kube-apiserver" ] && [ -x "$k8s_dir/kubectl" ] && exit 0
  need_go
  local work minor
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  cd "$work"
  printf 'module runner-sizer/controlplane\n\ngo 1.25\n' > go.mod
  if ! gomod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')" || [ -z "$gomod" ]; then
    echo "build.sh: cannot fetch k8s.io/kubernetes@$K8S_VERSION from the Go module proxy ($(go env GOPROXY)); or use an existing cluster: KUBECONFIG=/path/to/kubeconfig make e2e" >&2
    exit 3
  fi
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo "replace ("
    # Every staging module k8s.io/kubernetes replaces with ./staging must be
    # pinned to its published v0.X.Y twin; the list comes from its own go.mod.
    sed -n '/^replace (/,/^)/p' "$gomod" | awk '/=> \.\/staging/ {print "\t" $1 " => " $1 " v0.'"${K8S_VERSION#v1.}"'"}'
    echo ")"
  } >> go.mod
  local pkgs="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$k8s_dir.tmp"
  GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$k8s_dir.tmp/" $pkgs
  rm -rf "$k8s_dir"; mv "$k8s_dir.tmp" "$k8s_dir"
)

build_etcd() (
  [ -x "$etcd_dir/etcd" ] && exit 0
  need_go
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  printf 'module runner-sizer/etcd\n\ngo 1.25\n' > go.mod
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
  if ! GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1; then
    echo "build.sh: cannot fetch go.etcd.io/etcd/server/v3@$ETCD_VERSION from the Go module proxy; or use an existing cluster: KUBECONFIG=/path/to/kubeconfig make e2e" >&2
    exit 3
  fi
  GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1
  mkdir -p "$etcd_dir.tmp"
  GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$etcd_dir.tmp/etcd" .
  rm -rf "$etcd_dir"; mv "$etcd_dir.tmp" "$etcd_dir"
)


# A plain `go install` of a module without replace directives into $1;
# $3 adds linker flags (version stamps).
go_install() (
  local dir="$1" module="$2" ldflags="${3:-}"
  [ -d "$dir" ] && exit 0
  need_go
  cd "$root"
  if ! GOWORK=off CGO_ENABLED=0 GOBIN="$dir.tmp" go install -trimpath -ldflags "-s -w $ldflags" "$module"; then
    echo "build.sh: cannot build $module (needs the Go module proxy)" >&2
    exit 3
  fi
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
)

# CRD manifests ship inside the projects' Go module zips.
module_dir() (
  cd "$(mktemp -d)"
  printf 'module runner-sizer/crds\n\ngo 1.25\n' > go.mod
  GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'
)

if [ "${1:-}" = "crds" ]; then
  crd_dir="$cache/crds-prometheus-operator-$PROMETHEUS_OPERATOR_VERSION-cert-manager-$CERT_MANAGER_VERSION"
  if [ ! -d "$crd_dir" ]; then
    need_go
    po="$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
    cm="$(module_dir "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")"
    if [ -z "$po" ] || [ -z "$cm" ]; then
      echo "build.sh: cannot fetch the CRD modules from the Go module proxy" >&2
      exit 3
    fi
    mkdir -p "$crd_dir.tmp"
    cp "$po"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml "$crd_dir.tmp/"
    cp "$cm"/deploy/crds/cert-manager.io_{certificates,issuers}.yaml "$crd_dir.tmp/"
    chmod 644 "$crd_dir.tmp"/*
    rm -rf "$crd_dir"; mv "$crd_dir.tmp" "$crd_dir"
  fi
  echo "$crd_dir"
  exit 0
fi

if [ "${1:-}" = "bench" ]; then
  # The load generator for `make bench` only.
  go_install "$vegeta_dir" "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
  echo "$vegeta_dir"
  exit 0
fi

# Independent builds share the Go build cache; run them one after another so
# a 2-core machine is not thrashed.
build_etcd
go_install "$helm_dir" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
# promtool checks metric names and alert rules in the tests.
go_install "$promtool_dir" "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
# helm-docs writes the chart README from the annotated values.
go_install "$helm_docs_dir" "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
build_kubernetes
for d in "$k8s_dir" "$etcd_dir" "$helm_dir" "$promtool_dir" "$helm_docs_dir"; do echo "$d"; done
