#!/usr/bin/env bash
# Builds kustomize from its Go module and caches it outside the repository:
#   $IAMRA_TEST_BINS_ROOT (default ~/.cache/iamra-test-bins)/kustomize-<version>/kustomize
# tests/cluster/chart.rs builds config/default with it (what `kubectl apply -k` does) and applies
# the result to the real API server. kustomize takes its version from the module's build info,
# so no ldflags are needed. A warm cache returns at once; a cold build takes about a minute.
# Prints the path of the binary on its last line.
set -euo pipefail

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.7.1}"
root="${IAMRA_TEST_BINS_ROOT:-$HOME/.cache/iamra-test-bins}"
out="$root/kustomize-$KUSTOMIZE_VERSION"
bin="$out/kustomize"

if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$out"
GOBIN="$out/gobin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
mv "$out/gobin/kustomize" "$bin"
rmdir "$out/gobin"
echo "$bin"
