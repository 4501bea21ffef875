#!/usr/bin/env bash
# Installs what the tests need and a fresh machine lacks; each step is skipped when already done.
#   openssl          checks every certificate and CRL the tests produce
#   moto[server]     the KMS emulator (moto_server on loopback)
#   kube-apiserver, etcd   built from Go modules, cached in ~/.cache/iamra-test-bins
#   aws_signing_helper     AWS's official Roles Anywhere credential helper, built from its Go
#                          module (cgo), cached in ~/.cache/iamra-test-bins; the reference client
#                          the emulator is tested against
#   helm             built from its Go module, cached in ~/.cache/iamra-test-bins; lints, renders
#                    and (in tests/cluster) applies charts/iamra
#   kustomize        likewise; tests/cluster builds config/default with it and applies the result
#   actionlint       likewise; .ci/run checks the kind workflow with it
#   shellcheck       actionlint checks the workflow's shell scripts with it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v openssl >/dev/null 2>&1; then
  echo "installing openssl" >&2
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "installing shellcheck" >&2
  apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null
fi

if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
  echo "installing moto[server]" >&2
  python3 -m pip install --quiet 'moto[server]>=5,<6'
fi

bash tests/kube-bins/build.sh >/dev/null
bash tests/rolesanywhere-helper/build.sh >/dev/null
bash tests/helm/build.sh >/dev/null
bash tests/kustomize/build.sh >/dev/null
bash tests/actionlint/build.sh >/dev/null
