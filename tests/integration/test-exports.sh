#!/bin/bash
# Many volumes in one nbdkit, each an export chosen by name: volumes=FILE
# (relative paths, a detached header, per-export keys and key-check) and
# dir=DIR. nbdinfo --list lists them; nbdsh and qemu-img select them by name
# and each reads back only its own data; an unknown name and the empty name
# are refused; the control socket's status and metrics (parsed by
# prometheus_client) cover every export and lock/unlock --export act on one;
# one export whose key is gone at start-up is refused with the reason while
# the others serve, and is unlocked through the control socket once its key
# is back; one whose key goes away while serving is revoked alone;
# unlock=lazy unlocks on the first client only. Then the configuration errors, each with FILE:LINE. (The
# kernel's nbd-client selects an export in test-client-kernel.sh.)
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo nbdsh qemu-img jq

mkdir vols keys
for v in a b c; do
  "$KEYMGR" genkey "keys/$v.kek" >/dev/null
done
"$KEYMGR" create vols/a --size 4M --wrap file:keys/a.kek >/dev/null
"$KEYMGR" create vols/b --size 8M --wrap file:keys/b.kek >/dev/null
"$KEYMGR" create vols/c.img --size 4M --wrap file:keys/c.kek \
  --detached-header vols/c.hdr >/dev/null
cat >volumes.conf <<'EOF'
# three customers' volumes
[a]
volume = vols/a
keyfile = keys/a.kek
key-check = 0

[tenant-b/data]
volume = vols/b
keyfile = keys/b.kek
key-check = 1
key-grace = 0

[c]
volume   =   vols/c.img
header = vols/c.hdr
keyfile = keys/c.kek
key-check = 0
EOF

# start EXTRA-PARAMS...: serve the exports on $SOCK; returns once nbdkit
# listens (unlock=eager: after every export was tried).
start () {
  rm -f "$SOCK"
  nbdkit -f -v -U "$SOCK" "$PLUGIN" "$@" >"$tmp/nbdkit.log" 2>&1 &
  nbd_pid=$!
  nbd_wait "$SOCK" "$nbd_pid" && return 0
  tail -n 20 "$tmp/nbdkit.log" >&2
  fail "nbdkit did not start: $*"
}
uri () { echo "nbd+unix:///$1?socket=$SOCK"; }

# --- listed, selected by name, isolated ----------------------------------------
start volumes=volumes.conf control="$CTL"
nbdinfo --list --json "$(uri '')" >list.json || fail "nbdinfo --list"
[ "$(jq -r '[.exports[]."export-name"] | sort | join(",")' list.json)" = "a,c,tenant-b/data" ] ||
  { cat list.json; fail "nbdinfo --list: exports"; }
pass "nbdinfo --list: $(jq -r '[.exports[]."export-name"] | join(" ")' list.json)"

for e in a tenant-b/data c; do
  nbdsh -u "$(uri "$e")" -c "h.pwrite(b'export:$e'.ljust(4096, b'.'), 0)" ||
    fail "write to export $e"
done
for e in a tenant-b/data c; do
  got=$(nbdsh -u "$(uri "$e")" -c "print(h.pread(4096, 0).rstrip(b'.').decode(), h.get_size())")
  size=$([ "$e" = tenant-b/data ] && echo 8388608 || echo 4194304)
  [ "$got" = "export:$e $size" ] || fail "export $e reads back '$got'"
done
pass "each export reads back its own data and size (nbdsh by name)"
for f in vols/a vols/b vols/c.img; do
  ! grep -q "export:" "$f" || fail "$f holds plaintext"
done
pass "the data is encrypted on disk in every volume"

qemu-img info --output=json --image-opts \
  "driver=nbd,server.type=unix,server.path=$SOCK,export=tenant-b/data" >qi.json ||
  fail "qemu-img info export=tenant-b/data"
[ "$(jq '."virtual-size"' qi.json)" = 8388608 ] || { cat qi.json; fail "qemu-img: size"; }
qemu-img convert -f raw -O raw "$(uri c)" c.raw || fail "qemu-img convert from export c"
[ "$(head -c 8 c.raw)" = "export:c" ] || fail "qemu-img convert read export c wrongly"
pass "qemu-img selects exports by name (info, convert)"

expect_fail "an unknown export" "no export named 'nope'" \
  nbdsh -u "$(uri nope)" -c 'pass'
grep -q 'no export "nope" here: `nbdinfo --list URI` lists the exports' "$tmp/nbdkit.log" ||
  fail "the server log does not say why nope was refused"
expect_fail "the empty name with several exports" "." nbdsh -u "$(uri '')" -c 'pass'
pass "unknown export and empty name refused"

# --- the control socket and metrics cover every export --------------------------
"$KEYMGR" status --control "$CTL" --json >st.json || fail "status of every export"
[ "$(jq -r '[.exports[] | "\(.export)=\(.state)"] | join(",")' st.json)" = \
  "a=unlocked,tenant-b/data=unlocked,c=unlocked" ] || { cat st.json; fail "status: exports"; }
"$KEYMGR" metrics --control "$CTL" >m.prom || fail "keymgr metrics"
python3 - m.prom <<'PY' || { cat m.prom; fail "metrics of every export"; }
import sys
from prometheus_client.parser import text_string_to_metric_families
up, written = {}, {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        if s.name == "cryptvol_export_up":
            up[s.labels["export"]] = s.value
        if s.name == "cryptvol_written_bytes_total":
            written[s.labels["export"]] = s.value
assert up == {"a": 1, "tenant-b/data": 1, "c": 1}, up
assert all(written[e] >= 4096 for e in up), written
PY
pass "status and metrics (parsed by prometheus_client) cover every export"
"$KEYMGR" lock --control "$CTL" --export c >/dev/null || fail "lock --export c"
expect_fail "export c after lock --export c" "Operation not permitted" \
  nbdsh -u "$(uri c)" -c 'h.pread(4096, 0)'
nbdsh -u "$(uri a)" -c "assert h.pread(8, 0) == b'export:a'" || fail "a after c was locked"
"$KEYMGR" unlock --control "$CTL" --export c >/dev/null || fail "unlock --export c"
nbdsh -u "$(uri c)" -c "assert h.pread(8, 0) == b'export:c'" || fail "c after unlock"
expect_fail "lock without --export on a server of three" "name one" \
  "$KEYMGR" lock --control "$CTL"
pass "lock --export c stops only c; unlock serves it again"

# --- one export's key goes away while serving: only it is revoked ---------------
mv keys/b.kek keys/b.kek.away
for _ in $(seq 1 200); do
  nbdsh -u "$(uri tenant-b/data)" -c 'h.pread(4096, 0)' 2>/dev/null || break
  sleep 0.05
done
expect_fail "tenant-b/data after its key file went away" "Operation not permitted|EPERM" \
  nbdsh -u "$(uri tenant-b/data)" -c 'h.pread(4096, 0)'
for e in a c; do
  nbdsh -u "$(uri "$e")" -c "assert h.pread(8, 0) == b'export:$e'[:8]" ||
    fail "export $e no longer served after another's key was revoked"
done
pass "the other exports are still served"
mv keys/b.kek.away keys/b.kek
stop_nbd

# --- eager: an export whose key is missing at start-up ------------------------------
mv keys/c.kek keys/c.kek.away
start volumes=volumes.conf unlock-parallel=2 control="$CTL"
grep -q "1 of 3 exports could not be unlocked" "$tmp/nbdkit.log" ||
  { cat "$tmp/nbdkit.log"; fail "no warning about the export that could not be unlocked"; }
expect_fail "export c, its key file missing" "." nbdsh -u "$(uri c)" -c 'pass'
grep -q "export \"c\" is not unlocked: cannot unlock volume .*(file [^)]*keys/c.kek): failed (No such file" "$tmp/nbdkit.log" ||
  { grep -v debug "$tmp/nbdkit.log"; fail "the server does not say why c is refused"; }
nbdsh -u "$(uri a)" -c "assert h.pread(8, 0) == b'export:a'" || fail "export a with c's key missing"
pass "eager: c refused with its reason, a and tenant-b/data served"
"$KEYMGR" status --control "$CTL" --export c --json >st.json || fail "status --export c"
jq -e '.state == "not-unlocked" and (.cause | test("c.kek"))' st.json >/dev/null ||
  { cat st.json; fail "status of the export not unlocked"; }
expect_fail "lock --export c, not unlocked" 'export "c" is not unlocked \(cannot unlock volume' \
  "$KEYMGR" lock --control "$CTL" --export c
expect_fail "unlock --export c, its key still missing" "no wrap could be unlocked" \
  "$KEYMGR" unlock --control "$CTL" --export c
mv keys/c.kek.away keys/c.kek
"$KEYMGR" unlock --control "$CTL" --export c >/dev/null || fail "unlock --export c once its key is back"
nbdsh -u "$(uri c)" -c "assert h.pread(8, 0) == b'export:c'" || fail "c after its unlock"
pass "status says why c is not unlocked; unlock --export c unlocks it once its key is back"
stop_nbd

# --- lazy: nothing unlocked before a client asks ------------------------------------
start volumes=volumes.conf unlock=lazy
# Only the names (nbdinfo --list opens every export to show its size).
names=$(nbdsh -c "
h.set_opt_mode(True)
h.connect_unix('$SOCK')
names = []
h.opt_list(lambda name, desc: names.append(name))
print(' '.join(sorted(names)))
h.opt_abort()") || fail "listing the exports (lazy)"
[ "$names" = "a c tenant-b/data" ] || fail "lazy: listed '$names'"
! grep -q 'unlocked, ' "$tmp/nbdkit.log" || fail "unlock=lazy unlocked at start-up"
nbdsh -u "$(uri a)" -c "assert h.pread(8, 0) == b'export:a'" || fail "lazy: export a"
[ "$(grep -c 'unlocked, ' "$tmp/nbdkit.log")" = 1 ] || fail "lazy: not exactly one export unlocked"
pass "lazy: none unlocked at start, a unlocked on its first client only"
stop_nbd

# --- dir=DIR -------------------------------------------------------------------------
mkdir d
"$KEYMGR" genkey shared.kek >/dev/null
"$KEYMGR" create d/x --size 1M --wrap file:shared.kek >/dev/null
"$KEYMGR" create d/y.img --size 2M --wrap file:shared.kek --detached-header d/y.img.hdr >/dev/null
touch d/.hidden d/notes.conf
start dir=d keyfile=shared.kek key-check=0
nbdinfo --list --json "$(uri '')" >list.json || fail "nbdinfo --list (dir=)"
[ "$(jq -r '[.exports[]."export-name"] | join(",")' list.json)" = "x,y.img" ] ||
  { cat list.json; fail "dir=: exports"; }
[ "$(nbdsh -u "$(uri y.img)" -c 'print(h.get_size())')" = 2097152 ] || fail "dir=: y.img"
pass "dir=: x and y.img (its detached header beside it) listed and served"
stop_nbd

# --- configuration errors -------------------------------------------------------------
bad () { # WHAT PATTERN CONF-TEXT
  printf '%s\n' "$3" >bad.conf
  expect_fail "$1" "$2" nbdkit -U - "$PLUGIN" volumes=bad.conf --run true
}
bad "an entry before any stanza" "bad.conf:1: \"volume = ...\" before the first" "volume = vols/a"
bad "a stanza without volume" "bad.conf: \[x\] has no \"volume = PATH\"" "[x]
keyfile = keys/a.kek"
bad "a server parameter in a stanza" "bad.conf:3: control is a parameter of the server" "[x]
volume = vols/a
control = /tmp/x"
bad "an unknown parameter" "bad.conf:2: unknown parameter \"colume\"" "[x]
colume = vols/a"
bad "a bad value" "bad.conf:2: in \[x\]: key-check = ... is wrong" "[x]
key-check = soon
volume = vols/a"
bad "an export defined twice" "export \"x\" defined twice" "[x]
volume = vols/a
[x]
volume = vols/b"
bad "a name that is not an export name" "bad.conf:1: \[bad name\]: an export name is" "[bad name]
volume = vols/a"
bad "a passphrase prompt in the file" "passphrase = -: a volumes file cannot prompt" "[x]
volume = vols/a
passphrase = -"
expect_fail "volume= twice" "volume= given twice" \
  nbdkit -U - "$PLUGIN" vols/a volume=vols/b keyfile=keys/a.kek --run true
expect_fail "volume= and volumes=" "give one of volume=, volumes=FILE and dir=DIR" \
  nbdkit -U - "$PLUGIN" vols/a volumes=volumes.conf --run true
