#!/bin/bash
# The local test KMS (tests/kms/kms-server.py) verifies SigV4 as AWS does:
# tests/kms/sigv4_test.py rebuilds the canonical request, string to sign and
# signature of the KMS vectors in tests/kms/vectors (and of the POST cases of
# AWS's suites in ../shared/vectors/sigv4 when present), then sends the signed
# requests to two servers started here: one with the clock-skew check off
# (they must be accepted) and one with it on (they must be "Signature expired").
set -u
srcdir=${CV_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=/usr/bin/python3

for tool in "$py" openssl; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$srcdir/tests/kms/make-test-ca.sh" "$tmp/ca" || { echo "FAIL: make-test-ca.sh"; exit 1; }
mkdir -p "$tmp/noskew" "$tmp/skew"
cat >"$tmp/config.json" <<'EOF'
{"account_id": "111122223333", "regions": ["us-east-1"],
 "credentials": [{"access_key_id": "AKIDEXAMPLE",
                  "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}]}
EOF

start() {  # NAME [OPTIONS...]
  local name=$1; shift
  "$py" "$srcdir/tests/kms/kms-server.py" --state-dir "$tmp/$name" \
    --config "$tmp/config.json" --cert "$tmp/ca/server.pem" --key "$tmp/ca/server.key" \
    --port-file "$tmp/$name.port" --quiet "$@" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
}
start noskew --no-clock-skew-check
start skew

for name in noskew skew; do
  for _ in $(seq 1 200); do
    [ -s "$tmp/$name.port" ] && break
    sleep 0.05
  done
  if [ ! -s "$tmp/$name.port" ]; then
    echo "FAIL: the $name server did not start"; cat "$tmp/$name.log"; exit 1
  fi
done

shared=$srcdir/../shared/vectors/sigv4
[ -d "$shared" ] || shared=

KMS_CA=$tmp/ca/ca.pem KMS_CONFIG=$tmp/config.json \
KMS_PORT_NOSKEW=$(cat "$tmp/noskew.port") KMS_PORT_SKEW=$(cat "$tmp/skew.port") \
SIGV4_SHARED=$shared \
  "$py" "$srcdir/tests/kms/sigv4_test.py" 2>&1
rc=$?
if [ $rc -eq 0 ]; then echo "PASS: SigV4 verification of the test KMS"; else
  echo "FAIL: SigV4 verification of the test KMS (exit $rc)"; exit 1; fi
