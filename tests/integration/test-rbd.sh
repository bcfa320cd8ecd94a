#!/bin/bash
# Volumes on Ceph RBD (issue 17), against a throw-away cluster
# (tests/ceph/cluster.sh):
# - keymgr create rbd:rbd/vol --size makes the image (header + data, with
#   the exclusive-lock feature); served by nbdkit, random I/O at any
#   alignment (iotest.py, checked against a model) reads back, through a
#   restarted server too; 4 connections write at once (ranges meeting
#   inside encryption sectors) and every range reads back after a restart;
# - the image holds no plaintext (rbd export searched for written patterns);
#   write-zeroes reads back zeros and is stored encrypted, not as zeros;
# - the ciphertext equals the file backend's for the same imported DEK and
#   the same data (and zeroes): the data areas of rbd export and of the file
#   are byte for byte equal;
# - create over an existing image (rbd create; size from the image), a
#   second create over a volume refused without --yes, a detached header;
# - keymgr info, list-wraps, add-wrap, verify, remove-wrap, backup-header and
#   restore-header (after both header copies in the image were overwritten)
#   on rbd: paths; --ceph-conf/--ceph-keyring and ceph-conf=/ceph-keyring=
#   with no Ceph environment;
# - bad inputs: rbd:POOL without an image, a missing pool, an unknown image,
#   a missing ceph.conf, and a dead cluster with ceph-timeout=2 (an error in
#   seconds, not a hang).
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy nbdsh nbdinfo jq prlimit
IOTEST=$CV_SRCDIR/tests/integration/iotest.py
seed=${CV_TEST_SEED:-$RANDOM}
MIB=1048576
ceph_start

# rbd_py CODE...: run Python with `image` open (read-write, no lock) on
# rbd/$IMG; librados' own client, independent of cryptvol.
rbd_py () {
  IMG=$1 /usr/bin/python3 -c "
import os, rados, rbd
c = rados.Rados(conffile=''); c.conf_read_file(); c.connect()
io = c.open_ioctx('rbd'); image = rbd.Image(io, os.environ['IMG'])
$2
image.close(); io.close(); c.shutdown()"
}
export_image () { rm -f "$2"; rbd export --no-progress "rbd/$1" "$2" >/dev/null; }
data_offset () { "$KEYMGR" info "$@" --json | jq -r .volume.data_offset; }

# --- create: the image is made, with the exclusive-lock feature -------------
"$KEYMGR" genkey vol.kek >/dev/null
"$KEYMGR" create rbd:rbd/vol --size 16M --wrap file:vol.kek >create.out ||
  { cat create.out; fail "create rbd:rbd/vol"; }
rbd info rbd/vol --format json >rbdinfo.json
off=$(data_offset rbd:rbd/vol)
[ "$(jq .size rbdinfo.json)" = $((off + 16 * MIB)) ] ||
  fail "rbd/vol is $(jq .size rbdinfo.json) bytes, not the data offset $off + 16 MiB"
jq -e '.features | index("exclusive-lock")' rbdinfo.json >/dev/null ||
  fail "rbd/vol was made without exclusive-lock: $(jq -c .features rbdinfo.json)"
pass "create made rbd/vol: $off + 16 MiB, features $(jq -c .features rbdinfo.json)"

# --- random I/O, restart, 4 connections ---------------------------------------
start_nbd rbd:rbd/vol keyfile=vol.kek
[ "$(nbdinfo --size "$URI")" = $((16 * MIB)) ] || fail "the export is not 16 MiB"
python3 "$IOTEST" "$URI" random "$seed" 150 state || fail "random I/O (seed $seed)"
pass "random I/O at any alignment matches the model (seed $seed)"
stop_nbd
start_nbd rbd:rbd/vol keyfile=vol.kek
python3 "$IOTEST" "$URI" checksum state || fail "after a restart the volume differs from the model"
pass "a restarted server reads back what was written"
# 4 connections at once on a 2 MiB volume (each writes 512 KiB in 512-byte
# pieces, read-modify-write of shared sectors: ~1000 requests each).
stop_nbd
"$KEYMGR" create rbd:rbd/mc --size 2M --wrap file:vol.kek >/dev/null || fail "create rbd:rbd/mc"
start_nbd rbd:rbd/mc keyfile=vol.kek
nbdinfo --can multi-conn "$URI" || fail "the rbd: export does not offer multi-conn"
pids=()
for i in 0 1 2 3; do python3 "$IOTEST" "$URI" part $i 4 "$seed" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a writer of 4 concurrent connections failed"; done
stop_nbd
start_nbd rbd:rbd/mc keyfile=vol.kek
python3 "$IOTEST" "$URI" parts 4 "$seed" || fail "4 concurrent connections: a range does not read back"
pass "multi-conn offered; 4 concurrent connections wrote; every range reads back after a restart"
stop_nbd
start_nbd rbd:rbd/vol keyfile=vol.kek

# --- no plaintext in the image; write-zeroes ----------------------------------
# A pattern written over 1 MiB at an unaligned offset, and 2 MiB zeroed
# where data was.
nbdsh -u "$URI" -c "
h.pwrite(b'PLAINTEXT-MARKER-cryptvol-rbd-17:' * 31775, 3 * 1048576 + 123)
h.pwrite(bytes(range(256)) * 8192, 8 * 1048576)
h.zero(2 * 1048576, 8 * 1048576 + 4096)
h.flush()
assert h.pread(2 * 1048576, 8 * 1048576 + 4096) == bytes(2 * 1048576), 'zeroed range does not read zeros'
assert h.pread(4096, 8 * 1048576) == (bytes(range(256)) * 16), 'data before the zeroed range changed'
assert h.pread(33, 3 * 1048576 + 123) == b'PLAINTEXT-MARKER-cryptvol-rbd-17:'
" || fail "write, write-zeroes and read back through the server"
pass "write-zeroes reads back zeros; the data around it is intact"
vol_sum=$(nbdcopy "$URI" - | sha256sum)
stop_nbd
export_image vol vol.raw
[ "$(stat -c %s vol.raw)" = $((off + 16 * MIB)) ] || fail "rbd export has the wrong size"
! grep -aq 'PLAINTEXT-MARKER' vol.raw || fail "the image holds the plaintext pattern"
! grep -aqF "$(printf 'PQRSTUVWXYZ[')" vol.raw || fail "the image holds the plaintext byte ramp"
zeroed=$(dd if=vol.raw bs=4096 skip=$(((off + 8 * MIB + 4096) / 4096)) count=512 status=none | tr -d '\0' | wc -c)
[ "$zeroed" -gt $((MIB)) ] || fail "the zeroed range is stored as zeros ($zeroed non-zero bytes), not encrypted"
pass "rbd export: no plaintext pattern; the zeroed range is stored encrypted"

# --- the ciphertext equals the file backend's ---------------------------------
head -c 64 /dev/urandom >dek && chmod 600 dek
head -c $((4 * MIB)) /dev/urandom >data
for v in eq.img rbd:rbd/eq; do
  "$KEYMGR" create "$v" --size 4M --import-key dek --wrap file:vol.kek >/dev/null || fail "create $v"
  rserve "$v" keyfile=vol.kek -- nbdsh -u '$uri' -c "h.pwrite(open('data', 'rb').read(), 0); h.zero(65536 + 512, 1048576 + 7); h.zero(1048576 - 4096, 3 * 1048576 + 4096); h.flush()" || fail "writing to $v"
done
export_image eq eq.raw
o1=$(data_offset eq.img) o2=$(data_offset rbd:rbd/eq)
[ "$o1" = "$o2" ] || fail "data offsets differ: file $o1, rbd $o2"
cmp <(tail -c +$((o1 + 1)) eq.img) <(tail -c +$((o2 + 1)) eq.raw) ||
  fail "the rbd image's data area differs from the file volume's for the same DEK and data"
! cmp -s <(tail -c +$((o1 + 1)) eq.img) <(head -c $((4 * MIB)) data) || fail "the file volume holds plaintext"
pass "the data area of rbd/eq equals the file volume's byte for byte (same DEK, data and zeroes)"

# --- create over an existing image; refused over a volume; detached header ----
rbd create --no-progress rbd/pre --size $(((off + 8 * MIB) / MIB))
"$KEYMGR" create rbd:rbd/pre --wrap file:vol.kek >/dev/null || fail "create over the existing image rbd/pre"
[ "$("$KEYMGR" info rbd:rbd/pre --json | jq .volume.size)" = $((8 * MIB)) ] ||
  fail "the volume made over rbd/pre does not take its size from the image"
rserve rbd:rbd/pre keyfile=vol.kek -- nbdsh -u '$uri' -c "h.pwrite(b'pre' * 1000, 5000); h.flush()" || fail "writing to rbd/pre"
rserve rbd:rbd/pre keyfile=vol.kek -- nbdsh -u '$uri' -c "assert h.get_size() == 8 * 1048576; assert h.pread(3000, 5000) == b'pre' * 1000" ||
  fail "rbd/pre does not read back"
pass "create over an existing image: sized from the image, serves, reads back"
expect_fail "create over an image that holds a volume, without --yes" 'rbd:rbd/pre' \
  "$KEYMGR" create rbd:rbd/pre --wrap file:vol.kek
rserve rbd:rbd/pre keyfile=vol.kek -- nbdsh -u '$uri' -c "assert h.pread(3000, 5000) == b'pre' * 1000" || fail "the refused create changed rbd/pre"

"$KEYMGR" create rbd:rbd/det --size 4M --detached-header det.hdr --wrap file:vol.kek >/dev/null ||
  fail "create rbd:rbd/det --detached-header"
doff=$(data_offset rbd:rbd/det --header det.hdr)
[ "$(rbd info rbd/det --format json | jq .size)" = $((doff + 4 * MIB)) ] ||
  fail "rbd/det is not the data offset $doff + 4 MiB"
rserve rbd:rbd/det header=det.hdr keyfile=vol.kek -- nbdsh -u '$uri' -c "h.pwrite(b'detached' * 512, 4096); h.flush()" || fail "writing to rbd/det"
rserve rbd:rbd/det header=det.hdr keyfile=vol.kek -- nbdsh -u '$uri' -c "assert h.pread(4096, 4096) == b'detached' * 512" || fail "rbd/det does not read back"
export_image det det.raw
! grep -aq 'aes-xts-plain64\|detached' det.raw || fail "the detached volume's image holds its header or plaintext"
expect_fail "rbd/det served without its detached header" 'rbd:rbd/det' \
  serve_fails rbd:rbd/det keyfile=vol.kek
pass "detached header: image of $doff + 4 MiB with no header in it; serves with header="

# --- keymgr commands on rbd: paths ----------------------------------------------
"$KEYMGR" info rbd:rbd/vol >info.out || fail "info rbd:rbd/vol"
grep -q 'aes-xts-plain64' info.out || { cat info.out; fail "info shows no cipher"; }
"$KEYMGR" list-wraps rbd:rbd/vol --json >wraps.json || fail "list-wraps rbd:rbd/vol"
[ "$(jq length wraps.json)" = 1 ] || fail "list-wraps: not one wrap: $(cat wraps.json)"
"$KEYMGR" genkey b.kek >/dev/null
"$KEYMGR" add-wrap rbd:rbd/vol --wrap file:b.kek --keyfile vol.kek >/dev/null || fail "add-wrap rbd:rbd/vol"
"$KEYMGR" verify rbd:rbd/vol --keyfile b.kek >/dev/null || fail "verify rbd:rbd/vol with the added wrap"
id_a=$("$KEYMGR" list-wraps rbd:rbd/vol --json | jq -r '.[0].id')
"$KEYMGR" remove-wrap rbd:rbd/vol --id "$id_a" --keyfile b.kek >/dev/null || fail "remove-wrap rbd:rbd/vol"
expect_fail "verify with the removed wrap's key" 'rbd:rbd/vol|unlock|wrap' \
  "$KEYMGR" verify rbd:rbd/vol --keyfile vol.kek
[ "$(rserve rbd:rbd/vol keyfile=b.kek -- nbdcopy '$uri' - | sha256sum)" = "$vol_sum" ] ||
  fail "after add-wrap/remove-wrap the data does not read back with the new key"
pass "info, list-wraps, add-wrap, verify, remove-wrap on rbd:rbd/vol"

"$KEYMGR" backup-header rbd:rbd/vol hdr.bak >/dev/null || fail "backup-header rbd:rbd/vol"
[ -s hdr.bak ] || fail "backup-header wrote nothing"
# Both header copies overwritten in the image (by librbd directly).
rbd_py vol "image.write(b'\\xa5' * 131072, 0)"
expect_fail "rbd/vol with both header copies overwritten" 'rbd:rbd/vol' \
  "$KEYMGR" verify rbd:rbd/vol --keyfile b.kek
"$KEYMGR" restore-header rbd:rbd/vol hdr.bak --keyfile b.kek >/dev/null || fail "restore-header rbd:rbd/vol"
"$KEYMGR" verify rbd:rbd/vol --keyfile b.kek >/dev/null || fail "verify after restore-header"
[ "$(rserve rbd:rbd/vol keyfile=b.kek -- nbdcopy '$uri' - | sha256sum)" = "$vol_sum" ] ||
  fail "after restore-header the data does not read back"
pass "backup-header, then restore-header over a destroyed header: the volume serves its data again"

# The cluster named by options only, with no Ceph environment.
(
  unset CEPH_CONF CEPH_KEYRING CEPH_ARGS
  "$KEYMGR" info rbd:rbd/vol --ceph-conf "$CEPH_DIR/ceph.conf" --ceph-keyring "$CEPH_DIR/keyring" \
    --ceph-id admin >/dev/null || fail "info with --ceph-conf/--ceph-keyring/--ceph-id"
  timeout -k 5 120 nbdkit -U - "$PLUGIN" rbd:rbd/vol keyfile=b.kek ceph-conf="$CEPH_DIR/ceph.conf" \
    ceph-keyring="$CEPH_DIR/keyring" ceph-id=admin --run 'nbdinfo --size "$uri"' >size.out ||
    fail "serving with ceph-conf=/ceph-keyring=/ceph-id="
  [ "$(cat size.out)" = $((16 * MIB)) ] || fail "served with ceph-conf=: wrong size"
  expect_fail "a ceph.conf that does not exist" 'nowhere/ceph.conf' \
    "$KEYMGR" info rbd:rbd/vol --ceph-conf "$tmp/nowhere/ceph.conf" --ceph-keyring "$CEPH_DIR/keyring"
  expect_fail "a Ceph user with no key" 'rbd:rbd/vol' \
    "$KEYMGR" info rbd:rbd/vol --ceph-conf "$CEPH_DIR/ceph.conf" --ceph-keyring "$CEPH_DIR/keyring" \
    --ceph-id nosuchuser
) || exit 1
pass "--ceph-conf/--ceph-keyring/--ceph-id and ceph-conf=/ceph-keyring=/ceph-id= without CEPH_CONF"

# --- bad inputs ------------------------------------------------------------------
expect_fail "rbd:POOL without an image (keymgr)" 'rbd:rbd' "$KEYMGR" info rbd:rbd
expect_fail "rbd:POOL without an image (create)" 'rbd:rbd' \
  "$KEYMGR" create rbd:rbd --size 4M --wrap file:vol.kek
expect_fail "rbd:POOL without an image (plugin)" 'rbd:rbd' \
  serve_fails rbd:rbd keyfile=b.kek
expect_fail "a missing pool" 'nosuchpool' "$KEYMGR" info rbd:nosuchpool/vol
expect_fail "create in a missing pool" 'nosuchpool' \
  "$KEYMGR" create rbd:nosuchpool/vol --size 4M --wrap file:vol.kek
expect_fail "an unknown image (keymgr)" 'rbd:rbd/nosuchimage' "$KEYMGR" info rbd:rbd/nosuchimage
expect_fail "an unknown image (plugin)" 'rbd:rbd/nosuchimage' \
  serve_fails rbd:rbd/nosuchimage keyfile=b.kek
! rbd info rbd/nosuchimage >/dev/null 2>&1 || fail "info or serving made rbd/nosuchimage"
! rbd ls rbd | grep -qx rbd || fail "create rbd:rbd made an image"

# Descriptors: every rbd: volume has a Ceph client of its own (a dozen
# descriptors), and librados aborts the process when it runs out: refused
# first, with the reason. The plugin counts them for its exports (3 file
# volumes would start with 300).
expect_fail "a Ceph client without the descriptors it needs" 'file descriptors open' \
  prlimit --nofile=24 "$KEYMGR" info rbd:rbd/vol
printf '[%s]\nvolume = rbd:rbd/%s\nkeyfile = vol.kek\n\n' a a b b c c >three.conf
expect_fail "3 rbd: exports under a limit of 300 descriptors" '3 exports need about 316 file descriptors' \
  prlimit --nofile=300 nbdkit -f -U "$tmp/fd.sock" "$PLUGIN" volumes="$tmp/three.conf"

# A dead cluster: an error within seconds (ceph-timeout=2), not a hang.
"$CV_SRCDIR/tests/ceph/cluster.sh" stop "$CEPH_DIR"
ms serve_fails rbd:rbd/vol keyfile=b.kek ceph-timeout=2
[ "$rc" != 0 ] || fail "serving from a stopped cluster: exit $rc after $ms ms"
grep -q 'rbd:rbd/vol' "$tmp/err" || { cat "$tmp/err"; fail "the dead-cluster error does not name the volume"; }
[ "$ms" -lt 20000 ] || fail "ceph-timeout=2: the error took $ms ms"
pass "a stopped cluster with ceph-timeout=2: refused in $ms ms: $(grep -m1 'rbd:rbd/vol' "$tmp/err")"
