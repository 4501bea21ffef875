#!/usr/bin/env bash
# Builds kustomize from its Go module and caches it outside the repository:
#   $IAMRA_TEST_BINS_ROOT (default ~/.cache/iamra-test-bins)/kustomize-<version>/kustomize
# tests/cluster/chart.rs builds config/default with it (what `kubectl apply -k` does) and applies
# the result to the real API server. kustomize takes its version from the module's build info,
# so no ldflags are needed. A warm cache returns at once; a cold build takes about a minute.
# Prints the path of the binary on its last line.
set -euo pipefail

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.7.1}"
source "$(dirname "${BASH_SOURCE[0]}")/../go-tools.sh"
bin="$(tool_path "kustomize-$KUSTOMIZE_VERSION" kustomize)"
exit_if_built "$bin"

go_install_tool "$bin" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" kustomize "-s -w" 0
