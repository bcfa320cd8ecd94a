#!/bin/bash
# The operations of doc/tls.md, in order, on one volume:
# gradual migration -- (1) --tls=on: plaintext and TLS clients both served,
# the log filter shows who still comes in plaintext; (2) --tls=on with the
# tls-fallback filter: plaintext clients get only a 512-byte read-only
# notice, TLS clients the volume; (3) --tls=require: plaintext refused.
# Certificate rotation -- a renewed server certificate (same CA): clients
# reconnect unchanged; a new CA introduced with a CA bundle, then the old CA
# withdrawn: old client certificates refused; a client certificate revoked
# with a CRL. Data written in each phase is still there in the next.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/vm/helpers.sh"
source "$CV_SRCDIR/tests/tls/certs.sh"
requires nbdkit nbdinfo nbdsh certtool

make_ca ca
make_cert ca server server localhost 127.0.0.1
make_cert ca alice client alice
new_volume vol 16M

# serve_phase NBDKIT-OPTIONS...: (re)start the server "srv" on a new port
# with the log filter; $url is then its nbds:// URL.
serve_phase () {
  stop_server srv
  start_server srv tcp "$@" --tls-certificates="$tmp/server" --tls-verify-peer \
    --filter=log "$PLUGIN" vol keyfile=vol.kek logfile="$tmp/srv.log"
  url="nbds://127.0.0.1:$PORT/"
}
# nbd_do URI PYTHON: run PYTHON in nbdsh with h connected to URI.
nbd_do () {
  URL=$1 nbdsh -c 'import os; h.set_uri_allow_local_file(True); h.connect_uri(os.environ["URL"])' -c "$2"
}
A='b"A" * 4096' B='b"B" * 4096' C='b"C" * 4096'

# --- (1) plaintext and TLS both served --------------------------------------
serve_phase --tls=on
nbd_do "nbd://127.0.0.1:$PORT/" "h.pwrite($A, 0); h.flush()"
nbd_do "$url?tls-certificates=$tmp/alice" "h.pwrite($B, 4096); h.flush(); assert h.pread(4096, 0) == $A"
grep -q ' Connect .* tls=0 ' srv.log || fail "--tls=on: the plaintext client was not served"
grep -q ' Connect .* tls=1 ' srv.log || fail "--tls=on: the TLS client was not served"
pass "phase 1 (--tls=on): plaintext and TLS clients both read and write; the log shows tls=0/tls=1"

# --- (2) plaintext clients get a notice only --------------------------------
sum=$(sha256sum <vol)
: >srv.log
stop_server srv
start_server srv tcp --tls=on --tls-certificates="$tmp/server" --tls-verify-peer \
  --filter=tls-fallback --filter=log "$PLUGIN" vol keyfile=vol.kek \
  tlsreadme="cryptvol: connect with TLS, see doc/tls.md" logfile="$tmp/srv.log"
url="nbds://127.0.0.1:$PORT/"
[ "$(nbdinfo --size "nbd://127.0.0.1:$PORT/")" = 512 ] || fail "tls-fallback: plaintext client does not see the 512-byte notice"
nbd_do "nbd://127.0.0.1:$PORT/" '
assert h.is_read_only()
assert h.pread(512, 0).startswith(b"cryptvol: connect with TLS")
try:
    h.pwrite(b"x" * 512, 0); raise SystemExit("plaintext write succeeded")
except nbd.Error:
    pass'
[ "$(sha256sum <vol)" = "$sum" ] || fail "tls-fallback: a plaintext client changed the volume"
nbd_do "$url?tls-certificates=$tmp/alice" "assert h.get_size() == 16 << 20; assert h.pread(8192, 0) == $A + $B"
pass "phase 2 (tls-fallback): plaintext clients get a read-only notice, TLS clients the volume"

# --- (3) TLS required ------------------------------------------------------
serve_phase --tls=require
refused_unserved srv.log vol "phase 3 (--tls=require): plaintext" "requires TLS|opt_go request: Operation not supported" \
  nbdinfo "nbd://127.0.0.1:$PORT/"
nbd_do "$url?tls-certificates=$tmp/alice" "h.pwrite($C, 8192); h.flush(); assert h.pread(8192, 0) == $A + $B"

# --- rotation: renewed server certificate, same CA --------------------------
old_fp=$(certtool -i --infile server/server-cert.pem | grep -A1 'Fingerprint:' | tail -n 1)
rm server/server-*.pem
make_cert ca server server localhost 127.0.0.1
new_fp=$(certtool -i --infile server/server-cert.pem | grep -A1 'Fingerprint:' | tail -n 1)
[ "$old_fp" != "$new_fp" ] || fail "the renewed server certificate is the old one"
serve_phase --tls=require
nbd_do "$url?tls-certificates=$tmp/alice" "assert h.pread(12288, 0) == $A + $B + $C"
pass "renewed server certificate (new key, same CA): clients reconnect unchanged"

# --- rotation: new CA ------------------------------------------------------
# 1. Clients and server trust both CAs (a bundle); new certificates are
#    issued by the new CA; the server restarts with its new certificate.
make_ca newca
cat ca/ca-cert.pem newca/ca-cert.pem >bundle.pem
cp -r alice alice-old-trust                    # a client that missed step 1
cp bundle.pem alice/ca-cert.pem
make_cert newca bob client bob
cp bundle.pem bob/ca-cert.pem
make_cert newca server server localhost 127.0.0.1
cp bundle.pem server/ca-cert.pem
serve_phase --tls=require
nbd_do "$url?tls-certificates=$tmp/alice" "assert h.pread(4096, 8192) == $C"
nbd_do "$url?tls-certificates=$tmp/bob" "assert h.pread(4096, 8192) == $C"
refused_unserved srv.log vol "new CA: a client without the new CA" "certificate verification|issuer" \
  nbdinfo "$url?tls-certificates=$tmp/alice-old-trust"
pass "new CA, step 1: old (alice) and new (bob) client certificates both accepted"
# 2. The old CA is withdrawn: its client certificates are refused.
cp newca/ca-cert.pem server/ca-cert.pem
serve_phase --tls=require
refused_unserved srv.log vol "new CA, step 2: a certificate of the withdrawn CA" "pull function|terminated|certificate" \
  nbdinfo "$url?tls-certificates=$tmp/alice"
nbd_do "$url?tls-certificates=$tmp/bob" "assert h.pread(12288, 0) == $A + $B + $C"
grep -q 'Error in the certificate' srv.err || fail "nbdkit did not log the rejected certificate"
pass "new CA, step 2: the old CA's client certificates refused, the new ones served"

# --- revoking one client certificate (ca-crl.pem) --------------------------
make_cert newca carol client carol
cp bundle.pem carol/ca-cert.pem
printf 'crl_next_update = 2\ncrl_number = 1\n' >crl.info
certtool --generate-crl --load-ca-privkey newca/ca-key.pem --load-ca-certificate newca/ca-cert.pem \
  --load-certificate bob/client-cert.pem --template crl.info --outfile server/ca-crl.pem 2>/dev/null
serve_phase --tls=require
refused_unserved srv.log vol "a revoked client certificate" "pull function|terminated|certificate" \
  nbdinfo "$url?tls-certificates=$tmp/bob"
nbd_do "$url?tls-certificates=$tmp/carol" "assert h.pread(12288, 0) == $A + $B + $C"
pass "a client certificate listed in ca-crl.pem is refused; others are served"
stop_server srv
