#!/bin/bash
# info and verify show an unfinished DEK rotation: interrupted (a killed
# rotate-dek) with how far it got and what continues it, in progress (a
# rotate-dek running now), or held by a server; verify still exits 0. Once
# the rotation is finished neither says anything about it.
. "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy jq

"$KEYMGR" genkey a.kek >/dev/null
"$KEYMGR" create base --size 4M --wrap file:a.kek >/dev/null
ROTATE=(rotate-dek --keyfile a.kek --hotzone 256K)
cp --sparse=always base vol
n=$(CV_FAULT_TRACE=1 "$KEYMGR" "${ROTATE[0]}" vol "${ROTATE[@]:1}" 2>&1 >/dev/null |
      grep -c '^fault point')
[ "$n" -gt 20 ] || fail "rotate-dek passed only $n fault points"
! "$KEYMGR" info vol | grep -q 'DEK rotation' || fail "info: a finished rotation shown"

# Killed a third of the way through.
cp --sparse=always base vol
rc=0
CV_FAULT_KILL_AT=$((n / 3)) "$KEYMGR" "${ROTATE[0]}" vol "${ROTATE[@]:1}" \
  >/dev/null 2>&1 || rc=$?
[ "$rc" = 137 ] || fail "rotate-dek was not killed (exit $rc)"
"$KEYMGR" info vol --json >info.json
read -r state pct boundary size < <(jq -r '.dek_rotation |
  "\(.state) \(.percent) \(.boundary) \(.size)"' info.json)
[ "$state" = interrupted ] || fail "info --json: state $state"
[ "$size" = 4194304 ] && [ "$boundary" -gt 0 ] && [ "$boundary" -lt "$size" ] &&
  [ "$pct" = $((boundary * 100 / size)) ] ||
  fail "info --json: $(jq -c .dek_rotation info.json)"
line="DEK rotation: interrupted at $pct% (boundary $boundary of $size bytes); continue with cryptvol-keymgr rotate-dek or serve with rotate=auto"
"$KEYMGR" info vol >info.txt
grep -qxF "$line" info.txt || { cat info.txt; fail "info: no '$line'"; }
pass "info: $line"

"$KEYMGR" verify vol --keyfile a.kek >verify.txt || fail "verify exit $?"
grep -q 'header MAC verified' verify.txt && grep -qxF "$line" verify.txt ||
  { cat verify.txt; fail "verify: no rotation line"; }
"$KEYMGR" verify vol --keyfile a.kek --json >verify.json || fail "verify --json exit $?"
[ "$(jq -r '.mac_ok, .dek_rotation.state, .dek_rotation.boundary' verify.json |
     paste -sd' ')" = "true interrupted $boundary" ] ||
  fail "verify --json: $(jq -c . verify.json)"
pass "verify: exit 0, MAC verified, the same line and dek_rotation in --json"

# Served (rotate=manual: the server does not continue it).
nbdkit -U - "$PLUGIN" vol keyfile=a.kek rotate=manual \
  --run "'$KEYMGR' info vol" >served.txt 2>nbdkit.err ||
  { cat nbdkit.err; fail "serve"; }
grep -qF "DEK rotation: $pct% done (boundary $boundary of $size bytes); a server has the volume open" served.txt ||
  { cat served.txt; fail "info while served"; }
pass "served: $(grep 'DEK rotation' served.txt)"

# A rotate-dek running now: stopped once its trace shows it has begun, on
# a volume of 256 steps (each with its syncs), so it cannot end first.
"$KEYMGR" create big --size 16M --wrap file:a.kek >/dev/null
CV_FAULT_TRACE=1 "$KEYMGR" rotate-dek big --keyfile a.kek --hotzone 64K \
  2>trace.log >/dev/null &
kpid=$!
cleanup_hooks+=("kill -CONT $kpid 2>/dev/null; kill $kpid 2>/dev/null")
for _ in $(seq 1 1000); do
  [ "$(grep -c '^fault point' trace.log)" -ge 3 ] && break
  kill -0 "$kpid" 2>/dev/null || break
  sleep 0.01
done
kill -STOP "$kpid" || fail "rotate-dek ended before it could be stopped"
"$KEYMGR" info big >running.txt
kill -CONT "$kpid"
grep -qE "^DEK rotation: in progress at [0-9]+% \(boundary [0-9]+ of 16777216 bytes\); cryptvol-keymgr rotate-dek has the volume open" running.txt ||
  { cat running.txt; fail "info during rotate-dek"; }
pass "running: $(grep 'DEK rotation' running.txt)"
wait "$kpid" || fail "the stopped and continued rotate-dek failed"

# The interrupted one, run again to its end.
"$KEYMGR" "${ROTATE[0]}" vol "${ROTATE[@]:1}" >/dev/null 2>&1 ||
  fail "rotate-dek did not continue the interrupted rotation"

"$KEYMGR" info vol >done.txt
"$KEYMGR" verify vol --keyfile a.kek >>done.txt
! grep -q 'DEK rotation' done.txt || { cat done.txt; fail "rotation shown after it finished"; }
! jq -e '.dek_rotation' <("$KEYMGR" info vol --json) >/dev/null ||
  fail "info --json: dek_rotation after the rotation finished"
pass "finished: no rotation shown"
