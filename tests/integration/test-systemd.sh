#!/bin/bash
# The systemd units of contrib/systemd: systemd-analyze verify accepts every
# unit and rates the services' sandbox OK; the hardening is the same in
# each; make install puts them where systemd looks; and, since a container
# has no systemd to start them, the shipped units' own command lines (from
# tests/integration/systemd-exec.py, with this test's directories for
# /etc/cryptvol and /run) serve a volume: the template's directly, the
# socket-activated service's under systemd-socket-activate. A write reads
# back through each and is ciphertext on disk.
source "$(dirname "$0")/functions.sh"
requires systemd-analyze systemd-socket-activate systemd-sysusers nbdsh
units=$CV_SRCDIR/contrib/systemd
render=$CV_SRCDIR/tests/integration/systemd-exec.py

# --- systemd-analyze verify, with our man pages where man(1) finds them
# (verify checks Documentation=) and nbdkit on PATH (it checks ExecStart=).
mkdir -p man/man1 man/man8 units
ln -s "$CV_BUILD/man/nbdkit-cryptvol-plugin.1" man/man1/
ln -s "$CV_BUILD/man/cryptvol-keymgr.8" man/man8/
cp "$units"/*.service "$units"/*.socket units/
ln -s cryptvol@.service units/cryptvol@vol1.service
man=yes
command -v man >/dev/null || { man=no; echo "note: man(1) is not installed; Documentation= not checked"; }
n=0
for u in units/*; do
  if ! MANPATH=$tmp/man: systemd-analyze verify --man=$man "$u" >verify.out 2>&1 || [ -s verify.out ]; then
    cat verify.out >&2
    fail "systemd-analyze verify $(basename "$u") complains"
  fi
  n=$((n + 1))
done
[ "$n" -ge 5 ] || fail "only $n units in contrib/systemd"
pass "systemd-analyze verify: $n units, not a warning"

# Exposure 0 (sandboxed) to 10 (none): OK is below 3 (systemd-analyze
# security's scale); ours is 1.5 with the network and devices a server needs.
for u in units/cryptvol@vol1.service units/cryptvol.service units/cryptvol-nbd.service; do
  systemd-analyze security --offline=true --threshold=20 "$u" >security.out 2>&1 ||
    { tail -n 3 security.out >&2; fail "$(basename "$u"): exposure above 2.0"; }
  pass "$(basename "$u"): $(grep -o 'Overall exposure level.*' security.out)"
done

# One hardening block, the same in every service: a change to one that
# misses the others fails here.
hardening () { sed -n '/^# --- hardening/,/^# --- end of hardening/p' "$1"; }
hardening "$units/cryptvol.service" >hardening.ref
for u in "$units"/*.service; do
  hardening "$u" >"hardening.$(basename "$u")"
  [ -s "hardening.$(basename "$u")" ] || fail "$(basename "$u") has no hardening block"
  grep -q '^LimitMEMLOCK=infinity$' "hardening.$(basename "$u")" &&
    grep -q '^SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register' \
      "hardening.$(basename "$u")" || fail "$(basename "$u"): io_uring or mlock not allowed"
  cmp -s "hardening.$(basename "$u")" hardening.ref ||
    fail "$(basename "$u"): its hardening differs from cryptvol.service's"
done
pass "every service: the same hardening, io_uring and mlock allowed"

# --- make install (the units' part), into a DESTDIR; the user they run as
make -s -C "$CV_SRCDIR" install-systemd DESTDIR="$tmp/root" PREFIX=/usr >install.out 2>&1 ||
  { cat install.out; fail "make install-systemd failed"; }
for f in cryptvol@.service cryptvol.service cryptvol-nbd.service cryptvol-nbd.socket; do
  cmp -s "$units/$f" "root/usr/lib/systemd/system/$f" || fail "make install: $f not in the unit directory"
done
mkdir -p root/etc
systemd-sysusers --root="$tmp/root" >/dev/null 2>&1 || fail "systemd-sysusers rejects cryptvol.conf"
grep -q '^cryptvol:x:[0-9]*:[0-9]*:.*:/var/lib/cryptvol:' root/etc/passwd ||
  fail "systemd-sysusers made no user cryptvol: $(cat root/etc/passwd)"
pass "make install-systemd DESTDIR=: units, sysusers.d (a user cryptvol), examples"

# --- the template's command line, from cryptvol@.service and a NAME.conf
# as the example says; the credential where LoadCredential= puts it.
mkdir -p etc run/credentials/cryptvol@vol1.service
new_volume vol1.img 16M
install -m 0400 vol1.img.kek run/credentials/cryptvol@vol1.service/kek
cat >etc/vol1.conf <<EOF
VOLUME=$tmp/vol1.img
CRYPTVOL_OPTS="keyfile=/run/credentials/cryptvol@vol1.service/kek key-check=60"
EOF
subst=(/etc/cryptvol/="$tmp/etc/" /run/="$tmp/run/" cryptvol="$PLUGIN")
mapfile -t cmd < <(python3 "$render" "$units/cryptvol@.service" vol1 "${subst[@]}")
[[ "${cmd[*]}" == "nbdkit --foreground --log=stderr "* ]] ||
  fail "cryptvol@.service: not nbdkit in the foreground logging to stderr: ${cmd[*]}"
mkdir -p run/cryptvol-vol1 # RuntimeDirectory=
"${cmd[@]}" >>nbdkit.log 2>&1 &
nbd_pid=$!
nbd_wait "$tmp/run/cryptvol-vol1/nbd.sock" "$nbd_pid" && [ -S run/cryptvol-vol1/control.sock ] ||
  { cat nbdkit.log; fail "cryptvol@vol1: nbdkit is not serving"; }

# roundtrip URI NAME: write a marker through URI, read it back, and find
# no trace of it in the volume file.
roundtrip () {
  MARK=$2 nbdsh -u "$1" -c '
import os
m = (b"cryptvol systemd marker %s " % os.environ["MARK"].encode()) * 200
m = m[:4096]
h.pwrite(m, 1 << 20)
h.flush()
assert h.pread(4096, 1 << 20) == m, "read back differs"
' || { tail -n 20 nbdkit.log >&2; fail "$2: the write does not read back"; }
  if grep -q "cryptvol systemd marker" vol1.img; then fail "$2: plaintext on disk"; fi
}
roundtrip "nbd+unix:///?socket=$tmp/run/cryptvol-vol1/nbd.sock" cryptvol@vol1
"$KEYMGR" status --control run/cryptvol-vol1/control.sock --json >status.json ||
  fail "cryptvol@vol1: no status on its control socket"
pass "cryptvol@vol1's command line: served on its socket, written, read, encrypted on disk, status answered"
stop_nbd
grep -qi 'warning' nbdkit.log && { cat nbdkit.log; fail "cryptvol@vol1: nbdkit warned"; }

# --- the socket-activated pair: cryptvol-nbd.socket's listener (a Unix
# socket here instead of port 10809), cryptvol-nbd.service's command line
# with a volumes.conf of one export, run by systemd-socket-activate.
grep -qx 'ListenStream=10809' "$units/cryptvol-nbd.socket" || fail "cryptvol-nbd.socket: not port 10809"
cat >etc/volumes.conf <<EOF
[vol1]
volume = $tmp/vol1.img
keyfile = $tmp/run/credentials/cryptvol@vol1.service/kek
EOF
mapfile -t cmd < <(python3 "$render" "$units/cryptvol-nbd.service" "" "${subst[@]}")
mkdir -p run/cryptvol-nbd
systemd-socket-activate -l "$tmp/nbd-activate.sock" "${cmd[@]}" >>nbdkit.log 2>&1 &
nbd_pid=$!
# (The first handshake, nbd_wait's, starts nbdkit.)
nbd_wait "$tmp/nbd-activate.sock" "$nbd_pid" || { cat nbdkit.log; fail "systemd-socket-activate: nbdkit does not answer"; }
roundtrip "nbd+unix:///vol1?socket=$tmp/nbd-activate.sock" cryptvol-nbd
# nbdkit now runs in systemd-socket-activate's place and serves on.
roundtrip "nbd+unix:///vol1?socket=$tmp/nbd-activate.sock" "cryptvol-nbd, second connection"
"$KEYMGR" status --control run/cryptvol-nbd/control.sock --json >/dev/null ||
  fail "cryptvol-nbd: no status on its control socket"
pass "cryptvol-nbd.socket + .service under systemd-socket-activate: two connections, encrypted on disk"
