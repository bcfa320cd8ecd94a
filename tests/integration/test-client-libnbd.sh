#!/bin/bash
# libnbd's tools on cryptvol: nbdinfo shows the size, block sizes and flags
# the plugin documents; nbdcopy copies a random image (with a zero tail, sent
# as write-zeroes) into a volume over four connections and back out, and from
# one volume to another, each compared byte for byte; an nbdsh script writes,
# zeroes and reads at unaligned offsets and checks the flags.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/vm/helpers.sh"
requires nbdkit nbdinfo nbdcopy nbdsh

new_volume v4k 64M
new_volume v512 64M --sector-size 512

# nbdinfo: size and block sizes (preferred 4096 for both sector sizes).
for v in v4k v512; do
  serve $v keyfile=$v.kek -- nbdinfo --json '$uri' >$v.json
  python3 - $v.json <<'EOS'
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
want = {"export-size": 64 << 20, "block_size_minimum": 1,
        "block_size_preferred": 4096, "block_size_maximum": 32 << 20,
        "can_multi_conn": True, "can_flush": True, "can_fua": True,
        "can_zero": True, "can_trim": False, "is_read_only": False}
bad = {k: (e.get(k), v) for k, v in want.items() if e.get(k) != v}
sys.exit("nbdinfo: %s (got, want)" % bad if bad else 0)
EOS
  pass "nbdinfo $v: 64M, block sizes 1/4096/32M, multi-conn, flush, fua, zero, no trim"
done

# nbdcopy in and out over four connections (nbdcopy opens at most one per
# thread, so -T 4 as well); the log filter counts them.
head -c 40M /dev/urandom >src.img
truncate -s 64M src.img
start_server v4k unix --filter=log "$PLUGIN" v4k keyfile=v4k.kek logfile="$tmp/v4k.log"
uri="nbd+unix:///?socket=$tmp/v4k.sock"
nbdcopy --connections=4 --threads=4 src.img "$uri"
nbdcopy --connections=4 --threads=4 "$uri" out.img
cmp src.img out.img || fail "nbdcopy: the image read back differs"
[ "$(grep -c ' Connect ' v4k.log)" = 8 ] || fail "nbdcopy used $(grep -c ' Connect ' v4k.log) connections, not 4 each way"
grep -q ' Zero ' v4k.log || fail "nbdcopy sent no write-zeroes for the zero tail"
pass "nbdcopy -C 4 in and out (with write-zeroes): byte for byte identical"

# Volume to volume: 4096-byte sectors to 512-byte sectors.
start_server v512 unix "$PLUGIN" v512 keyfile=v512.kek
nbdcopy "$uri" "nbd+unix:///?socket=$tmp/v512.sock"
stop_server v512
serve v512 keyfile=v512.kek -- nbdcopy '$uri' out512.img
cmp src.img out512.img || fail "nbdcopy volume to volume: differs"
pass "nbdcopy from one volume to another (4096- to 512-byte sectors)"

# nbdsh: unaligned writes, zeroes and FUA, checked against a shadow copy
# by a second nbdsh on a new connection.
cp src.img shadow.img
nbdsh -u "$uri" -c '
import os
shadow = bytearray(open("shadow.img", "rb").read())
def put(off, data, flags=0):
    h.pwrite(data, off, flags); shadow[off:off + len(data)] = data
put(1, b"first byte changed")
put(4095, os.urandom(2))                       # straddles a sector boundary
put(123457, os.urandom(70000), nbd.CMD_FLAG_FUA)
h.zero(9999, 40961); shadow[40961:40961 + 9999] = bytes(9999)
put(h.get_size() - 3, b"end")                  # the last bytes
h.flush()
open("shadow.img", "wb").write(shadow)'
nbdsh -u "$uri" -c '
assert h.pread(h.get_size(), 0) == open("shadow.img", "rb").read(), "volume differs from the shadow copy"
assert h.pread(9999, 40961) == bytes(9999), "zeroed range is not zeros"
assert h.pread(3, h.get_size() - 3) == b"end"' || fail "nbdsh: data read back differs"
pass "nbdsh: unaligned writes, FUA, write-zeroes and the last bytes read back on a new connection"
stop_server v4k
