#!/usr/bin/env bash
# Builds every fuzz target and runs each for FUZZ_SECONDS (default 20) from the corpus kept in
# fuzz/corpus/<target>; prints executions per target and fails if any target found a crash (the
# input is then in fuzz/artifacts/<target>/). New inputs found go to a scratch directory, so the
# checkout is not changed; `FUZZ_KEEP=1` merges them into fuzz/corpus instead.
#
# cargo-fuzz is installed from crates.io into ~/.cache/iamra-test-bins (reused when present);
# the build goes to ~/.cache/iamra-fuzz/target so a warm machine rebuilds only what changed.
# Coverage instrumentation needs the nightly toolchain. No sanitizer: the crate has no unsafe
# code outside the development tooling, and the C in aws-lc is not instrumented by
# `-Zsanitizer` anyway; without it every target builds in one pass and runs about twice as fast.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds="${FUZZ_SECONDS:-20}"
cache="${IAMRA_TEST_BINS_CACHE:-$HOME/.cache/iamra-test-bins}"
cargo_fuzz_version=0.13.2
cargo_fuzz="$cache/cargo-fuzz-$cargo_fuzz_version/bin/cargo-fuzz"
target_dir="${IAMRA_FUZZ_TARGET_DIR:-$HOME/.cache/iamra-fuzz/target}"

if [[ ! -x "$cargo_fuzz" ]]; then
  echo "installing cargo-fuzz $cargo_fuzz_version" >&2
  cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version" \
    --root "$cache/cargo-fuzz-$cargo_fuzz_version"
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi

# Through cargo, so that `+nightly` picks the toolchain.
export PATH="$(dirname "$cargo_fuzz"):$PATH"
fuzz() { cargo +nightly fuzz "$@"; }
build_flags=(--sanitizer none --debug-assertions --target-dir "$target_dir")

fuzz build "${build_flags[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
printf '%-26s %12s %10s %8s\n' target executions "exec/s" corpus
for target in $(fuzz list); do
  mkdir -p "$scratch/$target" "corpus/$target"
  log="$scratch/$target.log"
  # The first directory receives new inputs; the kept corpus is only read.
  if fuzz run "${build_flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -max_len=65536 \
    >"$log" 2>&1; then
    status=ok
  else
    status=failed
    failed+=("$target")
  fi
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  found="$(find "$scratch/$target" -type f | wc -l)"
  printf '%-26s %12s %10s %8s %s\n' "$target" "${executions:-?}" "${rate:-?}" "+$found" "$status"
  if [[ "$status" == failed ]]; then
    tail -n 40 "$log" >&2
  fi
  if [[ "${FUZZ_KEEP:-}" == 1 && "$status" == ok ]]; then
    cp -n "$scratch/$target"/* "corpus/$target/" 2>/dev/null || true
    fuzz cmin "${build_flags[@]}" "$target" "corpus/$target" >/dev/null 2>&1
  fi
done
if ((${#failed[@]})); then
  echo "fuzz targets that failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
