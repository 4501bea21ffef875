# Sourced by the tests/*/build.sh scripts: Go tools built from their modules and cached outside
# the repository, in $IAMRA_TEST_BINS_ROOT (default ~/.cache/iamra-test-bins).

# tool_path DIR NAME: where tool NAME is cached, in the cache directory DIR.
tool_path() {
  echo "${IAMRA_TEST_BINS_ROOT:-$HOME/.cache/iamra-test-bins}/$1/$2"
}

# exit_if_built BIN: prints BIN and ends the calling script when it is already built.
exit_if_built() {
  if [[ -x "$1" ]]; then
    echo "$1"
    exit 0
  fi
}

# go_install_tool BIN PACKAGE@VERSION BUILT_NAME LDFLAGS CGO: go install into BIN's directory,
# renaming the binary go names BUILT_NAME to BIN; prints BIN.
go_install_tool() {
  local bin="$1" package="$2" built="$3" ldflags="$4" cgo="$5"
  local out
  out="$(dirname "$bin")"
  mkdir -p "$out"
  GOBIN="$out/gobin" CGO_ENABLED="$cgo" go install -trimpath -ldflags "$ldflags" "$package"
  mv "$out/gobin/$built" "$bin"
  rmdir "$out/gobin"
  echo "$bin"
}
