#!/bin/bash
# Random reads, writes and zeroes through the real nbdkit and libnbd at
# aligned and unaligned offsets, 1 byte to 32 MiB, checked against a shadow
# copy; then the data must survive a restart, and the backing file must hold
# no plaintext that was written. Every case runs on both I/O backends: on
# io_uring (io=io_uring), then under a seccomp filter refusing io_uring
# (tests/tools/no-uring), where nbdkit must serve through the portable
# backend after exactly one warning naming io_uring.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh
IOTEST=$CV_SRCDIR/tests/integration/iotest.py
NO_URING=$CV_BUILD/tools/no-uring
seed=${CV_TEST_SEED:-$RANDOM}
[ -x "$NO_URING" ] || fail "$NO_URING is not built (make)"

# run_cases NAME [PLUGIN PARAMS...]: every case, in directory NAME, each
# server started with the params given.
run_cases () {
  local be=$1; shift
  local io=("$@")
  mkdir "$be" && cd "$be"

  for ss in 4096 512; do
    new_volume vol$ss 96M --sector-size $ss
    serve vol$ss keyfile=vol$ss.kek "${io[@]}" -- python3 "$IOTEST" '$uri' random $seed 300 sum$ss
    pass "$be: sector size $ss: random I/O verified (seed $seed)"
    serve vol$ss keyfile=vol$ss.kek "${io[@]}" -- python3 "$IOTEST" '$uri' checksum sum$ss
    pass "$be: sector size $ss: contents survive a restart"
  done

  # A recognisable plaintext must not appear in the backing file.
  new_volume plain 8M
  python3 -c 'import sys; sys.stdout.buffer.write(b"CRYPTVOL-PLAINTEXT-MARKER-" * 40000)' > pattern
  serve plain keyfile=plain.kek "${io[@]}" -- nbdcopy pattern '$uri'
  serve plain keyfile=plain.kek "${io[@]}" -- nbdcopy '$uri' back
  cmp -n "$(stat -c %s pattern)" back pattern || fail "$be: pattern does not read back"
  if grep -q "PLAINTEXT-MARKER" plain; then
    fail "$be: plaintext found in the backing file"
  fi
  pass "$be: backing file holds no plaintext of what was written"

  # direct=true (O_DIRECT): the same random I/O, through aligned bounce buffers.
  new_volume dvol 48M
  if serve dvol keyfile=dvol.kek direct=true "${io[@]}" -- true 2>derr; then
    serve dvol keyfile=dvol.kek direct=true "${io[@]}" -- python3 "$IOTEST" '$uri' random $seed 150 dsum
    serve dvol keyfile=dvol.kek "${io[@]}" -- python3 "$IOTEST" '$uri' checksum dsum
    pass "$be: direct=true: random I/O verified, and the same data reads back buffered"
  else
    grep -q "does not support O_DIRECT" derr || { cat derr; fail "$be: direct=true refused for another reason"; }
    echo "note: ${TMPDIR:-/tmp}'s file system has no O_DIRECT; direct=true not exercised"
  fi

  # Read-only: readonly=true and nbdkit -r both refuse writes; data is intact.
  cat > ro.py <<'EOF'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
assert h.is_read_only(), "export not advertised read-only"
try:
    h.pwrite(b"x" * 4096, 0)
    sys.exit("write to a read-only export succeeded")
except nbd.Error:
    pass
EOF
  before=$(sha256sum dvol)
  serve dvol keyfile=dvol.kek readonly=true "${io[@]}" -- python3 ro.py '$uri'
  nbdkit -r -U - "$PLUGIN" dvol keyfile=dvol.kek "${io[@]}" --run 'python3 ro.py "$uri"'
  [ "$(sha256sum dvol)" = "$before" ] || fail "$be: read-only serving changed the volume"
  pass "$be: readonly=true and nbdkit -r refuse writes"
  cd ..
}

if serve_err=$(nbdkit -U - "$PLUGIN" /dev/null io=io_uring --run true 2>&1) ||
   ! grep -q "io_uring is not available" <<<"$serve_err"; then
  ( run_cases io_uring io=io_uring )
else
  echo "note: io_uring does not work here ($serve_err); only the portable backend is tested"
fi

# nbdkit where io_uring is refused, as the portable pass runs it: its output
# must name io_uring exactly once, in the fallback warning.
real_nbdkit=$(command -v nbdkit)
mkdir bin-no-uring
cat > bin-no-uring/nbdkit <<EOF
#!/bin/bash
"$NO_URING" "$real_nbdkit" "\$@" 2>"$tmp/nbdkit.err"
rc=\$?
cat "$tmp/nbdkit.err" >&2
n=\$(grep -c io_uring "$tmp/nbdkit.err")
if [ "\$n" != 1 ] || ! grep -q "^nbdkit: .*error: warning: io_uring is not available (Operation not permitted: refused by a seccomp filter or kernel.io_uring_disabled); using the portable backend\$" "$tmp/nbdkit.err"; then
  echo "FAIL: nbdkit without io_uring: \$n lines name io_uring, expected one warning" >&2
  exit 1
fi
exit \$rc
EOF
chmod +x bin-no-uring/nbdkit
( PATH=$tmp/bin-no-uring:$PATH; run_cases portable )

# What io_uring wrote reads back through the portable backend.
if [ -d io_uring ]; then
  ( PATH=$tmp/bin-no-uring:$PATH
    serve io_uring/vol4096 keyfile=io_uring/vol4096.kek -- python3 "$IOTEST" '$uri' checksum io_uring/sum4096 )
  pass "data written through io_uring reads back through the portable backend"
fi

# io=io_uring where io_uring is refused is an error at start-up; io=posix
# needs no io_uring and says nothing about it; io= takes three values.
expect_fail "io=io_uring without io_uring" \
  '^nbdkit: error: io_uring is not available \(Function not implemented: refused by a seccomp filter or kernel.io_uring_disabled\); the portable backend \(io=auto or io=posix\) works without it$' \
  "$NO_URING" -e ENOSYS nbdkit -U - "$PLUGIN" portable/plain keyfile=portable/plain.kek io=io_uring --run true
"$NO_URING" nbdkit -U - "$PLUGIN" portable/plain keyfile=portable/plain.kek io=posix \
  --run 'nbdcopy "$uri" back' 2>err
cmp -n "$(stat -c %s portable/pattern)" back portable/pattern || fail "io=posix: pattern does not read back"
! grep io_uring err || fail "io=posix mentions io_uring"
pass "io=posix serves without a word about io_uring"
expect_fail "io=bogus" "io=bogus: expected auto, io_uring or posix" \
  nbdkit -U - "$PLUGIN" portable/plain keyfile=portable/plain.kek io=bogus --run true
