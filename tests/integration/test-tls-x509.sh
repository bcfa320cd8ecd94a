#!/bin/bash
# cryptvol over TLS with X.509 client certificates (nbdkit --tls=require
# --tls-verify-peer). A test CA signs the server certificate (127.0.0.1 and
# 10.0.2.2 in subjectAltName) and alice's client certificate. alice attaches
# with libnbd (nbds://, tls-certificates=), qemu-img/qemu-io (tls-creds-x509)
# and the kernel nbd-client in the VM (-cacertfile -certfile -keyfile). Refused,
# with nothing served and the volume unchanged: no client certificate, a
# certificate from another CA, plaintext -- from each kind of client. A client
# that does not trust the server's CA refuses the server.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/vm/helpers.sh"
source "$CV_SRCDIR/tests/tls/certs.sh"
requires nbdkit nbdinfo nbdcopy nbdsh qemu-img qemu-io certtool

make_ca ca
make_cert ca server server localhost 127.0.0.1 10.0.2.2
make_cert ca alice client alice
make_ca otherca
make_cert otherca mallory client mallory
# mallory trusts our server's CA (and its own, so qemu accepts its own
# certificate) but holds a certificate from another CA.
cat ca/ca-cert.pem otherca/ca-cert.pem >mallory/ca-cert.pem
mkdir nocert && cp ca/ca-cert.pem nocert/      # trusts our server, no certificate
make_cert otherca wrongtrust client alice2     # does not trust our server's CA

new_volume vol 64M
head -c 64M /dev/urandom >src.img
start_server tls tcp --tls=require --tls-certificates="$tmp/server" --tls-verify-peer \
  --filter=log "$PLUGIN" vol keyfile=vol.kek logfile="$tmp/tls.log"
url="nbds://127.0.0.1:$PORT/"

# --- alice attaches -----------------------------------------------------------
nbdinfo "$url?tls-certificates=$tmp/alice" >info.txt
grep -q 'with TLS' info.txt || { cat info.txt; fail "nbdinfo: connection not reported as TLS"; }
nbdcopy src.img "$url?tls-certificates=$tmp/alice"
nbdcopy "$url?tls-certificates=$tmp/alice" out.img
cmp src.img out.img || fail "nbdcopy over TLS: data read back differs"
pass "libnbd nbds:// with alice's certificate: nbdinfo, nbdcopy in and out"

qemu_tls=(--object "tls-creds-x509,id=tls0,dir=$tmp/alice,endpoint=client" --image-opts)
qemu_dev="driver=raw,file.driver=nbd,file.host=127.0.0.1,file.port=$PORT,file.tls-creds=tls0"
qemu-img compare -q "${qemu_tls[@]}" "$qemu_dev" driver=raw,file.filename=src.img ||
  fail "qemu-img compare over TLS: the volume differs from src.img"
qemu-io "${qemu_tls[@]}" -c 'write -P 0x77 1048576 65536' -c 'read -P 0x77 1048576 65536' \
  "$qemu_dev" >qio.out
grep -q 'Pattern verification failed' qio.out && fail "qemu-io over TLS read another pattern"
# nbdsh -u refuses URIs naming local files; allow it explicitly.
URL="$url?tls-certificates=$tmp/alice" nbdsh -c '
import os
h.set_uri_allow_local_file(True)
h.connect_uri(os.environ["URL"])
assert h.pread(65536, 1 << 20) == b"\x77" * 65536' ||
  fail "qemu-io's TLS write reads back different through libnbd"
pass "qemu-img compare and qemu-io over TLS with tls-creds-x509"
if grep ' Connect ' tls.log | grep -qv ' tls=1 '; then fail "a connection was served without TLS"; fi

# --- refused: nothing served, nothing changed ---------------------------------
refused_unserved tls.log vol "libnbd without a client certificate" "certificate|handshake|pull function|TLS" \
  nbdcopy src.img "$url?tls-certificates=$tmp/nocert"
refused_unserved tls.log vol "libnbd with a certificate from another CA" "certificate|handshake|pull function" \
  nbdcopy src.img "$url?tls-certificates=$tmp/mallory"
refused_unserved tls.log vol "libnbd in plaintext" "TLS|not supported|opt_go" \
  nbdcopy src.img "nbd://127.0.0.1:$PORT/"
refused_unserved tls.log vol "qemu-img with a certificate from another CA" "certificate|handshake|TLS" \
  qemu-img convert -n -f raw src.img --object "tls-creds-x509,id=tls0,dir=$tmp/mallory,endpoint=client" \
  --target-image-opts "$qemu_dev"
refused_unserved tls.log vol "qemu-img in plaintext" "TLS negotiation required|tls-creds" \
  qemu-img convert -n -O raw src.img "nbd://127.0.0.1:$PORT"
refused_unserved tls.log vol "a client that does not trust the server's CA" "certificate verification|issuer|certificate" \
  nbdinfo "$url?tls-certificates=$tmp/wrongtrust"
grep -q 'gnutls_handshake: Error in the certificate' tls.err ||
  { cat tls.err; fail "nbdkit did not log a rejected client certificate"; }

# --- the kernel's nbd-client in the VM ----------------------------------------
vm_build
mkdir guest
cp -r alice mallory guest/
cat >guest/test.sh <<EOS
tls="-cacertfile /t/alice/ca-cert.pem -certfile /t/alice/client-cert.pem -keyfile /t/alice/client-key.pem"
/sbin/nbd-client 10.0.2.2 $PORT /dev/nbd0 -N vol -b 4096 \$tls
echo "CV-RESULT read \$(dd if=/dev/nbd0 bs=1M skip=2 count=8 2>/dev/null | sha256sum | cut -c1-64)"
dd if=/dev/urandom of=/tmp/data bs=1M count=4 2>/dev/null
dd if=/tmp/data of=/dev/nbd0 bs=1M seek=20 conv=fsync 2>/dev/null
echo "CV-RESULT wrote \$(sha256sum /tmp/data | cut -c1-64)"
/sbin/nbd-client -d /dev/nbd0
# Refused: a certificate from another CA; plaintext.
if /sbin/nbd-client 10.0.2.2 $PORT /dev/nbd1 -N vol -b 4096 -cacertfile /t/mallory/ca-cert.pem \
     -certfile /t/mallory/client-cert.pem -keyfile /t/mallory/client-key.pem; then
  echo "CV-RESULT mallory attached"
else
  echo "CV-RESULT mallory refused"
fi
if /sbin/nbd-client 10.0.2.2 $PORT /dev/nbd2 -N vol -b 4096; then
  echo "CV-RESULT plaintext attached"
else
  echo "CV-RESULT plaintext refused"
fi
EOS
vm_boot tls guest
[ "$(vm_result tls read)" = "$(dd if=src.img bs=1M skip=2 count=8 2>/dev/null | sha256sum | cut -c1-64)" ] ||
  fail "kernel nbd-client over TLS reads other data"
nbdcopy "$url?tls-certificates=$tmp/alice" out.img
[ "$(dd if=out.img bs=1M skip=20 count=4 2>/dev/null | sha256sum | cut -c1-64)" = "$(vm_result tls wrote)" ] ||
  fail "kernel nbd-client's TLS write reads back different"
pass "kernel nbd-client with -cacertfile -certfile -keyfile: reads and writes over TLS"
[ "$(vm_result tls mallory)" = refused ] || fail "kernel nbd-client with another CA's certificate was not refused"
[ "$(vm_result tls plaintext)" = refused ] || fail "kernel nbd-client in plaintext was not refused"
# The guest asks for export "vol": opened once, for alice only.
[ "$(grep -c ' Connect export=vol ' tls.log)" = 1 ] ||
  { grep ' Connect export=vol ' tls.log; fail "the server opened the export for a refused kernel client"; }
pass "kernel nbd-client with another CA's certificate, or in plaintext: refused, nothing served"
stop_server tls
