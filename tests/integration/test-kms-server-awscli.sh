#!/bin/bash
# Fidelity of the local test KMS (tests/kms/kms-server.py), checked with the
# real AWS CLI (Debian package awscli, /usr/bin/aws) pointed at it with
# --endpoint-url: key life cycle, encrypt/decrypt with encryption context,
# state errors, rotation, data keys, ReEncrypt, multi-Region replicas through
# a per-region endpoint, authentication errors, access denial, retries on
# injected faults (seen in /_admin/calls), and persistence across a restart.
#
# Debian's awscli 2.9.x predates RotateKeyOnDemand (2024); when its KMS model
# lacks the operation, the model is copied and the operation added (input and
# output {KeyId}, as in AWS's model) and the CLI loads it through AWS_DATA_PATH.
set -u
srcdir=${CV_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
AWS=/usr/bin/aws
PY=/usr/bin/python3

[ -x "$AWS" ] || { echo "SKIP: /usr/bin/aws is not installed (Debian package awscli)"; exit 77; }
for tool in "$PY" openssl curl base64 cmp; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  aws_cli_stop
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# The CLI's imports once, not at each of the ~70 calls (tests/kms/aws-cli-lib.sh).
source "$srcdir/tests/kms/aws-cli-lib.sh"
aws_cli_start "$tmp"

pass=0 fail=0
ok()  { echo "PASS: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; shift; for l in "$@"; do echo "    $l"; done; fail=$((fail + 1)); }
check() {  # NAME COMMAND... : passes if the command succeeds
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}

"$srcdir/tests/kms/make-test-ca.sh" "$tmp/ca" || { echo "FAIL: make-test-ca.sh"; exit 1; }
mkdir -p "$tmp/state"

account=111122223333
akid=AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n')
token=$(head -c 24 /dev/urandom | base64 | tr -d '\n')
akid_tok=${akid}T
akid_ro=${akid}R
cat >"$tmp/state/config.json" <<EOF
{"account_id": "$account", "regions": ["us-east-1", "us-west-2"],
 "credentials": [
   {"access_key_id": "$akid", "secret_access_key": "$secret"},
   {"access_key_id": "$akid_tok", "secret_access_key": "$secret", "session_token": "$token"},
   {"access_key_id": "$akid_ro", "secret_access_key": "$secret", "user": "readonly",
    "allow": [{"actions": ["kms:DescribeKey"], "keys": ["*"]}]}
 ]}
EOF

start_server() {
  rm -f "$tmp/port" "$tmp/port-west"
  "$PY" "$srcdir/tests/kms/kms-server.py" --state-dir "$tmp/state" \
    --cert "$tmp/ca/server.pem" --key "$tmp/ca/server.key" \
    --port-file "$tmp/port" --region-listener "us-west-2=$tmp/port-west" \
    >>"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    [ -s "$tmp/port" ] && [ -s "$tmp/port-west" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if ! [ -s "$tmp/port" ] || ! [ -s "$tmp/port-west" ]; then
    echo "FAIL: the test KMS did not start"; cat "$tmp/server.log"; exit 1
  fi
  EP=https://127.0.0.1:$(cat "$tmp/port")
  EP_WEST=https://127.0.0.1:$(cat "$tmp/port-west")
}
stop_server() {
  kill -TERM "$pid" && wait "$pid"
  local rc=$?
  pid=
  return $rc
}
start_server

export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION AWS_ENDPOINT_URL
export AWS_CA_BUNDLE=$tmp/ca/ca.pem AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=3
export AWS_PAGER='' AWS_DEFAULT_OUTPUT=json

kms()      { "$AWS" --endpoint-url "$EP" kms "$@"; }
kms_west() { "$AWS" --endpoint-url "$EP_WEST" --region us-west-2 kms "$@"; }
admin()    { curl -sS --fail --cacert "$tmp/ca/ca.pem" "$@"; }
q()        { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

expect_error() {  # NAME ERROR_TYPE COMMAND... : the command fails with that AWS error
  local name=$1 etype=$2; shift 2
  local out
  if out=$("$@" 2>&1); then
    bad "$name" "succeeded, expected $etype" "$out"
  elif grep -q "An error occurred ($etype)" <<<"$out"; then
    ok "$name"
  else
    bad "$name" "expected $etype" "$out"
  fi
}

ctx1='{"cryptvol:volume":"0b4e6c8e-6f5e-4f0c-9a1e-1f2a3b4c5d6e"}'
ctx2='{"cryptvol:volume":"7d9f0a12-3344-4c55-8e66-778899aabbcc"}'
head -c 64 /dev/urandom >"$tmp/dek"

encrypt_to() {  # OUT KEY CONTEXT [kms|kms_west]
  local fn=${4:-kms}
  $fn encrypt --key-id "$2" --plaintext "fileb://$tmp/dek" --encryption-context "$3" \
    --query CiphertextBlob --output text | base64 -d >"$1" && [ -s "$1" ]
}
decrypts_to_dek() {  # BLOB CONTEXT [KEY] [kms|kms_west]
  local fn=${4:-kms} args=()
  [ -n "${3:-}" ] && args=(--key-id "$3")
  $fn decrypt --ciphertext-blob "fileb://$1" --encryption-context "$2" "${args[@]}" \
    --query Plaintext --output text | base64 -d >"$tmp/out" && cmp -s "$tmp/out" "$tmp/dek"
}

# --- create-key, describe-key
if out=$(kms create-key --description "cryptvol test key 1" 2>&1) &&
   key1=$(q 'd["KeyMetadata"]["KeyId"]' <<<"$out") &&
   arn1=$(q 'd["KeyMetadata"]["Arn"]' <<<"$out") &&
   [[ $key1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] &&
   [ "$arn1" = "arn:aws:kms:us-east-1:$account:key/$key1" ]; then
  ok "create-key returns a UUID key id and its ARN"
else
  bad "create-key" "$out"; key1=none arn1=none
fi
out=$(kms describe-key --key-id "$arn1" 2>&1)
if [ "$(q '(d["KeyMetadata"]["KeyState"], d["KeyMetadata"]["Enabled"], d["KeyMetadata"]["KeyUsage"], d["KeyMetadata"]["MultiRegion"])' <<<"$out" 2>/dev/null)" = "('Enabled', True, 'ENCRYPT_DECRYPT', False)" ]; then
  ok "describe-key by ARN: Enabled, ENCRYPT_DECRYPT, not multi-Region"
else
  bad "describe-key by ARN" "$out"
fi
alias_works() {
  kms create-alias --alias-name alias/cryptvol-test --target-key-id "$key1" &&
  [ "$(kms describe-key --key-id alias/cryptvol-test --query KeyMetadata.KeyId --output text)" = "$key1" ] &&
  [ "$(kms describe-key --key-id "arn:aws:kms:us-east-1:$account:alias/cryptvol-test" \
        --query KeyMetadata.KeyId --output text)" = "$key1" ]
}
check "create-alias; describe-key by alias name and alias ARN" alias_works
expect_error "describe-key of an unknown key: NotFoundException" NotFoundException \
  kms describe-key --key-id "arn:aws:kms:us-east-1:$account:key/00000000-0000-4000-8000-000000000000"

# --- encrypt + decrypt with an encryption context
if encrypt_to "$tmp/blob1" "$key1" "$ctx1" && decrypts_to_dek "$tmp/blob1" "$ctx1" "$arn1"; then
  ok "encrypt + decrypt with --encryption-context: round trip equal"
else
  bad "encrypt + decrypt round trip"
fi
by_alias_and_no_key() {
  decrypts_to_dek "$tmp/blob1" "$ctx1" alias/cryptvol-test && decrypts_to_dek "$tmp/blob1" "$ctx1"
}
check "decrypt naming the alias, and without --key-id" by_alias_and_no_key
expect_error "decrypt with a different context: InvalidCiphertextException" \
  InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$tmp/blob1" \
  --encryption-context "$ctx2" --key-id "$arn1"
expect_error "decrypt with no context: InvalidCiphertextException" \
  InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$tmp/blob1" --key-id "$arn1"
"$PY" -c 'import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[len(b)//2]^=1; open(sys.argv[2],"wb").write(b)' \
  "$tmp/blob1" "$tmp/blob1.bad"
expect_error "decrypt of a tampered blob: InvalidCiphertextException" \
  InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$tmp/blob1.bad" \
  --encryption-context "$ctx1"
# Two pairs (cryptvol's context for a wrap): every pair must match, in any
# order; one pair fewer or one more is a different context.
ctx2p='{"cryptvol:volume":"0b4e6c8e-6f5e-4f0c-9a1e-1f2a3b4c5d6e","cryptvol:wrap":"v1:00112233445566778899aabbccddeeff"}'
ctx2p_swapped='{"cryptvol:wrap":"v1:00112233445566778899aabbccddeeff","cryptvol:volume":"0b4e6c8e-6f5e-4f0c-9a1e-1f2a3b4c5d6e"}'
two_pairs_any_order() {
  encrypt_to "$tmp/blob2p" "$key1" "$ctx2p" && decrypts_to_dek "$tmp/blob2p" "$ctx2p_swapped" "$arn1"
}
check "encrypt with a two-pair context; decrypt with its pairs in the other order" two_pairs_any_order
expect_error "two-pair blob, decrypt with the first pair alone: InvalidCiphertextException" \
  InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$tmp/blob2p" \
  --encryption-context "$ctx1" --key-id "$arn1"
expect_error "two-pair blob, decrypt with the second value changed: InvalidCiphertextException" \
  InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$tmp/blob2p" \
  --encryption-context "${ctx2p/v1:0011/v1:0012}" --key-id "$arn1"
expect_error "one-pair blob, decrypt with a pair added: InvalidCiphertextException" \
  InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$tmp/blob1" \
  --encryption-context "$ctx2p" --key-id "$arn1"
head -c 4097 /dev/zero >"$tmp/big"
expect_error "encrypt of 4097 bytes: ValidationException" ValidationException \
  kms encrypt --key-id "$key1" --plaintext "fileb://$tmp/big"

# --- a second key; IncorrectKeyException
key2=$(kms create-key --description "cryptvol test key 2" --query KeyMetadata.KeyId --output text)
arn2=arn:aws:kms:us-east-1:$account:key/$key2
expect_error "decrypt naming another key: IncorrectKeyException" IncorrectKeyException \
  kms decrypt --ciphertext-blob "fileb://$tmp/blob1" --encryption-context "$ctx1" --key-id "$key2"

# --- disable / enable
check "disable-key" kms disable-key --key-id "$key1"
if [ "$(kms describe-key --key-id "$key1" --query 'KeyMetadata.[KeyState,Enabled]' --output text)" = "Disabled	False" ]; then ok "describe-key after disable: Disabled, Enabled false"; else bad "describe-key after disable"; fi
expect_error "encrypt with a disabled key: DisabledException" DisabledException \
  kms encrypt --key-id "$key1" --plaintext "fileb://$tmp/dek"
expect_error "decrypt with a disabled key: DisabledException" DisabledException \
  kms decrypt --ciphertext-blob "fileb://$tmp/blob1" --encryption-context "$ctx1" --key-id "$key1"
enable_and_decrypt() {
  kms enable-key --key-id "$key1" && decrypts_to_dek "$tmp/blob1" "$ctx1" "$key1"
}
check "enable-key, then decrypt works again" enable_and_decrypt

# --- schedule deletion / cancel
expect_error "schedule-key-deletion with 6 days: ValidationException" ValidationException \
  kms schedule-key-deletion --key-id "$key1" --pending-window-in-days 6
out=$(kms schedule-key-deletion --key-id "$key1" --pending-window-in-days 7 2>&1)
if [ "$(q 'd["KeyState"]' <<<"$out" 2>/dev/null)" = PendingDeletion ] &&
   [ "$(kms describe-key --key-id "$key1" --query 'KeyMetadata.[KeyState,Enabled]' --output text)" = "PendingDeletion	False" ] &&
   kms describe-key --key-id "$key1" --query KeyMetadata.DeletionDate --output text | grep -q '^20'; then
  ok "schedule-key-deletion 7 days: PendingDeletion with a DeletionDate"
else
  bad "schedule-key-deletion" "$out"
fi
expect_error "encrypt with a key pending deletion: KMSInvalidStateException" \
  KMSInvalidStateException kms encrypt --key-id "$key1" --plaintext "fileb://$tmp/dek"
expect_error "decrypt with a key pending deletion: KMSInvalidStateException" \
  KMSInvalidStateException kms decrypt --ciphertext-blob "fileb://$tmp/blob1" \
  --encryption-context "$ctx1" --key-id "$key1"
expect_error "enable-key while pending deletion: KMSInvalidStateException" \
  KMSInvalidStateException kms enable-key --key-id "$key1"
if kms cancel-key-deletion --key-id "$key1" >/dev/null &&
   [ "$(kms describe-key --key-id "$key1" --query KeyMetadata.KeyState --output text)" = Disabled ] &&
   kms enable-key --key-id "$key1" && decrypts_to_dek "$tmp/blob1" "$ctx1" "$key1"; then
  ok "cancel-key-deletion leaves the key Disabled; enable-key; decrypt works"
else
  bad "cancel-key-deletion"
fi

# --- rotation
model=$("$PY" -c 'import awscli.botocore, os; print(os.path.dirname(awscli.botocore.__file__))' 2>/dev/null)/data/kms/2014-11-01/service-2.json
rotate() { "$AWS" --endpoint-url "$EP" kms rotate-key-on-demand "$@"; }
if [ -f "$model" ] && ! grep -q RotateKeyOnDemand "$model"; then
  mkdir -p "$tmp/models/kms/2014-11-01"
  "$PY" - "$model" "$tmp/models/kms/2014-11-01/service-2.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["operations"]["RotateKeyOnDemand"] = {
    "name": "RotateKeyOnDemand", "http": {"method": "POST", "requestUri": "/"},
    "input": {"shape": "RotateKeyOnDemandRequest"},
    "output": {"shape": "RotateKeyOnDemandResponse"}, "errors": []}
m["shapes"]["RotateKeyOnDemandRequest"] = {
    "type": "structure", "required": ["KeyId"], "members": {"KeyId": {"shape": "KeyIdType"}}}
m["shapes"]["RotateKeyOnDemandResponse"] = {
    "type": "structure", "members": {"KeyId": {"shape": "KeyIdType"}}}
json.dump(m, open(sys.argv[2], "w"))
EOF
  rotate() { AWS_DATA_PATH=$tmp/models "$AWS" --endpoint-url "$EP" kms rotate-key-on-demand "$@"; }
fi
versions() { admin "$EP/_admin/keys" | q "d['keys']['us-east-1']['$1']['Versions']"; }
if [ "$(rotate --key-id "$key1" --query KeyId --output text 2>&1)" = "$arn1" ] &&
   [ "$(versions "$key1")" = 2 ]; then
  ok "rotate-key-on-demand: a new backing key version"
else
  bad "rotate-key-on-demand"
fi
if decrypts_to_dek "$tmp/blob1" "$ctx1" "$key1" && encrypt_to "$tmp/blob1r" "$key1" "$ctx1" &&
   ! cmp -s "$tmp/blob1" "$tmp/blob1r" && decrypts_to_dek "$tmp/blob1r" "$ctx1" "$key1"; then
  ok "after rotation the old ciphertext still decrypts (and new ones too)"
else
  bad "decrypt after rotation"
fi

# --- generate-data-key
out=$(kms generate-data-key --key-id "$key1" --number-of-bytes 64 --encryption-context "$ctx1" 2>&1)
if q 'd["Plaintext"]' <<<"$out" | base64 -d >"$tmp/dek" && [ "$(stat -c %s "$tmp/dek")" = 64 ] &&
   q 'd["CiphertextBlob"]' <<<"$out" | base64 -d >"$tmp/blob-gdk" &&
   [ "$(q 'd["KeyId"]' <<<"$out")" = "$arn1" ] && decrypts_to_dek "$tmp/blob-gdk" "$ctx1" "$key1"; then
  ok "generate-data-key --number-of-bytes 64: 64 bytes, and its blob decrypts to them"
else
  bad "generate-data-key" "$out"
fi
out=$(kms generate-data-key-without-plaintext --key-id "$key1" --key-spec AES_256 \
  --encryption-context "$ctx1" --query CiphertextBlob --output text 2>&1)
if base64 -d <<<"$out" >"$tmp/blob-gdkw" &&
   [ "$(kms decrypt --ciphertext-blob "fileb://$tmp/blob-gdkw" --encryption-context "$ctx1" \
        --query Plaintext --output text | base64 -d | wc -c)" = 32 ]; then
  ok "generate-data-key-without-plaintext AES_256: a 32-byte key"
else
  bad "generate-data-key-without-plaintext" "$out"
fi

# --- re-encrypt to the second key
out=$(kms re-encrypt --ciphertext-blob "fileb://$tmp/blob-gdk" --source-encryption-context "$ctx1" \
  --source-key-id "$key1" --destination-key-id "$key2" --destination-encryption-context "$ctx2" 2>&1)
if q 'd["CiphertextBlob"]' <<<"$out" | base64 -d >"$tmp/blob2" &&
   [ "$(q '(d["SourceKeyId"], d["KeyId"])' <<<"$out")" = "('$arn1', '$arn2')" ] &&
   kms disable-key --key-id "$key1" && decrypts_to_dek "$tmp/blob2" "$ctx2" "$key2"; then
  ok "re-encrypt to a second key: opens with it while the first key is disabled"
else
  bad "re-encrypt" "$out"
fi
expect_error "the re-encrypted blob under the old key id: IncorrectKeyException" \
  IncorrectKeyException kms decrypt --ciphertext-blob "fileb://$tmp/blob2" \
  --encryption-context "$ctx2" --key-id "$key1"
kms enable-key --key-id "$key1"

# --- multi-Region key, replica in us-west-2 served on its own endpoint
out=$(kms create-key --multi-region --description "cryptvol mrk" 2>&1)
mrk=$(q 'd["KeyMetadata"]["KeyId"]' <<<"$out" 2>/dev/null)
if [[ $mrk =~ ^mrk-[0-9a-f]{32}$ ]] &&
   [ "$(q 'd["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"]' <<<"$out")" = PRIMARY ]; then
  ok "create-key --multi-region: an mrk- key, PRIMARY"
else
  bad "create-key --multi-region" "$out"; mrk="mrk-none"
fi
encrypt_to "$tmp/blob-mrk" "$mrk" "$ctx1" || bad "encrypt with the multi-Region key"
expect_error "the mrk is not in us-west-2 before replication: NotFoundException" \
  NotFoundException kms_west describe-key --key-id "$mrk"
out=$(kms replicate-key --key-id "$mrk" --replica-region us-west-2 2>&1)
west_arn=arn:aws:kms:us-west-2:$account:key/$mrk
if [ "$(q 'd["ReplicaKeyMetadata"]["Arn"]' <<<"$out" 2>/dev/null)" = "$west_arn" ] &&
   [ "$(kms_west describe-key --key-id "$west_arn" --query 'KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType' --output text)" = REPLICA ]; then
  ok "replicate-key to us-west-2: a REPLICA with the same key id"
else
  bad "replicate-key" "$out"
fi
if decrypts_to_dek "$tmp/blob-mrk" "$ctx1" "$west_arn" kms_west; then
  ok "a blob wrapped in us-east-1 decrypts through the us-west-2 replica's endpoint"
else
  bad "decrypt through the replica"
fi
expect_error "the replica with another context: InvalidCiphertextException" \
  InvalidCiphertextException kms_west decrypt --ciphertext-blob "fileb://$tmp/blob-mrk" \
  --encryption-context "$ctx2" --key-id "$west_arn"
expect_error "us-east-1 credentials at the us-west-2 endpoint: InvalidSignatureException" \
  InvalidSignatureException "$AWS" --endpoint-url "$EP_WEST" --region us-east-1 kms describe-key \
  --key-id "$mrk"
expect_error "a single-Region key through us-west-2: NotFoundException" NotFoundException \
  kms_west decrypt --ciphertext-blob "fileb://$tmp/blob1" --encryption-context "$ctx1"

# --- authentication and access
expect_error "wrong secret: InvalidSignatureException" InvalidSignatureException \
  env AWS_SECRET_ACCESS_KEY="${secret}x" "$AWS" --endpoint-url "$EP" kms describe-key --key-id "$key1"
expect_error "unknown access key: UnrecognizedClientException" UnrecognizedClientException \
  env AWS_ACCESS_KEY_ID=AKIAUNKNOWN000000000 "$AWS" --endpoint-url "$EP" kms describe-key --key-id "$key1"
check "session credentials with the right session token" \
  env AWS_ACCESS_KEY_ID="$akid_tok" AWS_SESSION_TOKEN="$token" "$AWS" --endpoint-url "$EP" \
  kms describe-key --key-id "$key1"
expect_error "a wrong session token: UnrecognizedClientException" UnrecognizedClientException \
  env AWS_ACCESS_KEY_ID="$akid_tok" AWS_SESSION_TOKEN="${token}x" "$AWS" --endpoint-url "$EP" \
  kms describe-key --key-id "$key1"
check "a describe-only credential may describe-key" \
  env AWS_ACCESS_KEY_ID="$akid_ro" "$AWS" --endpoint-url "$EP" kms describe-key --key-id "$key1"
admin -X DELETE "$EP/_admin/calls" >/dev/null
expect_error "a describe-only credential may not decrypt: AccessDeniedException" \
  AccessDeniedException env AWS_ACCESS_KEY_ID="$akid_ro" "$AWS" --endpoint-url "$EP" \
  kms decrypt --ciphertext-blob "fileb://$tmp/blob1" --encryption-context "$ctx1"
n=$(admin "$EP/_admin/calls" | q 'len(d["calls"])')
if [ "$n" = 1 ]; then ok "AccessDeniedException is not retried (1 call)"; else bad "AccessDenied calls: $n"; fi

# --- fault injection and the CLI's retries
calls_summary() {  # -> "op:result op:result ..." of the logged calls
  admin "$EP/_admin/calls" | q '" ".join(c["op"] + ":" + c["result"] for c in d["calls"])'
}
retry_check() {  # NAME FAULT_JSON EXPECTED_SUMMARY
  admin -X DELETE "$EP/_admin/calls" >/dev/null
  admin -X POST -d "$2" "$EP/_admin/fault" >/dev/null
  local out sum
  out=$(kms describe-key --key-id "$key1" --query KeyMetadata.KeyState --output text 2>&1)
  sum=$(calls_summary)
  if [ "$out" = Enabled ] && [ "$sum" = "$3" ]; then ok "$1"; else bad "$1" "$out" "calls: $sum"; fi
}
retry_check "throttled twice, then the CLI's third attempt succeeds" '{"throttle": 2}' \
  "DescribeKey:ThrottlingException DescribeKey:ThrottlingException DescribeKey:ok"
ids=$(admin "$EP/_admin/calls" | q 'len(set(c["request_id"] for c in d["calls"]))')
if [ "$ids" = 3 ]; then ok "each attempt has its own x-amzn-RequestId"; else bad "request ids: $ids"; fi
retry_check "one 500 (KMSInternalException), then success" '{"error500": 1}' \
  "DescribeKey:KMSInternalException DescribeKey:ok"
retry_check "a dropped connection, then success" '{"drop": 1}' "DescribeKey:dropped DescribeKey:ok"
admin -X DELETE "$EP/_admin/calls" >/dev/null
admin -X POST -d '{"error500": 5}' "$EP/_admin/fault" >/dev/null
expect_error "permanent 500s: the CLI gives up with KMSInternalException" KMSInternalException \
  kms describe-key --key-id "$key1"
n=$(admin "$EP/_admin/calls" | q 'len(d["calls"])')
if [ "$n" = 3 ]; then ok "permanent 500s: exactly 3 attempts"; else bad "attempts on permanent 500s: $n"; fi
admin -X POST -d '{"clear": true}' "$EP/_admin/fault" >/dev/null
admin -X DELETE "$EP/_admin/calls" >/dev/null
admin -X POST -d '{"delay_ms": 300, "count": 1}' "$EP/_admin/fault" >/dev/null
kms describe-key --key-id "$key1" >/dev/null
kms describe-key --key-id "$key1" >/dev/null
ms=$(admin "$EP/_admin/calls" | q '" ".join(str(c["ms"]) for c in d["calls"])')
read -r ms1 ms2 <<<"$ms"
if [ "${ms1:-0}" -ge 300 ] && [ "${ms2:-999}" -lt 300 ]; then
  ok "delay_ms 300 count 1 delays one call (${ms1} ms, then ${ms2} ms)"
else
  bad "delay_ms" "call times (ms): $ms"
fi

# --- persistence and clean shutdown
if stop_server; then ok "SIGTERM: the server exits 0"; else bad "SIGTERM exit status"; fi
start_server
if decrypts_to_dek "$tmp/blob-gdk" "$ctx1" "$key1" && decrypts_to_dek "$tmp/blob2" "$ctx2" "$key2" &&
   decrypts_to_dek "$tmp/blob-mrk" "$ctx1" "$west_arn" kms_west; then
  ok "after a restart: keys, rotation versions and the replica are kept"
else
  bad "after a restart"
fi

# --- deletion completes (admin call: the 7-day wait, skipped)
kms schedule-key-deletion --key-id "$key2" --pending-window-in-days 7 >/dev/null
admin -X POST -d "{\"KeyId\": \"$key2\"}" "$EP/_admin/delete-key" >/dev/null
expect_error "decrypt after the key is deleted: NotFoundException" NotFoundException \
  kms decrypt --ciphertext-blob "fileb://$tmp/blob2" --encryption-context "$ctx2"

if grep -q -e "$secret" -e "$token" "$tmp/server.log"; then
  bad "the server log holds a secret"
else
  ok "the server log holds no secret"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
