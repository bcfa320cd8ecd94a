#!/bin/bash
# The control socket with the real nbdkit and cryptvol-keymgr, on a volume
# wrapped with a key file (no key watch: key-check=0, so every change of
# state here is the operator's): status (text and --json), check through a
# plain socket client (the key file gone revokes), lock (reads and writes
# fail with EPERM), unlock (the data reads back), reload after
# add-wrap and rewrap --control (also a rewrap run again once complete),
# a reload that fails without failing remove-wrap, the
# socket's mode (and with control-group=), a stale socket replaced, a live
# one not stolen, an audit log that cannot be opened, and the audit log:
# every event and command present, no secret in it. Then the same commands
# on the plugin built with ASan/UBSan (make sanitize), if it is built.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh jq

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

# --- check, through a client that is not keymgr ------------------------------------
# ctl LINE...: send the lines on one connection, print the replies.
ctl () {
  python3 - "$CTL" "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall("".join(l + "\n" for l in sys.argv[2:]).encode())
s.shutdown(socket.SHUT_WR)
print(s.makefile().read(), end="")
PY
}
ctl '{"cmd":"check"}' '{"cmd":"reboot"}' '{"cmd":"status"}' >replies
[ "$(wc -l <replies)" -eq 3 ] || { cat replies; fail "three requests, not three replies"; }
sed -n 1p replies | jq -e '.ok and .state == "unlocked" and .outcome == "ok"' >/dev/null ||
  { cat replies; fail "check reply"; }
sed -n 2p replies | jq -e '(.ok | not) and (.error | test("unknown command \"reboot\"; known: status, check, lock, unlock, reload"))' \
  >/dev/null || { cat replies; fail "unknown command reply"; }
sed -n 3p replies | jq -e '.ok and .last_check.outcome == "ok" and (.last_check.time | test("Z$"))' \
  >/dev/null || { cat replies; fail "status after check"; }
pass "check through a plain socket client: $(sed -n 1p replies)"
# The key file gone: the check revokes (key-check=0: only this check runs).
mv vol.kek vol.kek.away
ctl '{"cmd":"check"}' >replies
jq -e '.ok and .state == "revoked" and (.outcome | startswith("revoked"))' replies >/dev/null ||
  { cat replies; mv vol.kek.away vol.kek; fail "check with the key file gone"; }
mv vol.kek.away vol.kek
[ "$(io_errno | paste -sd' ')" = "read EPERM write EPERM" ] || fail "after a revoking check: $(io_errno)"
ctl '{"cmd":"unlock"}' | jq -e '.ok and .state == "unlocked"' >/dev/null || fail "unlock after the key file is back"
pass "check with the key file gone revokes: $(jq -c '{state, outcome}' replies); unlock resumes"

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
# rewrap --control reloads; run again after it completed (as after a kill
# past its last commit), it still makes the server reload.
"$KEYMGR" genkey fourth.kek >/dev/null
"$KEYMGR" rewrap vol --id 2 --to file:fourth.kek --keyfile third.kek --control "$CTL" >out ||
  { cat out; fail "rewrap --control"; }
grep -q "moved to file:/.*/fourth.kek" out && grep -q "the server reloaded the header" out ||
  { cat out; fail "rewrap --control output"; }
"$KEYMGR" rewrap vol --id 2 --to file:fourth.kek --keyfile third.kek --control "$CTL" >out ||
  { cat out; fail "rewrap again"; }
grep -q "the rewrap is complete" out && grep -q "the server reloaded the header" out ||
  { cat out; fail "a completed rewrap run again does not reload the server"; }
pass "rewrap --control, and again once complete: $(tail -n 1 out)"
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

# --- commit-header (what keymgr sends for an rbd: volume) on a file volume -----------
start_nbd vol keyfile=new.kek key-check=0 audit-log="$tmp/audit.log"
s0=$("$KEYMGR" info vol --json | jq .seqid)
copy0=$(head -c 65536 vol | base64 -w0)
req="{\"cmd\":\"commit-header\",\"header\":\"$copy0\"}"
ctl "$req" "$req" '{"cmd":"commit-header","header":"AAAA"}' '{"cmd":"commit-header","header":"!!"}' >replies
[ "$(wc -l <replies)" -eq 4 ] || { cut -c1-300 replies; fail "four commit-header requests, not four replies"; }
sed -n 1p replies | jq -e --argjson s "$s0" '.ok and .seqid == $s + 1' >/dev/null ||
  { cat replies; fail "commit-header of the header on disk"; }
sed -n 2p replies | jq -e --argjson s "$s0" '(.ok | not) and (.error | test("was made from seqid \($s), but the header is now at seqid \($s + 1)"))' >/dev/null ||
  { cat replies; fail "commit-header of a header that has changed since"; }
sed -n 3p replies | jq -e '(.ok | not) and (.error | test("the header sent for commit: no header magic"))' >/dev/null ||
  { cat replies; fail "commit-header of junk"; }
sed -n 4p replies | jq -e '(.ok | not) and (.error | test("is not base64"))' >/dev/null ||
  { cat replies; fail "commit-header of something not base64"; }
[ "$("$KEYMGR" info vol --json | jq .seqid)" = $((s0 + 1)) ] || fail "the refused commits changed the header"
[ "$(io_errno | paste -sd' ')" = "read ok write ok" ] || fail "I/O after commit-header"
pass "commit-header: committed (seqid $((s0 + 1))); then refused: $(sed -n 2p replies | jq -r .error | head -c 120)..."
stop_nbd

# --- control-group, a bad audit log -------------------------------------------------
start_nbd vol keyfile=new.kek key-check=0 control-group=4242 audit-log="$tmp/audit.log"
[ "$(stat -c '%a %g' "$CTL")" = "660 4242" ] || fail "control-group=4242: socket $(stat -c '%a %g' "$CTL")"
pass "control-group=4242: the socket has mode 0660 and group 4242"
# Another uid, through the file mode by a supplementary group but not a
# member of 4242 for the server (primary group, group database): refused.
# With 4242 as its primary group: served.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  chmod 755 "$tmp"
  as_nobody () { setpriv --reuid=65534 --regid="$1" --groups="$2" "${@:3}"; }
  rc=0; as_nobody 65534 4242 "$KEYMGR" status --control "$CTL" >out 2>err || rc=$?
  grep -q "permission denied: uid 65534 may not use this control socket" err && [ $rc -eq 4 ] ||
    { cat out err; fail "another uid was not refused (exit $rc)"; }
  jq -e -s '[.[] | select(.event == "control" and .peer.uid == 65534 and .result == "error")] | length == 1' \
    "$tmp/audit.log" >/dev/null || fail "the refused peer is not in the audit log"
  as_nobody 4242 4242 "$KEYMGR" status --control "$CTL" >out || fail "a control-group member was refused"
  grep -Eq '^state: +unlocked$' out || { cat out; fail "status for a control-group member"; }
  pass "uid 65534 refused ($(grep -o 'permission denied.*' err | head -c 90)...), audited; with group 4242 served"
  chmod 700 "$tmp"
fi
stop_nbd
if nbdkit -f -U "$tmp/other.sock" "$PLUGIN" vol keyfile=new.kek \
     audit-log=/nonexistent/dir/audit.log >other.log 2>&1; then
  fail "nbdkit started with an audit log it cannot write"
fi
grep -q "cannot open the audit log /nonexistent/dir/audit.log" other.log || { cat other.log; fail "audit-log message"; }
pass "an audit log that cannot be opened stops nbdkit: $(grep -o 'cannot open the audit log.*' other.log)"

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
            'select(.event == "check" and .outcome == "ok" and .error == "")' \
            'select(.event == "check" and .outcome == "revoked" and .error != "")' \
            "select(.event == \"control\" and .command == \"check\" and .peer.uid == $me)" \
            'select(.event == "control" and (has("command") | not) and (.error | test("unknown command")))' \
            'select(.event == "reload" and (.seqid | type == "number"))' \
            'select(.event == "header" and (.seqid | type == "number"))' \
            'select(.event == "control" and .command == "commit-header" and .result == "ok" and (has("header") | not))' \
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

# --- the same under AddressSanitizer (make sanitize) ---------------------------------
# The control thread, the audit log and their stop at unload, in the
# sanitized plugin: no memory error, no undefined behaviour, no leak of ours.
SAN_PLUGIN=$CV_SRCDIR/build-san/nbdkit-cryptvol-plugin.so
if [ -f "$SAN_PLUGIN" ] && command -v gcc >/dev/null; then
  rm -f "$SOCK"
  env LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=1:exitcode=66 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    nbdkit -f -U "$SOCK" "$SAN_PLUGIN" vol keyfile=new.kek key-check=1 \
      control="$CTL" audit-log="$tmp/san-audit.log" 2>san.err &
  nbd_pid=$!
  for _ in $(seq 1 400); do
    "$KEYMGR" status --control "$CTL" >/dev/null 2>&1 && break
    kill -0 "$nbd_pid" 2>/dev/null || { cat san.err; fail "the sanitized plugin did not start"; }
    sleep 0.05
  done
  "$KEYMGR" lock --control "$CTL" >/dev/null && "$KEYMGR" unlock --control "$CTL" >/dev/null &&
    "$KEYMGR" reload --control "$CTL" >/dev/null || { cat san.err; fail "commands on the sanitized plugin"; }
  ctl '{"cmd":"check"}' '[' '{"cmd":1}' "$(head -c 5000 /dev/zero | tr '\0' x)" \
    '{"cmd":"commit-header","header":"AAAA"}' \
    "{\"cmd\":\"commit-header\",\"header\":\"$(head -c 65536 vol | base64 -w0)\"}" >/dev/null
  nbdsh -u "$URI" -c "assert h.pread(1048576, 65536) == open('data', 'rb').read()"
  kill -TERM "$nbd_pid"; rc=0; wait "$nbd_pid" || rc=$?; nbd_pid=
  if grep -q "ERROR: AddressSanitizer\|runtime error" san.err ||
     { grep -q "LeakSanitizer" san.err && grep -q " in \(cv_\|cryptvol_\)" san.err; } ||
     { [ $rc -ne 0 ] && [ $rc -ne 66 ]; }; then
    cat san.err; fail "sanitizer report, or nbdkit exit $rc"
  fi
  pass "under ASan/UBSan: control commands, bad lines and unload are clean"
else
  echo "note: no sanitized plugin (make sanitize): ASan pass not run"
fi
