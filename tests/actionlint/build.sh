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
root="${IAMRA_TEST_BINS_ROOT:-$HOME/.cache/iamra-test-bins}"
out="$root/actionlint-$ACTIONLINT_VERSION"
bin="$out/actionlint"

if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$out"
ldflags="-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
GOBIN="$out/gobin" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
  "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
mv "$out/gobin/actionlint" "$bin"
rmdir "$out/gobin"
echo "$bin"
