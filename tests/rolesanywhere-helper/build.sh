#!/usr/bin/env bash
# Builds AWS's official IAM Roles Anywhere credential helper (aws_signing_helper) from its Go module,
# cgo on (its PKCS#11/TPM support links C), and caches it outside the repository:
#   $IAMRA_TEST_BINS_ROOT (default ~/.cache/iamra-test-bins)/rolesanywhere-credential-helper-<version>/aws_signing_helper
# The tests run it against `iamra rolesanywhere-emulator` as the reference client.
#
# The issue asked for v1.8.0; the Go module proxy on this machine refuses it
# ("403 Forbidden: This module version is not available") and serves only v1.4.0, so v1.4.0 is the
# default. Override with HELPER_VERSION=vX.Y.Z where a newer one is served.
# Prints the path of the binary on its last line.
set -euo pipefail

HELPER_VERSION="${HELPER_VERSION:-v1.4.0}"
source "$(dirname "${BASH_SOURCE[0]}")/../go-tools.sh"
bin="$(tool_path "rolesanywhere-credential-helper-$HELPER_VERSION" aws_signing_helper)"
exit_if_built "$bin"

go_install_tool "$bin" "github.com/aws/rolesanywhere-credential-helper@$HELPER_VERSION" rolesanywhere-credential-helper "" 1
