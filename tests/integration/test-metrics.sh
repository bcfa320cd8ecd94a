#!/bin/bash
# cryptvol-keymgr metrics against the real plugin's control socket, its
# output parsed by the Prometheus text-format parser of prometheus_client
# (an oracle that is not ours): the export's info (volume path with a quote
# and a backslash, escaped; uuid), the key state, bytes after a known write
# and read, a key check counted with its time, a lock's refused requests,
# no rotation (done = total = the size); --export; and the errors a collector must see (no server, an
# unknown export: non-zero, nothing on stdout).
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh jq
python3 -c 'import prometheus_client.parser' 2>/dev/null ||
  { echo "SKIP: python3-prometheus-client is not installed"; exit 77; }

vol='v"1\2' # a path a label must escape
new_volume "$vol" 16M
uuid=$("$KEYMGR" info "$vol" --json | jq -r .volume.uuid)
start_nbd "$vol" keyfile="$vol.kek" key-check=0
nbdsh -u "$URI" -c 'h.pwrite(b"\x5a" * 1048576, 0)' -c 'h.pread(65536, 4096)'

# metrics_check FILE PYTHON-EXPRESSIONS...: parse FILE with prometheus_client
# into m[(sample name, label=value...)] = value; every expression (python)
# must hold, else it is printed with the output.
metrics_check () {
  python3 - "$@" <<'PY'
import os, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
m, types = {}, {}
for fam in text_string_to_metric_families(text):
    types[fam.name] = fam.type
    for s in fam.samples:
        m[(s.name,) + tuple(sorted(f"{k}={v}" for k, v in s.labels.items()))] = s.value
bad = [e for e in sys.argv[2:] if not eval(e)]
if bad:
    print(text, "\nfailed:", *bad, sep="\n", file=sys.stderr)
    sys.exit(1)
PY
}

# ctl LINE: one request on the control socket, its reply printed.
ctl () {
  python3 - "$CTL" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline(), end="")
PY
}

"$KEYMGR" metrics --control "$CTL" >m1.prom || fail "keymgr metrics"
VOLPATH=$PWD/$vol metrics_check m1.prom \
  "m[('cryptvol_export_info', 'export=', 'uuid=$uuid', 'volume=' + os.environ['VOLPATH'])] == 1" \
  "m[('cryptvol_export_up', 'export=')] == 1" \
  "m[('cryptvol_key_state', 'export=', 'state=unlocked')] == 1" \
  "m[('cryptvol_key_state', 'export=', 'state=revoked')] == 0" \
  "m[('cryptvol_key_state', 'export=', 'state=grace')] == 0" \
  "m[('cryptvol_written_bytes_total', 'export=')] == 1048576" \
  "m[('cryptvol_read_bytes_total', 'export=')] == 65536" \
  "m[('cryptvol_requests_served_total', 'export=')] >= 2" \
  "m[('cryptvol_requests_refused_total', 'export=')] == 0" \
  "m[('cryptvol_io_errors_total', 'export=')] == 0" \
  "m[('cryptvol_key_checks_total', 'export=', 'outcome=ok')] == 0" \
  "m[('cryptvol_rotating', 'export=')] == 0" \
  "m[('cryptvol_rotation_total_bytes', 'export=')] == 16 << 20" \
  "m[('cryptvol_rotation_done_bytes', 'export=')] == 16 << 20" \
  "types['cryptvol_requests_served'] == 'counter' and types['cryptvol_key_state'] == 'gauge'" ||
  fail "metrics after a 1 MiB write and a 64 KiB read"
pass "metrics parsed by prometheus_client: $(grep -c '^cryptvol_' m1.prom) samples, written 1048576, read 65536, unlocked, the volume path escaped"

before=$(date +%s)
ctl '{"cmd":"check"}' | jq -e '.ok and .outcome == "ok"' >/dev/null || fail "check"
"$KEYMGR" metrics --control "$CTL" --export "" >m2.prom || fail "keymgr metrics --export ''"
metrics_check m2.prom \
  "m[('cryptvol_key_checks_total', 'export=', 'outcome=ok')] == 1" \
  "m[('cryptvol_key_checks_total', 'export=', 'outcome=revoked')] == 0" \
  "m[('cryptvol_key_last_success_timestamp_seconds', 'export=')] >= $before" ||
  fail "metrics after a key check"
pass "a key check is counted (outcome ok) with its time"

"$KEYMGR" lock --control "$CTL" >/dev/null || fail "lock"
nbdsh -u "$URI" -c '
try:
    h.pread(4096, 0)
    sys.exit("served while locked")
except nbd.Error:
    pass' || fail "a read while locked"
"$KEYMGR" metrics --control "$CTL" >m3.prom || fail "keymgr metrics (locked)"
metrics_check m3.prom \
  "m[('cryptvol_key_state', 'export=', 'state=revoked')] == 1" \
  "m[('cryptvol_key_state', 'export=', 'state=unlocked')] == 0" \
  "m[('cryptvol_requests_refused_total', 'export=')] >= 1" \
  "m[('cryptvol_io_errors_total', 'export=')] == 0" ||
  fail "metrics while locked"
pass "locked: state revoked, the refused read counted (not as an I/O error)"

# What a collector must notice: a non-zero exit and nothing on stdout.
expect_fail "metrics of an unknown export" 'unknown export "nope"' \
  "$KEYMGR" metrics --control "$CTL" --export nope
[ ! -s "$tmp/out" ] || fail "output on error: $(cat "$tmp/out")"
stop_nbd
expect_fail "metrics with no server" "no cryptvol server listens on $CTL" \
  "$KEYMGR" metrics --control "$CTL"
[ ! -s "$tmp/out" ] || fail "output on error: $(cat "$tmp/out")"
rc=0; "$KEYMGR" metrics --control "$CTL" >/dev/null 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "exit $rc without a server, not 4"
pass "no server: exit 4, nothing on stdout"

# --- several exports -----------------------------------------------------------
# Until the plugin serves several exports, a stand-in server on a socket
# replies as doc/control.md says one does: keymgr must send --export, label
# every export (a name that needs escaping too) and report one that cannot
# be read as down; rotate-dek --control finds the export of its volume (db
# has the uuid of $vol) by itself.
FAKE=$tmp/multi.sock
DB_UUID=$uuid python3 - "$FAKE" "$tmp/requests.log" <<'PY' &
import json, os, socket, sys
def one(name, vol, uuid, state, wr):
    return {"export": name, "volume": vol, "uuid": uuid, "state": state,
            "requests": {"served": 3, "refused": 0, "failed": 1},
            "bytes": {"read": 0, "written": wr},
            "checks": {"ok": 2, "revoked": 0, "unreachable": 5, "last_ok": 1700000000},
            "rotation": {"state": "running", "done": 4096, "total": 8192}}
exports = [one("db", "/srv/db.img", os.environ["DB_UUID"], "unlocked", 4096),
           one('we"b\\x', "/srv/web.img", "u-web", "grace", 512),
           {"export": "lazy", "volume": "/srv/lazy.img", "uuid": "",
            "error": "lazy: not unlocked yet"}]
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1] + ".tmp"); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.listen(4)
log = open(sys.argv[2], "a", buffering=1)
while True:
    c, _ = srv.accept()
    req = json.loads(c.makefile().readline())
    log.write(json.dumps(req, sort_keys=True) + "\n")
    name = req.get("export")
    if name is None:
        rep = {"ok": True, "exports": exports}
    else:
        e = [x for x in exports if x["export"] == name and "error" not in x]
        rep = dict(ok=True, **e[0]) if e else {"ok": False, "error": f'unknown export "{name}"'}
    c.sendall(json.dumps(rep).encode() + b"\n")
    c.close()
PY
fake_pid=$!
cleanup_hooks+=("kill $fake_pid")
for _ in $(seq 1 100); do [ -S "$FAKE" ] && break; sleep 0.05; done
[ -S "$FAKE" ] || fail "the stand-in control server did not start"

"$KEYMGR" metrics --control "$FAKE" >m4.prom || fail "keymgr metrics (several exports)"
metrics_check m4.prom \
  "m[('cryptvol_export_up', 'export=db')] == 1 and m[('cryptvol_export_up', 'export=lazy')] == 0" \
  "m[('cryptvol_export_info', 'export=lazy', 'uuid=', 'volume=/srv/lazy.img')] == 1" \
  "m[('cryptvol_key_state', 'export=we\"b\\\\x', 'state=grace')] == 1" \
  "m[('cryptvol_key_state', 'export=db', 'state=grace')] == 0" \
  "m[('cryptvol_written_bytes_total', 'export=db')] == 4096" \
  "m[('cryptvol_written_bytes_total', 'export=we\"b\\\\x')] == 512" \
  "m[('cryptvol_io_errors_total', 'export=db')] == 1" \
  "m[('cryptvol_key_checks_total', 'export=db', 'outcome=unreachable')] == 5" \
  "m[('cryptvol_key_last_success_timestamp_seconds', 'export=db')] == 1700000000" \
  "m[('cryptvol_rotating', 'export=db')] == 1 and m[('cryptvol_rotation_done_bytes', 'export=db')] == 4096" \
  "not any(k[0] == 'cryptvol_key_state' and 'export=lazy' in k for k in m)" ||
  fail "metrics of several exports"
pass "several exports: each labelled (a quote and a backslash escaped), one not unlocked is down"

"$KEYMGR" metrics --control "$FAKE" --export db >m5.prom || fail "metrics --export db"
metrics_check m5.prom \
  "{k[1] for k in m} == {'export=db'}" || fail "metrics --export db: only db"
"$KEYMGR" status --control "$FAKE" >st.txt || fail "status of several exports"
[ "$(grep -c '^export:' st.txt)" = 3 ] && grep -q '^error: *lazy: not unlocked yet' st.txt ||
  { cat st.txt; fail "status of several exports (text)"; }
tail -n 3 "$tmp/requests.log" >req.txt
[ "$(sed -n 1p req.txt)" = '{"cmd": "status"}' ] &&
  [ "$(sed -n 2p req.txt)" = '{"cmd": "status", "export": "db"}' ] &&
  [ "$(sed -n 3p req.txt)" = '{"cmd": "status"}' ] || { cat req.txt; fail "the requests keymgr sent"; }
pass "--export NAME is sent; status prints every export, one block each"

new_volume other 1M
expect_fail "rotate-dek of a volume the server has no export of" \
  "serves no export of other \\(uuid .*\\) that is unlocked: .* --export NAME" \
  "$KEYMGR" rotate-dek other --control "$FAKE" --keyfile other.kek --detach
"$KEYMGR" rotate-dek "$vol" --control "$FAKE" --detach >rot.txt || fail "rotate-dek --control, several exports"
[ "$(tail -n 1 "$tmp/requests.log")" = '{"cmd": "rotate", "export": "db"}' ] ||
  { tail -n 2 "$tmp/requests.log"; fail "rotate-dek did not name db"; }
pass "rotate-dek --control on a server of several exports names the export of its volume (db)"
