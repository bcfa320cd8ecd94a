#!/bin/bash
# The control socket with the real nbdkit and cryptvol-keymgr, on a volume
# wrapped with a key file (no key watch: key-check=0, so every change of
# state here is the operator's): status (text and --json), lock (reads and
# writes fail with EPERM), unlock (the data reads back), reload after
# add-wrap --control, a reload that fails without failing remove-wrap, the
# socket's mode, a stale socket replaced, a live one not stolen, and the
# audit log: every event and command present, no secret in it.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh jq

SOCK=$tmp/nbd.sock
CTL=$tmp/ctl.sock
URI="nbd+unix:///?socket=$SOCK"
nbd_pid=

# start_nbd VOLUME [PARAMS...]: serve VOLUME in the background with its
# control socket at $CTL; return once `status` answers.
start_nbd () {
  rm -f "$SOCK"
  nbdkit -f -U "$SOCK" "$PLUGIN" "$@" control="$CTL" >>"$tmp/nbdkit.log" 2>&1 &
  nbd_pid=$!
  local _
  for _ in $(seq 1 400); do
    [ -S "$SOCK" ] && "$KEYMGR" status --control "$CTL" >/dev/null 2>&1 && return 0
    kill -0 "$nbd_pid" 2>/dev/null || break
    sleep 0.05
  done
  tail -n 20 "$tmp/nbdkit.log" >&2
  fail "nbdkit did not start serving $1 with a control socket"
}
stop_nbd () {
  if [ -n "$nbd_pid" ]; then
    kill -"${1:-TERM}" "$nbd_pid" 2>/dev/null || true
    wait "$nbd_pid" 2>/dev/null || true
    nbd_pid=
  fi
}
cleanup_hooks+=(stop_nbd)

# io_errno: the errno of a read and of a write through NBD ("ok" if served).
io_errno () {
  nbdsh -u "$URI" -c '
import errno
for what, op in (("read", lambda: h.pread(4096, 0)),
                 ("write", lambda: h.pwrite(b"x" * 4096, 8192))):
    try:
        op()
        print(what, "ok")
    except nbd.Error as e:
        print(what, errno.errorcode.get(e.errno, e.errno))
'
}

new_volume vol 16M
head -c 1M /dev/urandom >data
uuid=$("$KEYMGR" info vol --json | jq -r .volume.uuid)
start_nbd vol keyfile=vol.kek key-check=0 audit-log="$tmp/audit.log"
nbdsh -u "$URI" -c "h.pwrite(open('data', 'rb').read(), 65536)"

# --- status ------------------------------------------------------------------
[ "$(stat -c %a "$CTL")" = 600 ] || fail "control socket mode $(stat -c %a "$CTL"), not 600"
pass "the control socket has mode 0600"
"$KEYMGR" status --control "$CTL" >st.txt || fail "keymgr status"
grep -Eq '^state: +unlocked$' st.txt && grep -Eq '^wrap: +0 \(file\)$' st.txt &&
  grep -Eq "^uuid: +$uuid$" st.txt || { cat st.txt; fail "status (text)"; }
pass "keymgr status: $(grep -E '^(state|wrap|requests)' st.txt | tr -s ' ' | paste -sd';')"
"$KEYMGR" status --control "$CTL" --json >st.json || fail "keymgr status --json"
jq -e --arg u "$uuid" '.ok and .state == "unlocked" and .uuid == $u
  and (.volume | endswith("vol")) and .wrap == {"id": 0, "type": "file"}
  and .requests.served >= 1 and .bytes.written >= 1048576
  and .next_check == ""' st.json >/dev/null || { cat st.json; fail "status --json"; }
pass "keymgr status --json: $(jq -c '{state, wrap, requests, bytes}' st.json)"

# --- lock: the kill switch ------------------------------------------------------
"$KEYMGR" lock --control "$CTL" >out || fail "keymgr lock"
grep -q "the volume is revoked" out || { cat out; fail "lock says: $(cat out)"; }
[ "$(io_errno | paste -sd' ')" = "read EPERM write EPERM" ] ||
  fail "after lock: $(io_errno | paste -sd' '), not EPERM"
nbdsh -u "$URI" -c 'assert h.get_size() == 16 * 1024 * 1024' ||
  fail "a client cannot connect and learn the size while revoked"
"$KEYMGR" status --control "$CTL" --json >st.json
jq -e '.state == "revoked" and (.cause | test("control socket")) and .requests.refused >= 2' \
  st.json >/dev/null || { cat st.json; fail "status after lock"; }
pass "lock: reads and writes fail with EPERM; status: $(jq -c '{state, cause, requests}' st.json)"
expect_fail "reload while revoked" "reload refused while the key is revoked" \
  "$KEYMGR" reload --control "$CTL"
rc=0; "$KEYMGR" reload --control "$CTL" >/dev/null 2>&1 || rc=$?
[ $rc -eq 3 ] || fail "reload while revoked: exit $rc, not 3 (the header was not taken)"

# --- unlock -------------------------------------------------------------------------
"$KEYMGR" unlock --control "$CTL" --json >out.json || { cat out.json; fail "keymgr unlock"; }
jq -e '.ok and .state == "unlocked"' out.json >/dev/null || { cat out.json; fail "unlock reply"; }
nbdsh -u "$URI" -c "assert h.pread(1048576, 65536) == open('data', 'rb').read()" ||
  fail "the data does not read back after unlock"
[ "$(io_errno | paste -sd' ')" = "read ok write ok" ] || fail "I/O after unlock: $(io_errno)"
pass "unlock: served again, the data written before reads back identical"

# --- reload after add-wrap --control; remove-wrap whose reload fails ---------------
"$KEYMGR" genkey new.kek >/dev/null
"$KEYMGR" add-wrap vol --wrap file:new.kek --keyfile vol.kek --control "$CTL" >out ||
  fail "add-wrap --control"
grep -Eq "the server reloaded the header \(seqid [0-9]+\)" out || { cat out; fail "add-wrap did not report the reload"; }
seqid=$("$KEYMGR" info vol --json | jq .seqid)
"$KEYMGR" reload --control "$CTL" --json >out.json || fail "keymgr reload"
jq -e --argjson s "$seqid" '.ok and .seqid == $s' out.json >/dev/null ||
  { cat out.json; echo "header seqid $seqid"; fail "reload reply"; }
pass "add-wrap --control: $(grep reloaded out); reload --json: $(jq -c . out.json)"
"$KEYMGR" genkey third.kek >/dev/null
"$KEYMGR" add-wrap vol --wrap file:third.kek --keyfile vol.kek --control "$CTL" --json >out.json ||
  fail "add-wrap --json --control"
jq -e '.reload.ok and (.reload.seqid | type == "number")' out.json >/dev/null ||
  { cat out.json; fail "add-wrap --json has no reload member"; }
# The wrap in use (0) removed: the server's credentials (vol.kek) open no
# other wrap, so its reload is refused; remove-wrap itself succeeded.
"$KEYMGR" remove-wrap vol --id 0 --keyfile new.kek --control "$CTL" >out 2>err ||
  { cat out err; fail "remove-wrap failed because the server's reload did"; }
grep -q "did not reload it" err && grep -q "removed wrap 0" out ||
  { cat out err; fail "remove-wrap does not report the failed reload"; }
"$KEYMGR" list-wraps vol | grep -Eq '^0 ' && fail "wrap 0 is still in the header"
pass "remove-wrap --control: the change stands, the server said: $(grep -o 'did not reload.*' err | head -c 160)"
[ "$(io_errno | paste -sd' ')" = "read ok write ok" ] || fail "I/O after a refused reload"

# --- not listening, stale socket, live socket --------------------------------------
stop_nbd
[ ! -e "$CTL" ] || fail "the control socket is left after nbdkit exits"
expect_fail "status with no server" \
  "no cryptvol server listens on $CTL \(is nbdkit running with control=$CTL\?\)" \
  "$KEYMGR" status --control "$CTL"
rc=0; "$KEYMGR" status --control "$CTL" 2>/dev/null || rc=$?
[ $rc -eq 4 ] || fail "status with no server: exit $rc, not 4"
start_nbd vol keyfile=new.kek key-check=0 audit-log="$tmp/audit.log"
stop_nbd KILL
[ -S "$CTL" ] || fail "a killed nbdkit left no socket to test with"
start_nbd vol keyfile=new.kek key-check=0 audit-log="$tmp/audit.log"
pass "a stale socket (nbdkit killed) is replaced by the next server"
new_volume other 1M
if nbdkit -f -U "$tmp/other.sock" "$PLUGIN" other keyfile=other.kek \
     control="$CTL" >other.log 2>&1; then
  fail "a second server took a live control socket"
fi
grep -q "another server already listens" other.log || { cat other.log; fail "second server's message"; }
"$KEYMGR" status --control "$CTL" >/dev/null || fail "the first server lost its socket"
pass "a live socket is not stolen: $(grep -o 'control=.*' other.log | head -1)"
stop_nbd

# --- the audit log --------------------------------------------------------------------
jq -e -s 'length > 0' "$tmp/audit.log" >/dev/null || fail "the audit log is not JSON lines"
while IFS= read -r line; do
  jq -e --arg u "$uuid" '.time and .uuid == $u and (.volume | endswith("vol")) and .event' \
    <<<"$line" >/dev/null || fail "audit record without time, volume, uuid, event: $line"
done <"$tmp/audit.log"
me=$(id -u)
for want in 'select(.event == "unlock" and .wrap == 0 and .type == "file")' \
            'select(.event == "revoke" and (.cause | test("control socket")))' \
            'select(.event == "resume")' \
            'select(.event == "reload" and (.seqid | type == "number"))' \
            "select(.event == \"control\" and .command == \"lock\" and .result == \"ok\" and .peer.uid == $me and .peer.pid > 0)" \
            'select(.event == "control" and .command == "status" and .result == "ok")' \
            'select(.event == "control" and .command == "unlock" and .result == "ok")' \
            'select(.event == "control" and .command == "reload" and .result == "error" and (.error | test("revoked")))' \
            'select(.event == "control" and .command == "reload" and .result == "error" and (.error | test("wrap in use")))'; do
  [ "$(jq -s "[.[] | $want] | length" "$tmp/audit.log")" -ge 1 ] ||
    { cat "$tmp/audit.log"; fail "no audit record: $want"; }
done
pass "audit log: $(wc -l <"$tmp/audit.log") records; events $(jq -r .event "$tmp/audit.log" | sort | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
for k in vol.kek new.kek third.kek; do
  hex=$(od -An -tx1 "$k" | tr -d ' \n')
  b64=$(base64 -w0 "$k")
  for f in "$tmp/audit.log" "$tmp/nbdkit.log"; do
    grep -qiF -e "$hex" -e "$b64" "$f" && fail "$k's key is in $f"
  done
done
pass "no key file's key (hex or base64) in the audit log or nbdkit's log"
