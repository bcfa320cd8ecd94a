#!/bin/bash
# Two customers' KMS-wrapped volumes in one nbdkit (volumes=FILE, the local
# KMS that checks signatures, key-check=1): each unlocked with one Decrypt
# at start-up; customer B disables its key -> only B's export is revoked
# (EPERM) while A's is served, metrics say so; B enables it again -> B's
# export is served again with its data, no restart.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/keywatch-lib.sh"
requires nbdkit nbdsh curl jq openssl

HARD=30
start_kms
keya=$(new_key) keyb=$(new_key)
for c in a b; do
  key=keya; [ $c = b ] && key=keyb
  "$KEYMGR" create vol-$c --size 4M --wrap "kms:$(key_arn "${!key}")" \
    --kms-endpoint "$EP" --ca-bundle "$CA" >/dev/null
  printf '[customer-%s]\nvolume = vol-%s\nkey-check = 1\nkey-grace = 4\n' $c $c >>volumes.conf
done
clear_calls
start_nbd volumes=volumes.conf kms-endpoint="$EP" ca-bundle="$CA"
uri () { echo "nbd+unix:///customer-$1?socket=$SOCK"; }
for c in a b; do
  nbdsh -u "$(uri $c)" -c "h.pwrite(b'data of $c'.ljust(4096, b'.'), 0)" || fail "write to customer-$c"
done
# Decrypts until now: the two unlocks, and perhaps a first check each.
n=$(count_calls 'select(.op == "Decrypt")')
[ "$n" -ge 2 ] && [ "$n" -le 4 ] || fail "$n Decrypt calls for two exports at start-up"
pass "two exports unlocked through the local KMS ($n Decrypts so far)"

state () { "$KEYMGR" status --control "$CTL" --export "customer-$1" --json | jq -r .state; }
wait_for () { # EXPORT STATE
  local t0; t0=$(now_ms)
  until [ "$(state "$1")" = "$2" ]; do
    [ $(( $(now_ms) - t0 )) -lt $(( HARD * 1000 )) ] ||
      fail "customer-$1 is $(state "$1"), not $2, after $HARD s"
    sleep 0.05
  done
}

disable_key "$keyb"
wait_for b revoked
expect_fail "customer-b after DisableKey" "Operation not permitted" \
  nbdsh -u "$(uri b)" -c 'h.pread(4096, 0)'
nbdsh -u "$(uri a)" -c "assert h.pread(9, 0) == b'data of a'" || fail "customer-a after B's key was disabled"
[ "$(state a)" = unlocked ] || fail "customer-a is $(state a) after B's key was disabled"
"$KEYMGR" metrics --control "$CTL" >m.prom || fail "metrics"
grep -q '^cryptvol_key_state{export="customer-b",state="revoked"} 1$' m.prom &&
  grep -q '^cryptvol_key_state{export="customer-a",state="unlocked"} 1$' m.prom ||
  { cat m.prom; fail "metrics: key states"; }
pass "B's key disabled: customer-b refused (EPERM), customer-a served; metrics say so"

enable_key "$keyb"
wait_for b unlocked
nbdsh -u "$(uri b)" -c "assert h.pread(9, 0) == b'data of b'" || fail "customer-b after EnableKey"
pass "B's key enabled again: customer-b served with its data, no restart"
