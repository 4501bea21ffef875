#!/usr/bin/env bash
# Builds actionlint (the GitHub Actions workflow checker) from its Go module and caches it outside
# the repository:
#   $IAMRA_TEST_BINS_ROOT (default ~/.cache/iamra-test-bins)/actionlint-<version>/actionlint
# .ci/run checks .github/workflows/ with it: the kind workflow cannot run here (no container
# engine), so this is the check it gets. Version ldflags as in actionlint's .goreleaser.yaml.
# A warm cache returns at once; a cold build takes about a minute.
# Prints the path of the binary on its last line.
set -euo pipefail

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
source "$(dirname "${BASH_SOURCE[0]}")/../go-tools.sh"
bin="$(tool_path "actionlint-$ACTIONLINT_VERSION" actionlint)"
exit_if_built "$bin"

ldflags="-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
go_install_tool "$bin" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" actionlint "$ldflags" 0
