#!/bin/bash
# No DEK in a core dump of a serving nbdkit: with each XTS implementation
# (xts-engine=openssl, gcrypt) a volume with a known, imported DEK is served
# and read and written from two connections (every worker thread keys its
# engines) and, while they are connected, `gcore` dumps the server as an operator or a crash handler
# would. Neither 32-byte half of the DEK may be in the dump (an AES-256 key
# schedule starts with the key itself), while the volume's UUID, which is
# not secret and lives on the ordinary heap, must be (the dump is complete
# enough to find what is there). The control socket's status names the
# implementation serving, and auto logs its timing of both; nbdkit stops
# cleanly (status 0) on SIGTERM.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh gcore python3 jq

nbd_opts=(-v) # the pick is logged at debug level

head -c 64 /dev/urandom >dek
"$KEYMGR" genkey vol.kek >/dev/null
"$KEYMGR" create vol --size 16M --wrap file:vol.kek --import-key dek >/dev/null
uuid=$("$KEYMGR" info vol --json | jq -r .uuid)

for engine in openssl gcrypt auto; do
  rm -f core.* "$tmp/nbdkit.log"
  start_nbd vol keyfile=vol.kek key-check=0 xts-engine=$engine
  shown=$("$KEYMGR" status --control "$CTL" --json | jq -r .xts_engine)
  case $engine in
    auto) [ "$shown" = openssl ] || [ "$shown" = gcrypt ] ||
            fail "auto: status shows xts_engine '$shown'"
          grep -q "xts: 4096-byte sectors: libgcrypt .* GB/s, OpenSSL .* GB/s" "$tmp/nbdkit.log" ||
            fail "auto: the timing of both implementations is not logged"
          pass "auto picked $shown and logged why: $(grep -o 'xts: 4096.*' "$tmp/nbdkit.log" | head -1)"
          # A clean stop: the libraries free through the plugin's allocator
          # hooks after nbdkit has unloaded it.
          kill "$nbd_pid"
          rc=0; wait "$nbd_pid" || rc=$?
          nbd_pid=
          [ "$rc" = 0 ] || fail "nbdkit exited with status $rc on SIGTERM"
          pass "nbdkit stops cleanly"
          continue ;; # it serves with one of the two dumped below
    *) [ "$shown" = "$engine" ] || fail "$engine: status shows xts_engine '$shown'" ;;
  esac
  # Two connections, reads and writes (each on its own half), kept open
  # while the dump is taken: engines live as long as their worker threads.
  rm -f ready.* dumped
  pids=()
  for c in 0 1; do
    nbdsh -u "$URI" -c "
import os, time
buf = os.urandom(1 << 20)
for i in range(8 * $c, 8 * $c + 8):
    h.pwrite(buf, i << 20)
    assert h.pread(1 << 20, i << 20) == buf
open('ready.$c', 'w').close()
while not os.path.exists('dumped'):
    time.sleep(0.05)
" &
    pids+=($!)
  done
  for _ in $(seq 1 400); do
    [ -e ready.0 ] && [ -e ready.1 ] && break
    sleep 0.05
  done
  [ -e ready.0 ] && [ -e ready.1 ] || fail "$engine: the clients did not finish their I/O"
  gcore -o core "$nbd_pid" >gcore.log 2>&1 || { cat gcore.log >&2; fail "$engine: gcore failed"; }
  touch dumped
  for p in "${pids[@]}"; do wait "$p" || fail "$engine: I/O failed"; done
  stop_nbd
  python3 - core.* dek "$uuid" "$engine" <<'PY' || fail "$engine: see above"
import sys
core = open(sys.argv[1], "rb").read()
dek = open(sys.argv[2], "rb").read()
uuid, engine = sys.argv[3].encode(), sys.argv[4]
if uuid not in core:
    sys.exit(f"the volume UUID is not in the {len(core)}-byte dump: the search proves nothing")
for name, half in (("first", dek[:32]), ("second", dek[32:])):
    if half in core:
        sys.exit(f"the {name} half of the DEK is in the core dump (xts-engine={engine})")
print(f"ok: xts-engine={engine}: neither half of the DEK in a {len(core) >> 20} MiB core dump")
PY
done
