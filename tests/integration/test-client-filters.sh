#!/bin/bash
# nbdkit filters stacked above cryptvol: error (fault injection the client
# sees), cache (writeback: writes reach the volume at flush) and stats (what
# reached cryptvol). Random I/O through the stack is checked against a shadow
# copy, injected errors reach the client as EIO without changing data, and
# after the server stops, the volume served without filters holds exactly
# what the client wrote.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/vm/helpers.sh"
requires nbdkit nbdsh
IOTEST=$CV_SRCDIR/tests/integration/iotest.py
seed=${CV_TEST_SEED:-$RANDOM}

new_volume vol 64M
# client -> error -> cache -> stats -> cryptvol
start_server stack unix --filter=error --filter=cache --filter=stats \
  "$PLUGIN" vol keyfile=vol.kek \
  error-rate=100% error-file="$tmp/inject" \
  cache=writeback statsfile="$tmp/stats.txt"
uri="nbd+unix:///?socket=$tmp/stack.sock"

python3 "$IOTEST" "$uri" random "$seed" 150 sum
pass "random I/O through error+cache+stats filters verified (seed $seed)"

# Injected faults: reads and writes fail with EIO while $tmp/inject exists;
# a failed write changes nothing; the same connection works afterwards.
cat >inject.py <<'EOS'
import errno, nbd, os, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
before = h.pread(65536, 1 << 20)
open("inject", "w").close()
for what, op in (("read", lambda: h.pread(4096, 0)),
                 ("write", lambda: h.pwrite(b"X" * 65536, 1 << 20)),
                 ("zero", lambda: h.zero(65536, 1 << 20))):
    try:
        op()
        sys.exit("%s succeeded while errors were injected" % what)
    except nbd.Error as e:
        name = errno.errorcode.get(e.errno, e.errno)   # a number or a name
        assert name == "EIO", "%s: errno %s, not EIO" % (what, name)
        print("injected %s error seen by the client: %s" % (what, e.string))
os.unlink("inject")
assert h.pread(65536, 1 << 20) == before, "a failed write changed the data"
h.flush()
EOS
python3 inject.py "$uri"
python3 "$IOTEST" "$uri" checksum sum
pass "injected EIO on read, write and zero reached the client; data unchanged, connection usable"

stop_server stack
grep -Eq '^write: [1-9][0-9]* ops' stats.txt || { cat stats.txt; fail "stats filter counted no writes"; }
# The writeback cache hands cryptvol whole 64 KiB blocks only (its block
# size), however unaligned the client's writes were: no read-modify-write.
grep -A2 '^write:' stats.txt | grep -q '16 bits: 100.0%' ||
  { cat stats.txt; fail "writes below the cache filter were not all 64 KiB"; }
pass "stats filter below the cache: $(grep -E '^write:' stats.txt | cut -d, -f1), all 64 KiB blocks"

# Without filters, after a restart: the writeback cache flushed everything.
serve vol keyfile=vol.kek -- python3 "$IOTEST" '$uri' checksum sum
pass "after the stacked server stopped, the volume alone holds what the client wrote"

# The cache filter in writethrough mode.
nbdkit -U - --filter=cache "$PLUGIN" vol keyfile=vol.kek cache=writethrough \
  --run "python3 $IOTEST \"\$uri\" random $((seed + 1)) 60 sum2"
serve vol keyfile=vol.kek -- python3 "$IOTEST" '$uri' checksum sum2
pass "cache=writethrough: random I/O verified, and on the volume without filters"
