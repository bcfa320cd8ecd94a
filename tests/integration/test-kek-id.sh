#!/bin/bash
# A file wrap's kek_id names its key file so that unlock can tell a wrong key
# file from an altered wrap. An edited kek_id under the right key file must be
# reported as an altered wrap (exit 3), not as a wrong key file (exit 2).
source "$(dirname "$0")/functions.sh"
requires nbdkit
TAMPER=$CV_BUILD/tools/cv-tamper

new_volume vol 8M
"$KEYMGR" genkey other.kek >/dev/null
cp vol edited
"$TAMPER" edited set-json both wraps.0.kek_id '"0123456789abcdef"'

rc=0
"$KEYMGR" verify edited --keyfile vol.kek 2>err || rc=$?
[ "$rc" -eq 3 ] || { cat err; fail "verify with an altered kek_id: exit $rc, want 3 (header altered)"; }
grep -q "wrap 0 (file .*): key file vol.kek opens the wrap but the wrap's kek_id (0123456789abcdef) is not its key id .*: the wrap's kek_id was altered" err ||
  { cat err; fail "no message saying the kek_id was altered"; }
! grep -q "not this wrap's key\|wrong key file" err || { cat err; fail "an altered kek_id reported as a wrong key file"; }
pass "altered kek_id, right key file: exit 3, $(grep -o "the wrap's kek_id was altered" err)"

rc=0
"$KEYMGR" verify edited --keyfile other.kek 2>err || rc=$?
[ "$rc" -eq 2 ] || { cat err; fail "verify with another key file: exit $rc, want 2"; }
pass "altered kek_id, another key file: still a wrong key file (exit 2)"

expect_fail "nbdkit refuses the altered kek_id" "kek_id was altered" \
  nbdkit -U - "$PLUGIN" edited keyfile=vol.kek --run 'touch served'
[ ! -e served ] || fail "nbdkit served a volume whose wrap's kek_id was altered"
