#!/usr/bin/env bash
# The test command: installs what the tests need (see tests/install-deps.sh), then runs every
# unit and integration test. Integration tests start their own etcd + kube-apiserver on loopback.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/install-deps.sh
cargo test --locked "$@"
