#!/bin/bash
# Make a throw-away test CA and a server certificate for the local test KMS
# (tests/kms/kms-server.py). Usage: tests/kms/make-test-ca.sh DIR
# Writes into DIR: ca.pem (the CA certificate: point AWS_CA_BUNDLE or the
# client's CA-bundle option at it), server.pem + server.key (for the server;
# subjectAltName IP:127.0.0.1, DNS:localhost). The CA key is deleted once the
# server certificate is signed, so nothing else can be issued from this CA.
# Nothing made here is committed; each test makes its own in a temp dir.
set -euo pipefail

dir=${1:?usage: make-test-ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout ca.key -out ca.pem -days 2 -subj "/CN=cryptvol test KMS CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null

cat >server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF

openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 2 -extfile server.ext 2>/dev/null

rm -f ca.key ca.srl server.csr server.ext
chmod 644 ca.pem server.pem
openssl verify -CAfile ca.pem server.pem >/dev/null
