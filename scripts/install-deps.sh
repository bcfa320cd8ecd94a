#!/bin/sh
# Install the Debian packages cryptvol needs to build and test, if any are missing.
# Only Debian's archive is used; nothing is downloaded from anywhere else.
set -eu

pkgs="build-essential pkg-config
  nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin python3-libnbd python3-prometheus-client
  liburing-dev libjansson-dev libssl-dev libgcrypt20-dev libargon2-dev libseccomp-dev
  libcurl4-openssl-dev libp11-kit-dev
  cryptsetup-bin qemu-utils openssl perl
  awscli curl softhsm2 opensc
  qemu-system-x86 fio gnutls-bin cpio gnuplot-nox
  systemd
  ceph-mon ceph-osd ceph-common librbd-dev librados-dev qemu-block-extra
  python3-rbd python3-rados"

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages:$missing" >&2
  echo "install-deps: run as root (or: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
