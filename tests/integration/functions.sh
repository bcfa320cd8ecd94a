# Shared helpers for integration tests; source it first thing.
# Every test gets a private $tmp (removed by the trap) and fails on the first
# unchecked error. Servers are run captive (nbdkit --run) so they stop with
# the command, or are stopped by the trap.
set -euo pipefail

: "${CV_SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${CV_BUILD:=$CV_SRCDIR/build}"
export PATH=$CV_BUILD:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
PLUGIN=$CV_BUILD/nbdkit-cryptvol-plugin.so
KEYMGR=$CV_BUILD/cryptvol-keymgr

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cv-test.XXXXXX")
cleanup_hooks=()
cleanup () {
  local h
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"

# Skip the test (exit 77) unless every command named is installed.
requires () {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || { echo "SKIP: $c is not installed"; exit 77; }
  done
}

fail () { echo "FAIL: $*" >&2; exit 1; }
pass () { echo "ok: $*"; }

# Small, fast passphrase KDF settings for tests (defaults are for real use).
FAST_KDF=(--pbkdf-memory 8M --pbkdf-time 1 --pbkdf-parallel 1)

# new_volume NAME SIZE [keymgr create options...]: a volume NAME with a
# fresh key file NAME.kek.
new_volume () {
  local name=$1 size=$2; shift 2
  "$KEYMGR" genkey "$name.kek" >/dev/null
  "$KEYMGR" create "$name" --size "$size" --wrap "file:$name.kek" "$@" >/dev/null
}

# serve VOLUME [plugin params...] -- COMMAND ARGS...: run the command while
# nbdkit serves the volume on a private Unix socket; each argument keeps its
# quoting, and the text $uri in an argument becomes the server's NBD URI.
serve () {
  local args=() cmd
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  cmd=$(printf '%q ' "$@")
  cmd=${cmd//\\\$uri/\"\$uri\"}
  nbdkit -U - "$PLUGIN" "${args[@]}" --run "$cmd"
}

# expect_fail WHAT PATTERN COMMAND...: COMMAND must fail and its stderr must
# match the extended regex PATTERN.
expect_fail () {
  local what=$1 pattern=$2; shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err"; then
    cat "$tmp/out" "$tmp/err" >&2
    fail "$what: succeeded, should have failed"
  fi
  if ! grep -Eq "$pattern" "$tmp/err"; then
    sed 's/^/    stderr| /' "$tmp/err" >&2
    fail "$what: error message does not match /$pattern/"
  fi
  pass "$what: $(grep -E -m1 "$pattern" "$tmp/err")"
}
