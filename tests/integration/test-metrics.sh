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
VOLPATH=$vol metrics_check m1.prom \
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
