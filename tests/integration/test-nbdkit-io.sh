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
