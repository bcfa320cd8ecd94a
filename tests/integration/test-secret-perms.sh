#!/bin/bash
# Secret files others can read: every kind (key file, passphrase file and
# fd, PIN file, --import-key file, KMS grant-token file) is warned about in
# keymgr and in the plugin, naming the file, its mode and `chmod 600 FILE`;
# the command still works. At mode 0600 there is no such warning.
. "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo

# The secrets, each in its own file: the key file of a volume with a file
# and a passphrase wrap, its passphrase, a PIN (read although no wrap needs
# it), a raw 64-byte master key to import and a grant token.
"$KEYMGR" genkey vol.kek >/dev/null
printf 'correct horse battery staple\n' >pass
printf '123456\n' >pin
printf 'another passphrase\n' >newpass.src
head -c 64 /dev/urandom >master.key
printf 'AQpAMzU4ZTYz%s\n' "$(head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n')" >token
"$KEYMGR" create vol --size 4M --wrap file:vol.kek --wrap passphrase \
  --passphrase-file pass "${FAST_KDF[@]}" >/dev/null
secrets=(vol.kek pass pin master.key token)
WARN='can be accessed by group or others'

# keymgr_runs: each kind of secret through keymgr once, stderr into
# keymgr.err; every command must succeed.
keymgr_runs () {
  : >keymgr.err
  "$KEYMGR" verify vol --keyfile vol.kek --pin-file pin \
    --kms-grant-token +token >/dev/null 2>>keymgr.err || fail "verify --keyfile"
  "$KEYMGR" verify vol --passphrase-file pass >/dev/null 2>>keymgr.err ||
    fail "verify --passphrase-file"
  "$KEYMGR" verify vol --passphrase-fd 3 3<pass >/dev/null 2>>keymgr.err ||
    fail "verify --passphrase-fd"
  cp newpass.src newpass.tmp && chmod --reference=pass newpass.tmp
  "$KEYMGR" add-wrap vol --wrap passphrase --new-passphrase-file newpass.tmp \
    --keyfile vol.kek "${FAST_KDF[@]}" >/dev/null 2>>keymgr.err || fail "add-wrap"
  rm -f imported imported.kek
  "$KEYMGR" genkey imported.kek >/dev/null
  "$KEYMGR" create imported --size 1M --wrap file:imported.kek \
    --import-key master.key >/dev/null 2>>keymgr.err || fail "create --import-key"
}

# plugin_runs: each kind of secret through the plugin once, nbdkit's
# messages into nbdkit.err; the volume must be served.
plugin_runs () {
  : >nbdkit.err
  nbdkit -U - "$PLUGIN" vol keyfile=vol.kek pin=+pin kms-grant-token=+token \
    --run 'nbdinfo --size "$uri"' >/dev/null 2>>nbdkit.err ||
    { cat nbdkit.err; fail "serve with keyfile="; }
  nbdkit -U - "$PLUGIN" vol passphrase=+pass --run 'nbdinfo --size "$uri"' \
    >/dev/null 2>>nbdkit.err || { cat nbdkit.err; fail "serve with passphrase=+FILE"; }
  nbdkit -U - "$PLUGIN" vol passphrase=-3 --run 'nbdinfo --size "$uri"' \
    3<pass >/dev/null 2>>nbdkit.err || { cat nbdkit.err; fail "serve with passphrase=-FD"; }
}

# expect_warning LOG WHAT FILE: LOG names FILE (absolute or as given) with
# mode 0644 and the fix.
expect_warning () {
  local log=$1 what=$2 file=$3
  grep -E "warning: $what .*$file $WARN \(mode 0644\); chmod 600 .*$file" "$log" \
    >/dev/null || { cat "$log"; fail "$log: no warning for $what $file"; }
  pass "$log: $(grep -E -m1 -e "$what .*$file $WARN" "$log")"
}

chmod 0644 "${secrets[@]}"
keymgr_runs
expect_warning keymgr.err "key file" vol.kek
expect_warning keymgr.err "PIN file" pin
expect_warning keymgr.err "grant token file" token
expect_warning keymgr.err "passphrase file" pass
expect_warning keymgr.err "passphrase fd" "$tmp/pass"
expect_warning keymgr.err "passphrase file" newpass.tmp
expect_warning keymgr.err "--import-key file" master.key
plugin_runs
expect_warning nbdkit.err "key file" "$tmp/vol.kek"
expect_warning nbdkit.err "pin= file" pin
expect_warning nbdkit.err "kms-grant-token= file" token
expect_warning nbdkit.err "passphrase= file" pass
expect_warning nbdkit.err "passphrase= file" "$tmp/pass"
# No secret in any message.
! grep -F -e 'correct horse' -e 123456 -e another keymgr.err nbdkit.err ||
  fail "a secret was printed"

# Group-readable only (0640) is warned about too.
chmod 0640 pass
"$KEYMGR" verify vol --passphrase-file pass >/dev/null 2>keymgr.err
grep -q "passphrase file pass $WARN (mode 0640)" keymgr.err ||
  { cat keymgr.err; fail "mode 0640: no warning"; }
pass "mode 0640 warned about"

chmod 0600 "${secrets[@]}"
keymgr_runs
plugin_runs
! grep -e "$WARN" keymgr.err nbdkit.err || fail "a warning at mode 0600"
pass "mode 0600: no warning in keymgr or the plugin"
