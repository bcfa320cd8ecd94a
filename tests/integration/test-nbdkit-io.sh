#!/bin/bash
# Random reads, writes and zeroes through the real nbdkit and libnbd at
# aligned and unaligned offsets, 1 byte to 32 MiB, checked against a shadow
# copy; then the data must survive a restart, and the backing file must hold
# no plaintext that was written.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh
IOTEST=$CV_SRCDIR/tests/integration/iotest.py
seed=${CV_TEST_SEED:-$RANDOM}

for ss in 4096 512; do
  new_volume vol$ss 96M --sector-size $ss
  serve vol$ss keyfile=vol$ss.kek -- python3 "$IOTEST" '$uri' random $seed 300 sum$ss
  pass "sector size $ss: random I/O verified (seed $seed)"
  serve vol$ss keyfile=vol$ss.kek -- python3 "$IOTEST" '$uri' checksum sum$ss
  pass "sector size $ss: contents survive a restart"
done

# A recognisable plaintext must not appear in the backing file.
new_volume plain 8M
python3 -c 'import sys; sys.stdout.buffer.write(b"CRYPTVOL-PLAINTEXT-MARKER-" * 40000)' > pattern
serve plain keyfile=plain.kek -- nbdcopy pattern '$uri'
serve plain keyfile=plain.kek -- nbdcopy '$uri' back
cmp -n "$(stat -c %s pattern)" back pattern || fail "pattern does not read back"
if grep -q "PLAINTEXT-MARKER" plain; then
  fail "plaintext found in the backing file"
fi
pass "backing file holds no plaintext of what was written"

# direct=true (O_DIRECT): the same random I/O, through aligned bounce buffers.
new_volume dvol 48M
if serve dvol keyfile=dvol.kek direct=true -- true 2>derr; then
  serve dvol keyfile=dvol.kek direct=true -- python3 "$IOTEST" '$uri' random $seed 150 dsum
  serve dvol keyfile=dvol.kek -- python3 "$IOTEST" '$uri' checksum dsum
  pass "direct=true: random I/O verified, and the same data reads back buffered"
else
  grep -q "does not support O_DIRECT" derr || { cat derr; fail "direct=true refused for another reason"; }
  echo "note: $TMPDIR's file system has no O_DIRECT; direct=true not exercised"
fi

# Read-only: readonly=true and nbdkit -r both refuse writes; data is intact.
cat > ro.py <<'EOS'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
assert h.is_read_only(), "export not advertised read-only"
try:
    h.pwrite(b"x" * 4096, 0)
    sys.exit("write to a read-only export succeeded")
except nbd.Error:
    pass
EOS
before=$(sha256sum dvol)
serve dvol keyfile=dvol.kek readonly=true -- python3 ro.py '$uri'
nbdkit -r -U - "$PLUGIN" dvol keyfile=dvol.kek --run 'python3 ro.py "$uri"'
[ "$(sha256sum dvol)" = "$before" ] || fail "read-only serving changed the volume"
pass "readonly=true and nbdkit -r refuse writes"
