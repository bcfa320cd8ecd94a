#!/bin/bash
# cryptvol over TLS with pre-shared keys (nbdkit --tls=require --tls-psk).
# The right user and key attach (libnbd nbds://alice@…?tls-psk-file=, qemu-img
# with tls-creds-psk); a wrong key, an unknown user and plaintext are refused
# with nothing served and the volume unchanged. (The kernel's nbd-client has
# no PSK option: use X.509 for it, see doc/tls.md.)
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/vm/helpers.sh"
source "$CV_SRCDIR/tests/tls/certs.sh"
requires nbdkit nbdinfo nbdcopy qemu-img psktool

mkdir server alice wrong
make_psk server/keys.psk alice
cp server/keys.psk alice/keys.psk             # qemu's tls-creds-psk reads DIR/keys.psk
make_psk wrong/keys.psk alice                 # same user, another key
make_psk bob.psk bob                          # a user the server does not know

new_volume vol 32M
head -c 32M /dev/urandom >src.img
start_server psk tcp --tls=require --tls-psk="$tmp/server/keys.psk" \
  --filter=log "$PLUGIN" vol keyfile=vol.kek logfile="$tmp/psk.log"
url="nbds://alice@127.0.0.1:$PORT/"

nbdcopy src.img "$url?tls-psk-file=$tmp/alice/keys.psk"
nbdinfo "$url?tls-psk-file=$tmp/alice/keys.psk" | grep -q 'with TLS' || fail "nbdinfo: not TLS"
qemu-img compare -q --object "tls-creds-psk,id=tls0,dir=$tmp/alice,username=alice,endpoint=client" \
  --image-opts "driver=raw,file.driver=nbd,file.host=127.0.0.1,file.port=$PORT,file.tls-creds=tls0" \
  driver=raw,file.filename=src.img || fail "qemu-img over PSK: the volume differs from what libnbd wrote"
pass "PSK: libnbd writes and qemu-img (tls-creds-psk) reads back the same data"

refused_unserved psk.log vol "PSK: the right user with a wrong key" "handshake|decrypt|TLS|pull function|terminated" \
  nbdcopy src.img "$url?tls-psk-file=$tmp/wrong/keys.psk"
refused_unserved psk.log vol "PSK: a user the server does not know" "handshake|TLS|pull function|terminated|username" \
  nbdcopy src.img "nbds://bob@127.0.0.1:$PORT/?tls-psk-file=$tmp/bob.psk"
refused_unserved psk.log vol "PSK: plaintext" "requires TLS" \
  nbdcopy src.img "nbd://127.0.0.1:$PORT/"
refused_unserved psk.log vol "PSK: qemu-img with a wrong key" "TLS|handshake|read" \
  qemu-img info --object "tls-creds-psk,id=tls0,dir=$tmp/wrong,username=alice,endpoint=client" \
  --image-opts "driver=nbd,host=127.0.0.1,port=$PORT,tls-creds=tls0"
if grep ' Connect ' psk.log | grep -qv ' tls=1 '; then fail "a connection was served without TLS"; fi
stop_server psk
