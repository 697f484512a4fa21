#!/usr/bin/env bash
# Builds the real control-plane binaries (kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl, etcd) and the tools the tests use (helm,
# promtool, the Prometheus server; vegeta with `bench`) from the published Go modules,
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
prometheus_dir="$cache/prometheus-$PROMETHEUS_VERSION"
helm_docs_dir="$cache/helm-docs-$HELM_DOCS_VERSION"
mkdir -p "$cache"

# Moves a finished build ($1) into place ($2). Each build works in its own
# temporary directory, so two build.sh runs at once (tests started in parallel)
# never see a half-made directory; the one that finishes first wins.
publish() { chmod 755 "$1"; mv -T "$1" "$2" 2>/dev/null || [ -d "$2" ]; }

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: needs a Go toolchain (>= 1.25) and the Go module proxy to build the control plane; or point the tests at an existing cluster: KUBECONFIG=/path/to/kubeconfig make e2e" >&2
    exit 3
  fi
}

build_kubernetes() (
  [ -x "$k8s_dir/kube-apiserver" ] && [ -x "$k8s_dir/kubectl" ] && exit 0
  need_go
  local work out minor
  work="$(mktemp -d)"
  out="$(mktemp -d "$k8s_dir.tmp.XXXXXX")"
  trap 'rm -rf "$work" "$out"' EXIT
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
  GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$out/" $pkgs
  publish "$out" "$k8s_dir"
)

build_etcd() (
  [ -x "$etcd_dir/etcd" ] && exit 0
  need_go
  local work out
  work="$(mktemp -d)"
  out="$(mktemp -d "$etcd_dir.tmp.XXXXXX")"
  trap 'rm -rf "$work" "$out"' EXIT
  cd "$work"
  printf 'module runner-sizer/etcd\n\ngo 1.25\n' > go.mod
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
  if ! GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1; then
    echo "build.sh: cannot fetch go.etcd.io/etcd/server/v3@$ETCD_VERSION from the Go module proxy; or use an existing cluster: KUBECONFIG=/path/to/kubeconfig make e2e" >&2
    exit 3
  fi
  GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1
  GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" .
  publish "$out" "$etcd_dir"
)


# A plain `go install` of a module without replace directives into $1;
# $3 adds linker flags (version stamps), $4 build tags.
go_install() (
  local dir="$1" module="$2" ldflags="${3:-}" tags="${4:-}" out
  [ -d "$dir" ] && exit 0
  need_go
  cd "$root"
  out="$(mktemp -d "$dir.tmp.XXXXXX")"
  trap 'rm -rf "$out"' EXIT
  if ! GOWORK=off CGO_ENABLED=0 GOBIN="$out" go install -trimpath -tags "$tags" -ldflags "-s -w $ldflags" "$module"; then
    echo "build.sh: cannot build $module (needs the Go module proxy)" >&2
    exit 3
  fi
  publish "$out" "$dir"
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
    out="$(mktemp -d "$crd_dir.tmp.XXXXXX")"
    trap 'rm -rf "$out"' EXIT
    cp "$po"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml "$out/"
    cp "$cm"/deploy/crds/cert-manager.io_{certificates,issuers}.yaml "$out/"
    chmod 644 "$out"/*
    publish "$out" "$crd_dir"
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
# The Prometheus server the recommender's tests query. Static scrape configs
# only (remove_all_sd drops the cloud service-discovery SDKs) and no web UI
# assets (the module ships none): the HTTP API is all the
# tests use. Module v0.MMM.P is Prometheus M.MM.P.
prometheus_release="${PROMETHEUS_VERSION#v0.}"
prometheus_release="$((${prometheus_release%%.*} / 100)).$((${prometheus_release%%.*} % 100)).${prometheus_release#*.}"
go_install "$prometheus_dir" "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
  "-X github.com/prometheus/common/version.Version=$prometheus_release" remove_all_sd
# helm-docs writes the chart README from the annotated values.
go_install "$helm_docs_dir" "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
build_kubernetes
for d in "$k8s_dir" "$etcd_dir" "$helm_dir" "$promtool_dir" "$helm_docs_dir" "$prometheus_dir"; do echo "$d"; done
