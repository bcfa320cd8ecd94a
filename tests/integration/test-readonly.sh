#!/bin/bash
# Read-only serving without readonly=true: a volume file or detached header
# this server cannot write (the immutable flag as root, mode 0444 otherwise)
# is served read-only with a notice instead of failing to open, and
# `nbdkit -r` serves read-only. Each time the data reads back, the export is
# read-only, a client's write is refused, and no byte of the files changes.
. "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy nbdsh sha256sum
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
  { echo "SKIP: python3-libnbd is not installed"; exit 77; }

# Make path unwritable for this process, undone by the trap.
protect () {
  if [ "$(id -u)" -eq 0 ]; then
    chattr +i "$1" 2>/dev/null || { echo "SKIP: chattr +i does not work in $tmp"; exit 77; }
    cleanup_hooks+=("chattr -i '$tmp/$1'")
  else
    chmod 0444 "$1"
  fi
}

# check_ro VOLUME SUMFILES PARAMS...: serve with PARAMS (and nbd_opts for
# nbdkit, run through the command in nbd_wrap), expect the export read-only, the data read back, writes refused
# with EPERM or EROFS, and the files named in SUMFILES unchanged.
check_ro () {
  local vol=$1 files=$2; shift 2
  # shellcheck disable=SC2086
  sha256sum $files >before.sum
  : >nbdkit.err
  "${nbd_wrap[@]}" nbdkit -U - "${nbd_opts[@]}" "$PLUGIN" "$vol" "$@" --run '/usr/bin/python3 -c "
import errno, hashlib, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.is_read_only(), \"the export is writable\"
data = h.pread(h.get_size(), 0)
assert hashlib.sha256(data).hexdigest() == sys.argv[2], \"wrong data\"
# Refused by libnbd, then (its checks off) by the server.
for who, strict in ((\"client\", nbd.STRICT_COMMANDS), (\"server\", 0)):
    h.set_strict_mode(strict)
    try:
        h.pwrite(b\"x\" * 4096, 0)
    except nbd.Error as e:
        assert e.errnum in (errno.EPERM, errno.EROFS), \"%s: %s\" % (who, e)
        print(\"write refused by the %s: %s\" % (who, errno.errorcode[e.errnum]))
    else:
        raise SystemExit(\"a write was accepted by the %s\" % who)
" "$uri" '"$plain_sum" 2>nbdkit.err >client.out || {
    cat client.out nbdkit.err; fail "serving $vol $* read-only"; }
  # shellcheck disable=SC2086
  sha256sum -c --quiet before.sum || fail "$files changed while served read-only"
  pass "${nbd_opts[*]} $vol $*: read-only, data as written, $(paste -sd' ' client.out), files unchanged"
}

nbd_wrap=()

# A volume with known data, and a detached-header one.
head -c 4M /dev/urandom >plain
plain_sum=$(sha256sum <plain | cut -d' ' -f1)
new_volume vol 4M
serve vol keyfile=vol.kek -- nbdcopy plain '$uri'
"$KEYMGR" genkey det.kek >/dev/null
"$KEYMGR" create det --size 4M --wrap file:det.kek --detached-header det.hdr >/dev/null
serve det header=det.hdr keyfile=det.kek -- nbdcopy plain '$uri'

# nbdkit -r on writable files.
nbd_opts=(-r)
check_ro vol vol keyfile=vol.kek
nbd_opts=()

# A volume file that cannot be written: before, the server did not start.
protect vol
check_ro vol vol keyfile=vol.kek
grep -q "warning: [^ ]*vol cannot be written (.*): serving it read-only" nbdkit.err ||
  { cat nbdkit.err; fail "no notice for an unwritable volume"; }
pass "notice: $(grep -m1 'cannot be written' nbdkit.err)"
# readonly=true says it on purpose: no notice.
check_ro vol vol keyfile=vol.kek readonly=true
! grep -q "cannot be written" nbdkit.err || fail "a notice with readonly=true"
# And with -r as well.
nbd_opts=(-r)
check_ro vol vol keyfile=vol.kek
nbd_opts=()

# A detached header that cannot be written, its data file writable: the
# header could not be opened for writing, so the volume is read-only.
protect det.hdr
check_ro det "det det.hdr" header=det.hdr keyfile=det.kek
grep -q "warning: [^ ]*det.hdr cannot be written" nbdkit.err ||
  { cat nbdkit.err; fail "no notice for an unwritable header"; }
pass "detached header: $(grep -m1 'cannot be written' nbdkit.err)"

# A volume on a read-only mount (root: a read-only bind mount in a private
# mount namespace).
if [ "$(id -u)" -eq 0 ] && unshare -m --propagation private true 2>/dev/null; then
  mkdir rodir
  cp vol vol.kek rodir/
  nbd_wrap=(unshare -m --propagation private sh -c \
    'mount --bind -o ro "$0" "$0" && exec "$@"' rodir)
  check_ro rodir/vol rodir/vol keyfile=rodir/vol.kek
  nbd_wrap=()
  grep -q "warning: [^ ]*rodir/vol cannot be written (Read-only file system)" nbdkit.err ||
    { cat nbdkit.err; fail "no notice for a volume on a read-only mount"; }
  pass "read-only mount: $(grep -m1 'cannot be written' nbdkit.err)"
else
  echo "read-only mount: not tested (needs root and unshare -m)"
fi
