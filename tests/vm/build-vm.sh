#!/bin/bash
# Build (once) the small VM the kernel-client tests boot under qemu: a Debian
# cloud kernel and an initramfs holding busybox, the virtio and nbd modules,
# nbd-client, e2fsprogs and tests/vm/init. Packages are fetched with
# `apt-get download` and unpacked with `dpkg -x`: nothing is installed on the
# host. The result is cached in build/vm/KEY/ where KEY hashes the package
# versions and the files that go into the image; a second run only prints the
# directory. Usage: tests/vm/build-vm.sh [BUILD-DIR]   (default: ./build)
# Prints the directory holding vmlinuz and initrd.gz. Exit status 77 means a
# package cannot be fetched from the archive (the reason is printed).
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$srcdir/build}" && pwd)
vmroot=$build/vm
mkdir -p "$vmroot/debs"

MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         failover net_failover virtio_net nbd virtio_blk"
GUEST_PROGS="/usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/debugfs"

skip () { echo "SKIP: $*" >&2; exit 77; }

# candidate VERSION of a package in the archive (empty if unknown).
candidate () { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '(none)' || true; }

# One builder at a time; the second waits and then finds the cache.
exec 9>"$vmroot/.lock"
flock 9

if [ -z "$(candidate linux-image-cloud-amd64)" ]; then
  apt-get update -qq >&2 || true
fi
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
       sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
[ -n "$kpkg" ] || skip "linux-image-cloud-amd64 is not known to apt (no Debian archive?)"
pkgs="$kpkg busybox-static nbd-client libnl-genl-3-200 libnl-3-200"

key_input=""
for p in $pkgs; do
  v=$(candidate "$p")
  [ -n "$v" ] || skip "package $p is not available from the archive"
  key_input+="$p=$v "
done
key_input+="e2fsprogs=$(dpkg-query -W -f='${Version}' e2fsprogs) "
key_input+=$(cat "$srcdir/tests/vm/build-vm.sh" "$srcdir/tests/vm/init" | sha256sum)
key=$(printf '%s' "$key_input" | sha256sum | cut -c1-16)
out=$vmroot/$key
if [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then
  echo "$out"
  exit 0
fi

echo "build-vm: building $out ($pkgs)" >&2
start=$(date +%s)
stage=$(mktemp -d "$vmroot/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# deb_for PACKAGE VERSION: the cached .deb of that version (apt-get download
# writes an epoch "1:" as "1%3a" in the file name).
deb_for () { ls "$vmroot/debs/${1}_"*"${2#*:}_"*.deb 2>/dev/null | head -n 1 || true; }
for p in $pkgs; do
  v=$(candidate "$p")
  deb=$(deb_for "$p" "$v")
  if [ -z "$deb" ]; then
    (cd "$vmroot/debs" && apt-get download -q "$p=$v" >/dev/null 2>"$stage/apt.err") ||
      { cat "$stage/apt.err" >&2; skip "apt-get download $p failed"; }
    deb=$(deb_for "$p" "$v")
  fi
  dpkg-deb -x "$deb" "$stage/pkgs"
done

kver=${kpkg#linux-image-}
root=$stage/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,mnt,lib/modules,lib64}
cp "$stage/pkgs/boot/vmlinuz-$kver" "$stage/vmlinuz"

# Modules in load order; those built into this kernel are left out.
moddir=$stage/pkgs/lib/modules/$kver
: > "$root/etc/modules"
for m in $MODULES; do
  f=$(find "$moddir" -name "$m.ko*" | head -n 1)
  if [ -z "$f" ]; then
    grep -q "/$m.ko" "$moddir/modules.builtin" ||
      { echo "build-vm: module $m is neither a module nor built in" >&2; exit 1; }
    continue
  fi
  case $f in
    *.ko.xz)  xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$root/lib/modules/$m.ko" ;;
    *.ko)     cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
  echo "$m" >> "$root/etc/modules"
done

cp "$stage/pkgs/bin/busybox" "$root/bin/busybox"
cp "$srcdir/tests/vm/init" "$root/init"
chmod 0755 "$root/init"
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"

# Dynamic programs with every library ldd names, looked up in the unpacked
# packages first (nbd-client's libnl-genl is not on the host), then the host.
libpath=$stage/pkgs/lib/x86_64-linux-gnu:$stage/pkgs/usr/lib/x86_64-linux-gnu
add_prog () {
  local prog=$1 lib
  cp "$prog" "$root/sbin/$(basename "$prog")"
  for lib in $(LD_LIBRARY_PATH=$libpath ldd "$prog" | awk '
      /not found/ { print "MISSING:" $1; next }
      $2 == "=>" && $3 ~ /^\// { print $3 }'); do
    case $lib in MISSING:*) echo "build-vm: $prog needs ${lib#MISSING:}" >&2; exit 1 ;; esac
    cp -L "$lib" "$root/lib/x86_64-linux-gnu/"
  done
}
mkdir -p "$root/lib/x86_64-linux-gnu" "$root/usr"
ln -s ../lib "$root/usr/lib"
add_prog "$stage/pkgs/sbin/nbd-client"
for p in $GUEST_PROGS; do add_prog "$p"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
ln -s mke2fs "$root/sbin/mkfs.ext4"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -9 > "$stage/initrd.gz"

# Publish atomically; older builds are removed.
rm -rf "$out.new" && mkdir "$out.new"
mv "$stage/vmlinuz" "$stage/initrd.gz" "$out.new/"
printf '%s\n' $key_input > "$out.new/versions"
rm -rf "$out" && mv "$out.new" "$out"
for old in "$vmroot"/*/; do
  old=${old%/}
  case $old in "$out"|"$stage"|"$vmroot/debs") ;; *) rm -rf "$old" ;; esac
done
# Only the debs of this build are kept.
keep=()
for p in $pkgs; do keep+=("$(deb_for "$p" "$(candidate "$p")")"); done
for d in "$vmroot"/debs/*.deb; do
  [[ " ${keep[*]} " == *" $d "* ]] || rm -f "$d"
done
echo "build-vm: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
