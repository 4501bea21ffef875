#!/usr/bin/env bash
# Builds helm from its Go module (no registry on this machine ships the binary) and caches it
# outside the repository:
#   $IAMRA_TEST_BINS_ROOT (default ~/.cache/iamra-test-bins)/helm-<version>/helm
# The tests run `helm lint` and `helm template` on charts/iamra with it.
#
# The ldflags are the ones helm's own Makefile sets for a release build (variable names checked in
# helm.sh/helm/v3@v3.19.0: internal/version/version.go, pkg/chartutil/capabilities.go,
# pkg/lint/rules/deprecations.go). Without the k8sVersion pair helm would claim Kubernetes 1.20 in
# `.Capabilities` and lint deprecations against it. gitCommit is left empty: the module proxy does
# not record the commit a tag points at, and `helm version` shows the empty field honestly.
# A warm cache returns at once; a cold build takes a few minutes on 2 cores.
# Prints the path of the binary on its last line.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.0}"
source "$(dirname "${BASH_SOURCE[0]}")/../go-tools.sh"
bin="$(tool_path "helm-$HELM_VERSION" helm)"
exit_if_built "$bin"

# helm's Makefile derives the Kubernetes version it reports from the client-go it is built with
# (v0.34.x -> 1.34); do the same from the module's go.mod instead of typing it.
helm_gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
client_go="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*$/\1/p' "$helm_gomod")"
if [[ -z "$client_go" ]]; then
  echo "could not read the k8s.io/client-go version from $helm_gomod" >&2
  exit 1
fi

version_pkg="helm.sh/helm/v3/internal/version"
ldflags="-s -w -X $version_pkg.version=$HELM_VERSION -X $version_pkg.metadata= -X $version_pkg.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_go"
done

go_install_tool "$bin" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" helm "$ldflags" 0
