#!/bin/bash
# make demo's script on a fresh directory: it creates, serves and checks a
# volume, and the server it leaves running answers at the address it prints.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo nbdcopy
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup_hooks+=('[ -f demo/nbdkit.pid ] && kill "$(cat demo/nbdkit.pid)"')

DEMO_DIR=$tmp/demo DEMO_PORT=$port "$CV_SRCDIR/scripts/demo.sh" > out
grep -q "read back intact" out || { cat out; fail "demo did not check its volume"; }
grep -q "nbdinfo nbd://127.0.0.1:$port" out || fail "demo does not say how to attach"
[ "$(nbdinfo --size "nbd://127.0.0.1:$port")" = 268435456 ] || fail "demo server not reachable"
pass "demo serves a 256 MiB volume at nbd://127.0.0.1:$port"
# The key never appears in what the demo prints.
key_hex=$(od -An -tx1 demo/volume.kek | tr -d ' \n')
! grep -q "$key_hex" out || fail "demo printed the key"
pass "demo output holds no key material"
