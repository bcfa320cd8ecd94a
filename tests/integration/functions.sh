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
# SERVE_TIMEOUT=SECONDS bounds it (rserve, below).
serve () {
  local args=() cmd
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  cmd=$(printf '%q ' "$@")
  cmd=${cmd//\\\$uri/\"\$uri\"}
  ${SERVE_TIMEOUT:+timeout -k 5 "$SERVE_TIMEOUT"} \
    nbdkit -U - "$PLUGIN" "${args[@]}" --run "$cmd"
}

# remac HEADER DEKFILE: the MAC of both header copies computed again with the
# DEK in DEKFILE (a volume made with --import-key), after a test edited
# MAC-covered members with cv-tamper set-json: doc/format.md's MAC, in
# Python, as an oracle independent of lib/format.
remac () {
  local mac; mac=$("$KEYMGR" info "$1" --json | python3 -c '
import hashlib, hmac, json, sys
vol = json.load(sys.stdin)["volume"]
dek = open(sys.argv[1], "rb").read()
prk = hmac.new(vol["uuid"].encode(), dek, hashlib.sha256).digest()
key = hmac.new(prk, b"cryptvol v1 metadata mac\x01", hashlib.sha256).digest()
text = json.dumps(vol, sort_keys=True, separators=(",", ":"))
print(hmac.new(key, text.encode(), hashlib.sha256).hexdigest())' "$2")
  "$CV_BUILD/tools/cv-tamper" "$1" set-json both mac "\"$mac\""
}

# --- nbdkit in the background ---------------------------------------------
# nbd_wait SOCKET PID: return once the server (PID) completes an NBD
# handshake on the Unix SOCKET; fail if PID exits first or after 20 s. The
# socket file alone is not enough: nbdkit (and systemd-socket-activate) bind
# it before they listen, and a client that connects in between is refused.
nbd_wait () {
  local _
  for _ in $(seq 1 400); do
    [ -S "$1" ] && nbdsh --opt-mode -u "nbd+unix:///?socket=$1" -c 'h.opt_abort()' >/dev/null 2>&1 &&
      return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# start_nbd VOLUME [PLUGIN-PARAMS...]: serve VOLUME on $SOCK with its control
# socket at $CTL; return once the control socket answers `status`. nbdkit's
# stderr goes to $tmp/nbdkit.log; nbd_opts (an array) holds options for
# nbdkit itself (e.g. -v).
SOCK=$tmp/nbd.sock
CTL=$tmp/ctl.sock
URI="nbd+unix:///?socket=$SOCK"
nbd_pid=
nbd_opts=()
start_nbd () {
  [ -z "$nbd_pid" ] || fail "start_nbd: nbdkit $nbd_pid is still serving (stop_nbd first)"
  rm -f "$SOCK" # a stale $CTL stays: the server must replace it
  nbdkit -f "${nbd_opts[@]}" -U "$SOCK" "$PLUGIN" "$@" control="$CTL" >>"$tmp/nbdkit.log" 2>&1 &
  nbd_pid=$!
  local _
  if nbd_wait "$SOCK" "$nbd_pid"; then
    for _ in $(seq 1 400); do
      "$KEYMGR" status --control "$CTL" --json >/dev/null 2>&1 && return 0
      kill -0 "$nbd_pid" 2>/dev/null || break
      sleep 0.05
    done
  fi
  tail -n 30 "$tmp/nbdkit.log" >&2
  fail "nbdkit did not start serving $1 with a control socket"
}
stop_nbd () { # [SIGNAL] (TERM)
  if [ -n "$nbd_pid" ]; then
    kill -"${1:-TERM}" "$nbd_pid" 2>/dev/null || true
    wait "$nbd_pid" 2>/dev/null || true
    nbd_pid=
  fi
}
cleanup_hooks+=(stop_nbd)

# ms COMMAND...: run COMMAND, its output in $tmp/out and $tmp/err; its
# status in $rc, its wall time in milliseconds in $ms.
ms () {
  local start
  start=$(date +%s%N)
  rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
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

# fuzz_briefly NAME...: a short libFuzzer run of each build-fuzz/fuzz-NAME
# (make fuzz-build: clang, ASan and UBSan) from its seed corpora, for
# FUZZ_CHECK_SECONDS (30) through tests/fuzz/run.sh, five at a time: none
# may crash, leak or time out; a crash's reproducer stays in
# build-fuzz/crashes/ and its path is in this test's log. New inputs go to
# this test's corpus/. Skips the test when clang's libFuzzer is missing.
fuzz_briefly () {
  requires clang
  # Skip only where clang cannot make a fuzzer at all; a fuzzer of ours
  # that does not build is a failure.
  if ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' |
       clang -fsanitize=fuzzer -x c - -o "$tmp/fuzz-probe" >/dev/null 2>&1; then
    echo "SKIP: clang cannot build with -fsanitize=fuzzer (libFuzzer missing)"
    exit 77
  fi
  local goals=() name failed=0
  for name in "$@"; do goals+=("build-fuzz/fuzz-$name"); done
  goals+=(build-fuzz/seeds/.done)
  make -s -j2 -C "$CV_SRCDIR" "${goals[@]}" >build.log 2>&1 || { cat build.log; fail "building the fuzz targets failed"; }
  # Five targets at a time (each gets 2/5 of a core of this 2-core
  # machine; nine targets in two rounds: make check's time), each reporting
  # in run-NAME.out.
  printf '%s\n' "$@" | xargs -P 5 -I{} sh -c '"$1/tests/fuzz/run.sh" -c "$2/corpus" -l "$3" "$4" {} >run-{}.out 2>&1' \
    _ "$CV_SRCDIR" "$tmp" "$CV_BUILD/test-logs" "${FUZZ_CHECK_SECONDS:-30}" || true
  for name in "$@"; do
    if grep -q "^fuzz-$name: .* runs in" "run-$name.out"; then
      pass "$(cat "run-$name.out")"
    else
      cat "run-$name.out"; failed=1
    fi
  done
  [ $failed = 0 ] || fail "a fuzz target found a crash (reproducer above)"
}

# --- a throw-away Ceph cluster ----------------------------------------------
# ceph_start: start a single-node cluster in $CEPH_DIR ($tmp/ceph) on a free
# port (tests/ceph/cluster.sh), point librados and the ceph tools at it
# (exports CEPH_CONF and CEPH_KEYRING, unsets CEPH_ARGS) and stop it in the
# cleanup. Skips the test (77) when Ceph's daemons are not installed. Pool
# "rbd" is ready when it returns (about 1.6 s).
CEPH_DIR=
ceph_start () {
  requires ceph-mon ceph-osd ceph rbd
  CEPH_DIR=$tmp/ceph
  cleanup_hooks+=("\"\$CV_SRCDIR/tests/ceph/cluster.sh\" stop \"\$CEPH_DIR\"")
  "$CV_SRCDIR/tests/ceph/cluster.sh" start "$CEPH_DIR" || fail "the Ceph test cluster did not start"
  # shellcheck disable=SC1091
  . "$CEPH_DIR/env"
}

# rserve: serve bounded by 120 s: an rbd: volume is opened after nbdkit
# forks, and a failed open leaves a --run command waiting.
rserve () { SERVE_TIMEOUT=120 serve "$@"; }
# serve_fails PARAMS...: nbdkit -f serving PARAMS must end by itself (exit
# status nbdkit's; after 60 s it is killed and this succeeds, so that
# expect_fail reports it).
serve_fails () {
  local rc=0
  rm -f "$tmp/refused.sock"
  timeout -k 5 60 nbdkit -f -U "$tmp/refused.sock" "$PLUGIN" "$@" || rc=$?
  if [ $rc = 124 ]; then echo "nbdkit did not end in 60 s" >&2; return 0; fi
  return $rc
}
