#!/bin/bash
# QEMU on cryptvol. As a VM's disk: three volumes attached as virtio disks by
# the three ways of naming an NBD drive (nbd:HOST:PORT, nbd+unix:// and
# nbd:// with 4096-byte logical blocks); the guest reads what the host wrote
# and writes what the host then reads with nbdcopy. On the host: qemu-img
# convert into and out of a volume, qemu-img compare, qemu-io writes and
# reads (aligned and not), each checked through libnbd.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/vm/helpers.sh"
requires nbdkit nbdcopy qemu-img qemu-io

# --- As a VM's disk ---------------------------------------------------------
vm_build
# Sizes tell the disks apart in the guest (PCI order is not -drive order).
new_volume q1 32M; new_volume q2 40M; new_volume q3 48M
# The host writes 4 MiB of known data at 1 MiB into q2; the guest checks it.
head -c 4M /dev/urandom >hostdata
serve q2 keyfile=q2.kek -- nbdsh -u '$uri' \
  -c 'h.pwrite(open("hostdata", "rb").read(), 1 << 20); h.flush()'
start_server q1 tcp "$PLUGIN" q1 keyfile=q1.kek
port1=$PORT
start_server q2 unix "$PLUGIN" q2 keyfile=q2.kek
start_server q3 tcp "$PLUGIN" q3 keyfile=q3.kek
port3=$PORT

mkdir guest
cat >guest/test.sh <<'EOS'
# Name the disks q1, q2, q3 by their sizes: /dev/q1 is the nbd:HOST:PORT one.
for d in vda vdb vdc; do
  case $(blockdev --getsize64 /dev/$d) in
    33554432) ln -s /dev/$d /dev/q1 ;;
    41943040) ln -s /dev/$d /dev/q2 ;;
    50331648) ln -s /dev/$d /dev/q3 ;;
  esac
done
for d in q1 q2 q3; do echo "CV-RESULT $d-ss $(blockdev --getss /dev/$d)"; done
# q2: what the host wrote at 1 MiB.
echo "CV-RESULT q2-read $(dd if=/dev/q2 bs=1M skip=1 count=4 2>/dev/null | sha256sum | cut -c1-64)"
# q1 and q3: 8 MiB of random data at 1 MiB and 1000 bytes at byte 12345
# (not sector aligned: the guest kernel reads, modifies and writes).
for d in q1 q3; do
  dd if=/dev/urandom of=/tmp/$d.data bs=1M count=8 2>/dev/null
  dd if=/dev/urandom of=/tmp/$d.small bs=1000 count=1 2>/dev/null
  dd if=/tmp/$d.data of=/dev/$d bs=1M seek=1 conv=fsync 2>/dev/null
  dd if=/tmp/$d.small of=/dev/$d bs=1 seek=12345 conv=notrunc,fsync 2>/dev/null
  echo "CV-RESULT $d-data $(sha256sum /tmp/$d.data | cut -c1-64)"
  echo "CV-RESULT $d-small $(sha256sum /tmp/$d.small | cut -c1-64)"
done
# Read back from the devices, not the page cache.
sync; echo 3 >/proc/sys/vm/drop_caches
for d in q1 q3; do
  echo "CV-RESULT $d-reread $(dd if=/dev/$d bs=1M skip=1 count=8 2>/dev/null | sha256sum | cut -c1-64)"
done
EOS
vm_boot qemu guest \
  -drive "file=nbd:127.0.0.1:$port1,format=raw,if=virtio" \
  -drive "file=nbd+unix:///?socket=$tmp/q2.sock,format=raw,if=virtio" \
  -drive "file=nbd://127.0.0.1:$port3,format=raw,if=none,id=d3" \
  -device virtio-blk-pci,drive=d3,logical_block_size=4096,physical_block_size=4096
for v in q1 q2 q3; do stop_server $v; done

for d in q1 q2 q3; do
  [ -n "$(vm_result qemu $d-ss)" ] || fail "$d: not found in the guest"
done
[ "$(vm_result qemu q3-ss)" = 4096 ] || fail "q3: logical block size $(vm_result qemu q3-ss), not 4096"
[ "$(vm_result qemu q2-read)" = "$(sha256sum <hostdata | cut -c1-64)" ] ||
  fail "nbd+unix:// disk: the guest reads other data than the host wrote"
pass "nbd+unix:// disk: the guest reads what the host wrote"
# check_guest_writes DISK VOLUME FORM: the host reads what the guest wrote.
check_guest_writes () {
  local d=$1 v=$2
  [ "$(vm_result qemu $d-reread)" = "$(vm_result qemu $d-data)" ] ||
    fail "$3 disk: the guest reads back other data than it wrote"
  serve $v keyfile=$v.kek -- nbdcopy '$uri' $v.out
  [ "$(dd if=$v.out bs=1M skip=1 count=8 2>/dev/null | sha256sum | cut -c1-64)" = "$(vm_result qemu $d-data)" ] ||
    fail "$3 disk: the host reads other data than the guest wrote"
  [ "$(dd if=$v.out bs=1 skip=12345 count=1000 2>/dev/null | sha256sum | cut -c1-64)" = "$(vm_result qemu $d-small)" ] ||
    fail "$3 disk: an unaligned 1000-byte guest write reads back different on the host"
  pass "$3 disk: guest writes (aligned, and 1000 bytes unaligned) read back in the guest and on the host"
}
check_guest_writes q1 q1 "nbd:HOST:PORT (512-byte logical blocks)"
check_guest_writes q3 q3 "nbd:// with logical_block_size=4096"

# --- qemu-img and qemu-io on the host ---------------------------------------
new_volume img 64M
head -c 48M /dev/urandom >src.raw
truncate -s 64M src.raw
qemu-img convert -q -f raw -O qcow2 src.raw src.qcow2
start_server img unix "$PLUGIN" img keyfile=img.kek
uri="nbd+unix:///?socket=$tmp/img.sock"
qemu-img convert -q -n -f qcow2 -O raw src.qcow2 "$uri"
qemu-img compare -q -f qcow2 -F raw src.qcow2 "$uri" || fail "qemu-img compare: the volume differs from the qcow2 written into it"
nbdcopy "$uri" copy.raw
cmp copy.raw src.raw || fail "qemu-img convert into the volume: nbdcopy reads other data"
pass "qemu-img convert qcow2 -> volume; qemu-img compare and nbdcopy agree"
qemu-img convert -q -f raw -O qcow2 "$uri" back.qcow2
qemu-img compare -q -f qcow2 -F raw back.qcow2 src.raw || fail "qemu-img convert out of the volume: differs"
pass "qemu-img convert volume -> qcow2 is identical to the source"

# qemu-io: a pattern at an aligned and at an unaligned range, read back by
# qemu-io and by libnbd; a one-byte change makes qemu-img compare fail.
qemu-io -f raw -c 'write -P 0xa5 8192 65536' -c 'write -P 0x3c 100001 5000' \
  -c 'read -P 0xa5 8192 65536' -c 'read -P 0x3c 100001 5000' "$uri" >qio.out
grep -q 'Pattern verification failed' qio.out && { cat qio.out; fail "qemu-io read back another pattern"; }
[ "$(grep -c '^wrote' qio.out)" = 2 ] && [ "$(grep -c '^read' qio.out)" = 2 ] || { cat qio.out; fail "qemu-io did not complete"; }
nbdsh -u "$uri" -c '
src = open("src.raw", "rb").read()
assert h.pread(65536, 8192) == b"\xa5" * 65536
assert h.pread(5000, 100001) == b"\x3c" * 5000
assert h.pread(8192, 0) == src[:8192]
assert h.pread(1, 100000) == src[100000:100001] and h.pread(1, 105001) == src[105001:105002]' ||
  fail "qemu-io writes read back different through libnbd"
if qemu-img compare -f qcow2 -F raw src.qcow2 "$uri" >cmp.out; then
  fail "qemu-img compare finds no difference after qemu-io wrote"
fi
grep -q 'Content mismatch at offset 8192!' cmp.out || { cat cmp.out; fail "qemu-img compare: wrong first difference"; }
pass "qemu-io writes (aligned and unaligned) read back in qemu-io and libnbd"
stop_server img
