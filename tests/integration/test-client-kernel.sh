#!/bin/bash
# The Linux kernel's NBD client (nbd-client + nbd.ko) on cryptvol, in a small
# VM (tests/vm/) since this host cannot load modules. The guest attaches three
# volumes, exports of one server on the host's loopback (10.0.2.2 from the
# guest), each by its name (and is refused an unknown one): 4096-byte
# encryption sectors with `-b 4096 -C 2`, the same with nbd-client's default
# 512-byte blocks (read-modify-write of the enclosing sector), and 512-byte
# sectors with `-b 512`. On each: mke2fs -t ext4, mount, write files, record
# their sha256, unmount, e2fsck, detach, attach again and re-read. The host
# then serves each volume again, copies it out with nbdcopy and reads the
# files with debugfs; a file the host adds is read back by a second boot.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/vm/helpers.sh"
requires nbdkit nbdcopy debugfs e2fsck
vm_build

# name:sector-size:nbd-client options
cases="a:4096:-b 4096 -C 2
b:4096:
c:512:-b 512"

mkdir guest1
cat >guest1/test.sh <<'EOS'
# exercise NAME DEVICE PORT OPTIONS...: ext4 on an NBD device, files written,
# their sha256 printed as CV-RESULT NAME-FILE HASH, read again after a
# fresh attach (nothing from the page cache).
exercise () {
  n=$1 dev=$2 port=$3; shift 3
  /sbin/nbd-client 10.0.2.2 "$port" "$dev" -N "$n" "$@"
  echo "CV-RESULT $n-ss $(blockdev --getss "$dev")"
  echo "CV-RESULT $n-size $(blockdev --getsize64 "$dev")"
  /sbin/mke2fs -q -F -t ext4 "$dev"
  mount -t ext4 "$dev" /mnt
  dd if=/dev/urandom of=/mnt/big bs=64k count=80 2>/dev/null
  dd if=/dev/urandom of=/mnt/odd bs=3001 count=1 2>/dev/null
  mkdir /mnt/dir && echo "written by the kernel client ($n)" >/mnt/dir/hello
  for f in big odd dir/hello; do
    echo "CV-RESULT $n-${f#*/} $(sha256sum /mnt/$f | cut -c1-64)"
  done
  umount /mnt
  /sbin/e2fsck -fn "$dev"
  /sbin/nbd-client -d "$dev"
  /sbin/nbd-client 10.0.2.2 "$port" "$dev" -N "$n" "$@"
  mount -t ext4 -o ro "$dev" /mnt
  sha256sum /mnt/big /mnt/odd /mnt/dir/hello | sed "s/^/CV-REREAD $n /"
  umount /mnt
  /sbin/nbd-client -d "$dev"
}
EOS
# The three volumes are exports of one server (volumes=FILE), each attached
# by its name (-N); a name the server does not have is refused.
while IFS=: read -r n ss opts; do
  new_volume vol-$n 64M --sector-size "$ss"
  printf '[%s]\nvolume = vol-%s\nkeyfile = vol-%s.kek\n' "$n" "$n" "$n" >>volumes.conf
done <<<"$cases"
start_server srv tcp --filter=log "$PLUGIN" volumes=volumes.conf logfile="$tmp/log"
i=0
while IFS=: read -r n ss opts; do
  echo "exercise $n /dev/nbd$i $PORT $opts" >>guest1/test.sh
  i=$((i + 1))
done <<<"$cases"
echo "rc=0; /sbin/nbd-client 10.0.2.2 $PORT /dev/nbd3 -N nope -b 4096 || rc=\$?; echo \"CV-RESULT nope-rc \$rc\"" >>guest1/test.sh
vm_boot boot1 guest1
stop_server srv

# The guest's re-read after a fresh attach matches what it wrote.
while IFS=: read -r n ss opts; do
  for f in big odd dir/hello; do
    want=$(vm_result boot1 "$n-${f#*/}")
    [ -n "$want" ] || fail "case $n: the guest printed no sha256 for $f"
    grep -q "^CV-REREAD $n $want  /mnt/$f$" boot1.console ||
      fail "case $n ($opts): /$f reads back different after re-attaching"
  done
done <<<"$cases"

# Block sizes the kernel saw: nbd-client's -b; without it Debian 12's
# nbd-client (netlink) leaves the kernel's 512 (its man page says 1024).
[ "$(vm_result boot1 a-ss)" = 4096 ] || fail "-b 4096: kernel logical block size $(vm_result boot1 a-ss)"
[ "$(vm_result boot1 b-ss)" = 512 ] || fail "default: kernel logical block size $(vm_result boot1 b-ss)"
[ "$(vm_result boot1 c-ss)" = 512 ] || fail "-b 512: kernel logical block size $(vm_result boot1 c-ss)"
[ "$(vm_result boot1 a-size)" = 67108864 ] || fail "kernel sees size $(vm_result boot1 a-size)"
# Two attaches each: -C 2 opens two connections per attach.
[ "$(grep -c " Connect export=a " log)" = 4 ] || fail "-C 2: $(grep -c " Connect export=a " log) connections, expected 4"
[ "$(grep -c " Connect export=b " log)" = 2 ] || fail "one connection per attach expected, got $(grep -c " Connect export=b " log)"
pass "kernel nbd-client attached with -b 4096 -C 2, default (512) and -b 512"
[ "$(vm_result boot1 nope-rc)" != 0 ] || fail "nbd-client -N nope attached an export the server does not have"
pass "kernel nbd-client: each export attached by name (-N) from one server; an unknown name refused"

# Host side: serve each volume again, copy it out, read the files with
# debugfs (e2fsprogs, not the kernel) and compare with the guest's sums.
while IFS=: read -r n ss opts; do
  serve vol-$n keyfile=vol-$n.kek -- nbdcopy '$uri' img-$n.raw
  e2fsck -fn img-$n.raw >fsck-$n.out 2>&1 || { cat fsck-$n.out; fail "case $n: e2fsck on the host found errors"; }
  for f in big odd dir/hello; do
    debugfs -R "dump /$f out" img-$n.raw 2>/dev/null
    [ "$(sha256sum <out | cut -c1-64)" = "$(vm_result boot1 "$n-${f#*/}")" ] ||
      fail "case $n ($opts): /$f read on the host differs from what the guest wrote"
  done
  pass "case $n (sector $ss, nbd-client ${opts:-default}): files written in the VM read back on the host"
done <<<"$cases"

# Host to kernel: the host adds a file (debugfs -w on the image, nbdcopy into
# the volume); a second boot attaches read-only (-R) and checks it.
head -c 777777 /dev/urandom >fromhost
debugfs -w -R "write fromhost fromhost" img-a.raw >/dev/null 2>&1
serve vol-a keyfile=vol-a.kek -- nbdcopy img-a.raw '$uri'
start_server srv-a2 tcp "$PLUGIN" vol-a keyfile=vol-a.kek
sum_before=$(sha256sum <vol-a)
mkdir guest2
cat >guest2/test.sh <<EOS
/sbin/nbd-client 10.0.2.2 $PORT /dev/nbd0 -N a -b 4096 -R
mount -t ext4 -o ro,noload /dev/nbd0 /mnt
echo "CV-RESULT fromhost \$(sha256sum /mnt/fromhost | cut -c1-64)"
echo "CV-RESULT big \$(sha256sum /mnt/big | cut -c1-64)"
umount /mnt
/sbin/nbd-client -d /dev/nbd0
EOS
vm_boot boot2 guest2
stop_server srv-a2
[ "$(vm_result boot2 fromhost)" = "$(sha256sum <fromhost | cut -c1-64)" ] ||
  fail "a file written on the host reads back different in the kernel client"
[ "$(vm_result boot2 big)" = "$(vm_result boot1 a-big)" ] ||
  fail "second boot: /big differs from what the first boot wrote"
[ "$(sha256sum <vol-a)" = "$sum_before" ] || fail "a read-only attach (-R) changed the volume"
pass "second boot: a file written on the host reads back in the kernel client; -R wrote nothing"
