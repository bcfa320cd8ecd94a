#!/bin/bash
# The plugin built with AddressSanitizer, UndefinedBehaviorSanitizer and
# LeakSanitizer (make sanitize), loaded into the real nbdkit: random I/O at
# every alignment, four connections sharing edge sectors, write-zeroes and
# direct=true, on both I/O backends. nbdkit is stopped with SIGTERM, so the
# plugin unloads and the leak check runs: a memory error, undefined
# behaviour, or a leak allocated by our code fails the test.
source "$(dirname "$0")/functions.sh"
requires nbdkit gcc python3
SAN_PLUGIN=$CV_SRCDIR/build-san/nbdkit-cryptvol-plugin.so
[ -f "$SAN_PLUGIN" ] || { echo "SKIP: run make sanitize first"; exit 77; }
IOTEST=$CV_SRCDIR/tests/integration/iotest.py
PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
seed=${CV_TEST_SEED:-$RANDOM}

# start PARAMS...: nbdkit with the sanitized plugin (and only it sanitized),
# in the background; returns once it listens. stop: SIGTERM, then check.
start () {
  rm -f pid sock
  env LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=detect_leaks=1:exitcode=66 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    nbdkit -f -U "$tmp/sock" -P "$tmp/pid" "$SAN_PLUGIN" "$@" 2>err &
  srv=$!
  cleanup_hooks+=("kill $srv 2>/dev/null")
  for _ in $(seq 1 200); do
    [ -s pid ] && break
    kill -0 $srv 2>/dev/null || { cat err; fail "nbdkit did not start"; }
    sleep 0.05
  done
  [ -s pid ] || fail "nbdkit did not listen within 10 s"
  uri="nbd+unix:///?socket=$tmp/sock"
}
stop () {
  kill -TERM $srv
  local rc=0
  wait $srv || rc=$?
  # Memory errors and undefined behaviour anywhere fail; a leak fails when
  # our code allocated it (nbdkit 1.32 itself leaks a few bytes at exit).
  if grep -q "ERROR: AddressSanitizer\|runtime error" err ||
     { grep -q "LeakSanitizer" err && grep -q " in \(cv_\|cryptvol_\)" err; } ||
     { [ $rc -ne 0 ] && [ $rc -ne 66 ]; } ||
     { [ $rc -eq 66 ] && ! grep -q "LeakSanitizer" err; }; then
    cat err; fail "$1: sanitizer report, or nbdkit exit $rc"
  fi
}

new_volume vol 16M
start vol keyfile=vol.kek
python3 "$IOTEST" "$uri" random $seed 200 sum
stop "random I/O"
pass "200 random operations, then unload: sanitizers quiet (seed $seed)"

start vol keyfile=vol.kek
writers=()
for i in 0 1 2 3; do python3 "$IOTEST" "$uri" part $i 4 $seed & writers+=($!); done
for w in "${writers[@]}"; do wait $w || fail "writer $w failed"; done
python3 "$IOTEST" "$uri" parts 4 $seed
stop "four connections"
pass "four concurrent connections sharing edge sectors: sanitizers quiet"

if nbdkit -U - "$PLUGIN" vol keyfile=vol.kek direct=true --run true 2>/dev/null; then
  start vol keyfile=vol.kek direct=true
  python3 "$IOTEST" "$uri" random $seed 100 dsum
  stop "direct=true"
  pass "direct=true: sanitizers quiet"
fi

# The portable backend (what serves where io_uring is refused), buffered and
# direct.
start vol keyfile=vol.kek io=posix
python3 "$IOTEST" "$uri" random $seed 200 sum
stop "io=posix"
pass "io=posix: 200 random operations, then unload: sanitizers quiet"
if nbdkit -U - "$PLUGIN" vol keyfile=vol.kek direct=true --run true 2>/dev/null; then
  start vol keyfile=vol.kek direct=true io=posix
  python3 "$IOTEST" "$uri" random $seed 100 dsum
  stop "io=posix direct=true"
  pass "io=posix direct=true: sanitizers quiet"
fi
