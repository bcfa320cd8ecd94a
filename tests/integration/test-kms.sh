#!/bin/bash
# AWS KMS wraps end to end, through the real nbdkit and cryptvol-keymgr,
# against the local test KMS (tests/kms/kms-server.py: SigV4-verifying, key
# states and errors as AWS, fault injection, per-region endpoints):
# GenerateDataKey at create, Encrypt for a second wrap, unlock with Decrypt
# across restarts; disabled and pending-deletion keys refused with a clear
# message; throttling and dropped connections retried (visible in nbdkit -v
# and the server's call log); permanent 500s give up after 3 attempts in
# bounded time; timeouts; wrong credentials and access denied not retried;
# a wrap copied from another volume refused (InvalidCiphertext); rotation;
# multi-Region unlock through a replica's endpoint; ReEncrypt to another key
# (keymgr rewrap: the DEK never leaves KMS; the audit log names the KMS
# request ids) after which the old key can be disabled; info --check; TLS always verified; and a blob wrapped by
# cryptvol decrypts with the real AWS CLI given the same context.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/aws-lib.sh"
requires nbdkit nbdsh nbdinfo curl jq openssl
TAMPER=$CV_BUILD/tools/cv-tamper
AWS=/usr/bin/aws

# --- the local KMS ---------------------------------------------------------
account=111122223333
akid=AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+')
akid_ro=${akid}R
mkdir -p state
cat >state/config.json <<EOF
{"account_id": "$account", "regions": ["us-east-1", "us-west-2"],
 "credentials": [
   {"access_key_id": "$akid", "secret_access_key": "$secret"},
   {"access_key_id": "$akid_ro", "secret_access_key": "$secret", "user": "auditor",
    "allow": [{"actions": ["kms:DescribeKey"], "keys": ["*"]}]}
 ]}
EOF

local_aws_start state --region-listener "us-west-2=$tmp/port-west"
EP_WEST=https://127.0.0.1:$(cat port-west)

# The environment of everything below: credentials only from here.
local_aws_env
export AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null

# KMS calls for the test's own set-up, signed by curl (secret in a file).
local_aws_signer "$akid" "$secret"
calls () {  # "op:result ..." of the KMS calls logged since clear_calls
  admin "$EP/_admin/calls" | jq -r '[.calls[] | "\(.op):\(.result)"] | join(" ")'
}
new_key () {  # [--multi-region] -> key id
  local mr=false
  [ "${1:-}" = --multi-region ] && mr=true
  kms CreateKey "{\"Description\": \"cryptvol test\", \"MultiRegion\": $mr}" |
    jq -r .KeyMetadata.KeyId
}

key1=$(new_key) key2=$(new_key) mrk=$(new_key --multi-region)
arn1=arn:aws:kms:us-east-1:$account:key/$key1
arn2=arn:aws:kms:us-east-1:$account:key/$key2
mrk_arn=arn:aws:kms:us-east-1:$account:key/$mrk
kms ReplicateKey "{\"KeyId\": \"$mrk\", \"ReplicaRegion\": \"us-west-2\"}" >/dev/null
kms CreateAlias "{\"AliasName\": \"alias/cryptvol-test\", \"TargetKeyId\": \"$key1\"}" >/dev/null
[[ $mrk == mrk-* ]] || fail "no multi-Region key: $mrk"

KM=(--kms-endpoint "$EP" --ca-bundle "$CA")      # keymgr
# key-check=0: a key-watch check at a random point of its first minute
# would add a Decrypt to the calls counted here.
KP=(kms-endpoint="$EP" ca-bundle="$CA" key-check=0)  # plugin
DATA='b"KMS-DATA-MARKER!" * 256'

# refuses WHAT PATTERN [env...] -- PLUGIN-PARAMS...: nbdkit must not serve.
refuses () {
  local what=$1 pattern=$2 envs=()
  shift 2
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  rm -f ran
  expect_fail "$what" "$pattern" env "${envs[@]}" nbdkit -U - "$PLUGIN" "$@" --run 'touch ran'
  cat "$tmp/err" >>all.err
  [ ! -e ran ] || fail "$what: nbdkit served the volume"
}
opens () {  # VOLUME [params...]: nbdkit starts and the data reads back
  serve "$@" -- nbdsh -u '$uri' -c "assert h.pread(4096, 8192) == $DATA"
}
elapsed_ms () { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# --- create (GenerateDataKey), serve, write, restart, read back -----------
clear_calls
"$KEYMGR" create vol --size 16M --wrap "kms:$arn1" "${KM[@]}" >/dev/null
[ "$(calls)" = "GenerateDataKey:ok" ] || fail "create did not use one GenerateDataKey: $(calls)"
"$KEYMGR" info vol --json >info.json
uuid=$(jq -r .volume.uuid info.json)
digest=$("$PY" "$CV_SRCDIR/tests/kms/edit-wrap.py" --digest "$(jq -c '.wraps[0]' info.json)")
jq -e --arg arn "$arn1" --arg u "$uuid" --arg d "$digest" '.wraps | length == 1 and .[0].type == "kms"
  and .[0].ref == $arn and .[0].key_arn == $arn and .[0].region == "us-east-1"
  and .[0].ctx == {"cryptvol:volume": $u, "cryptvol:wrap": $d} and (.[0].blob | length > 40)
  and (.[0].created | test("Z$"))' info.json >/dev/null ||
  { cat info.json; fail "the kms wrap does not record ref, key_arn, region, ctx (with its metadata's digest $digest), blob, created"; }
pass "create --wrap kms:ARN: the DEK comes from GenerateDataKey; the wrap records ref, key_arn, region, ctx, blob"
serve vol "${KP[@]}" -- nbdsh -u '$uri' -c "h.pwrite($DATA, 8192)"
clear_calls
opens vol "${KP[@]}"
[ "$(calls)" = "Decrypt:ok" ] || fail "unlock calls: $(calls)"
! grep -q "KMS-DATA-MARKER" vol || fail "plaintext in the backing file"
pass "served, written, restarted, read back (one Decrypt per start)"

# An alias and a second wrap: Encrypt wraps the existing DEK.
"$KEYMGR" genkey vol2.kek >/dev/null
clear_calls
"$KEYMGR" create vol2 --size 16M --wrap file:vol2.kek --wrap kms:alias/cryptvol-test \
  --kms-region us-east-1 "${KM[@]}" >/dev/null
[ "$(calls)" = "Encrypt:ok" ] || fail "second wrap: $(calls)"
[ "$("$KEYMGR" info vol2 --json | jq -r '.wraps[1] | .ref + " " + .key_arn')" = "alias/cryptvol-test $arn1" ] ||
  fail "alias wrap does not record the alias and the key ARN"
serve vol2 keyfile=vol2.kek -- nbdsh -u '$uri' -c "h.pwrite($DATA, 8192)"
opens vol2 "${KP[@]}"
pass "kms:alias/NAME as a second wrap (Encrypt of the existing DEK) opens the volume alone"
kms UpdateAlias "{\"AliasName\": \"alias/cryptvol-test\", \"TargetKeyId\": \"$key2\"}" >/dev/null
opens vol2 "${KP[@]}"
pass "the alias pointed elsewhere later: the wrap still opens (unlock uses the stored key ARN)"

# --- which wraps unlock, and in what order ------------------------------------
# vol3: wrap 0 on a KMS key that is disabled, wrap 1 a key file.
"$KEYMGR" genkey vol3.kek >/dev/null
"$KEYMGR" create vol3 --size 16M --wrap "kms:$arn1" --wrap file:vol3.kek "${KM[@]}" >/dev/null
kms DisableKey "{\"KeyId\": \"$key1\"}" >/dev/null
noerrors () {  # WHAT FILE: nbdkit's stderr has no error or warning line
  if grep -v "debug: " "$2" | grep -Eiq "error|warning"; then
    cat "$2"; fail "$1: errors printed although the volume unlocked"
  fi
}
clear_calls
nbdkit -U - "$PLUGIN" vol3 keyfile=vol3.kek "${KP[@]}" --run 'nbdinfo --size "$uri"' >out 2>err ||
  { cat err; fail "vol3 with keyfile= did not serve"; }
[ -z "$(calls)" ] || fail "keyfile= given, yet KMS was called: $(calls)"
noerrors "keyfile= given" err
pass "AWS credentials in the environment and keyfile= given: the file wrap is tried first, KMS never called, nothing printed"
clear_calls
nbdkit -v -U - "$PLUGIN" vol3 wrap=kms wrap=file keyfile=vol3.kek "${KP[@]}" \
  --run 'nbdinfo --size "$uri"' >out 2>err || { cat err; fail "wrap=kms wrap=file did not serve"; }
[[ $(calls) == Decrypt:* ]] || fail "wrap=kms wrap=file: KMS not tried first: $(calls)"
grep -q "debug: .*wrap 0 (kms.*disabled" err || { cat err; fail "the KMS failure is not a debug message"; }
noerrors "wrap=kms wrap=file" err
pass "wrap=kms wrap=file: KMS tried first and refused (key disabled), reported as debug only; the file wrap unlocks"
refuses "wrap=kms alone" "cannot unlock volume [^ ]*vol3: no wrap could be unlocked: wrap 0 \(kms [^;]*disabled or pending deletion$" \
  -- vol3 wrap=kms keyfile=vol3.kek "${KP[@]}"
refuses "wrap=9" "vol3: none of its wraps is among those chosen" -- vol3 wrap=9 keyfile=vol3.kek
refuses "wrap=tpm" "wrap=tpm: not a wrap id or type" -- vol3 wrap=tpm keyfile=vol3.kek
expect_fail "keymgr verify --unlock-wrap 0" "no wrap could be unlocked: wrap 0 \(kms" \
  "$KEYMGR" verify vol3 --unlock-wrap 0 --keyfile vol3.kek "${KM[@]}"
"$KEYMGR" verify vol3 --unlock-wrap kms --unlock-wrap 1 --keyfile vol3.kek "${KM[@]}" 2>err | grep -q "wrap 1 unlocks" ||
  fail "verify --unlock-wrap kms --unlock-wrap 1"
noerrors "verify --unlock-wrap kms --unlock-wrap 1" err
kms EnableKey "{\"KeyId\": \"$key1\"}" >/dev/null
pass "only the wraps chosen are tried (wrap=ID|TYPE, --unlock-wrap); bad choices are refused with what to give"

# --- key states -------------------------------------------------------------
kms DisableKey "{\"KeyId\": \"$key1\"}" >/dev/null
refuses "disabled key" "key $arn1 is disabled \(DisabledException.*enable it" -- vol "${KP[@]}"
grep -q "cannot unlock volume [^ ]*vol: .*disabled or pending deletion" "$tmp/err" ||
  fail "the summary does not say the key is disabled"
"$KEYMGR" info vol --check "${KM[@]}" >check.out 2>&1 && fail "info --check exits 0 with a disabled key"
cat check.out >>all.err
grep -q "key state: Disabled" check.out || { cat check.out; fail "info --check does not show Disabled"; }
pass "info --check: key state Disabled, exit status non-zero"
kms EnableKey "{\"KeyId\": \"$key1\"}" >/dev/null
"$KEYMGR" info vol --check "${KM[@]}" >check.out || { cat check.out; fail "info --check"; }
grep -q "key state: Enabled.*$arn1 in us-east-1" check.out || { cat check.out; fail "info --check: Enabled"; }
[ "$("$KEYMGR" info vol --json --check "${KM[@]}" | jq -r '.key_states[0] | "\(.id) \(.usable)"')" = "0 true" ] ||
  fail "info --json --check"
pass "info --check: key state Enabled (DescribeKey), also in --json"

kms ScheduleKeyDeletion "{\"KeyId\": \"$key1\", \"PendingWindowInDays\": 7}" >/dev/null
refuses "key pending deletion" "key $arn1 is pending deletion .*\(KMSInvalidStateException.*cancel" -- vol "${KP[@]}"
"$KEYMGR" info vol --check "${KM[@]}" >check.out 2>&1 || true
grep -q "key state: PendingDeletion, deletion on 20" check.out || { cat check.out; fail "info --check: PendingDeletion"; }
kms CancelKeyDeletion "{\"KeyId\": \"$key1\"}" >/dev/null
kms EnableKey "{\"KeyId\": \"$key1\"}" >/dev/null
opens vol "${KP[@]}"
pass "deletion cancelled and key enabled: the volume opens again"

# --- retries -----------------------------------------------------------------
clear_calls
fault '{"throttle": 2, "ops": ["Decrypt"]}'
nbdkit -v -U - "$PLUGIN" vol "${KP[@]}" --run 'nbdinfo --size "$uri"' >out 2>err ||
  { tail -20 err; fail "throttled twice: nbdkit did not start"; }
cat err >>all.err
[ "$(calls)" = "Decrypt:ThrottlingException Decrypt:ThrottlingException Decrypt:ok" ] ||
  fail "throttled calls: $(calls)"
[ "$(grep -cE 'kms: Decrypt attempt [12] of 3 failed: ThrottlingException \(HTTP 400, request id [-0-9a-f]+\); retrying in [0-9]+ ms' err)" = 2 ] ||
  { grep kms: err; fail "the two retries are not in the debug output"; }
grep -q "kms: Decrypt succeeded on attempt 3 of 3" err || fail "no success line"
for rid in $(admin "$EP/_admin/calls" | jq -r '.calls[] | select(.result != "ok") | .request_id'); do
  grep -q "request id $rid" err || fail "request id $rid of a throttled call not in the debug output"
done
pass "throttled twice, then fine: unlock succeeds; both retries (with request ids) in nbdkit -v and /_admin/calls"

clear_calls
fault '{"drop": 1, "ops": ["Decrypt"]}'
opens vol "${KP[@]}"
[ "$(calls)" = "Decrypt:dropped Decrypt:ok" ] || fail "dropped connection: $(calls)"
pass "a dropped connection is retried"

clear_calls
fault '{"delay_ms": 1500, "count": 1, "ops": ["Decrypt"]}'
t0=$(date +%s%N)
CV_KMS_TIMEOUT_MS=500 nbdkit -v -U - "$PLUGIN" vol "${KP[@]}" --run 'nbdinfo --size "$uri"' >out 2>err ||
  { tail -20 err; fail "timeout then success: nbdkit did not start"; }
ms=$(elapsed_ms "$t0")
cat err >>all.err
grep -qE "kms: Decrypt attempt 1 of 3 failed: .*timed out.*retrying in" err ||
  { grep kms: err; fail "the timed-out attempt is not in the debug output"; }
[ "$ms" -lt 1500 ] || fail "a 500 ms timeout took $ms ms"
# The server finishes the delayed call later; wait for it (bounded) so that
# it does not land in the next step's call log.
for _ in $(seq 1 100); do
  [ "$(admin "$EP/_admin/calls" | jq '.calls | length')" -ge 2 ] && break
  sleep 0.05
done
pass "an attempt that times out (CV_KMS_TIMEOUT_MS) is retried; unlock in $ms ms"

clear_calls
fault '{"error500": 10, "ops": ["Decrypt"]}'
t0=$(date +%s%N)
refuses "permanent 500s" "KMSInternalException.*3 attempts.*try again later" CV_KMS_RETRY_BASE_MS=1000 -- vol "${KP[@]}"
ms=$(elapsed_ms "$t0")
[ "$(calls)" = "Decrypt:KMSInternalException Decrypt:KMSInternalException Decrypt:KMSInternalException" ] ||
  fail "permanent 500s: $(calls)"
[ "$ms" -lt 10000 ] || fail "permanent 500s took $ms ms (backoff at most 1 + 2 s)"
fault '{"clear": true}'
pass "permanent 500s: exactly 3 attempts with the default 1 s backoff base, gave up in $ms ms"

# --- credentials --------------------------------------------------------------
clear_calls
refuses "wrong secret" "AWS did not accept the credentials from the environment \(InvalidSignatureException" \
  AWS_SECRET_ACCESS_KEY=wrong-secret -- vol "${KP[@]}"
[ "$(calls)" = "Decrypt:InvalidSignatureException" ] || fail "wrong secret retried: $(calls)"
clear_calls
refuses "access denied" "key $arn1 may not be used with these credentials \(AccessDeniedException.*key policy" \
  AWS_ACCESS_KEY_ID="$akid_ro" -- vol "${KP[@]}"
[ "$(calls)" = "Decrypt:AccessDeniedException" ] || fail "access denied retried: $(calls)"
refuses "no credentials" "wrap 0 \(kms $arn1\): no AWS credentials found" \
  -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -- vol "${KP[@]}"
pass "wrong credentials and access denied: one call each, no retry"

# --- TLS ------------------------------------------------------------------------
refuses "unknown CA" "TLS certificate of $EP/ is not trusted.*ca-bundle" -- vol kms-endpoint="$EP"
refuses "http endpoint" "not an https:// URL" -- vol kms-endpoint="http://127.0.0.1:1" ca-bundle="$CA"
pass "TLS is always verified; plain http is refused"

# --- a wrap copied from another volume ------------------------------------------
"$KEYMGR" create other --size 16M --wrap "kms:$arn1" "${KM[@]}" >/dev/null
cp other stolen && "$TAMPER" stolen set-wraps vol
clear_calls
refuses "wrap copied from another volume" "refused the wrap for this volume's encryption context \(InvalidCiphertextException" -- stolen "${KP[@]}"
[ "$(calls)" = "Decrypt:InvalidCiphertextException" ] || fail "stolen wrap: $(calls)"
pass "a header with another volume's kms wrap: InvalidCiphertextException, refused"

# --- rotation ---------------------------------------------------------------------
kms RotateKeyOnDemand "{\"KeyId\": \"$key1\"}" >/dev/null
[ "$(admin "$EP/_admin/keys" | jq -r ".keys[\"us-east-1\"][\"$key1\"].Versions")" = 2 ] ||
  fail "the key was not rotated"
opens vol "${KP[@]}"
pass "after RotateKeyOnDemand the volume still opens"

# --- multi-Region ------------------------------------------------------------------
"$KEYMGR" create mvol --size 16M --wrap "kms:$mrk_arn" "${KM[@]}" >/dev/null
serve mvol "${KP[@]}" -- nbdsh -u '$uri' -c "h.pwrite($DATA, 8192)"
clear_calls
opens mvol kms-region=us-west-2 kms-endpoint="$EP_WEST" ca-bundle="$CA"
[ "$(admin "$EP/_admin/calls" | jq -r '.calls[] | "\(.op) \(.region) \(.result) \(.key_id)"')" = \
  "Decrypt us-west-2 ok arn:aws:kms:us-west-2:$account:key/$mrk" ] ||
  fail "multi-Region unlock: $(admin "$EP/_admin/calls")"
pass "a volume wrapped in us-east-1 unlocks through the us-west-2 replica's endpoint"
refuses "replica endpoint without its region" "InvalidSignatureException.*kms-region= matches" \
  -- mvol kms-endpoint="$EP_WEST" ca-bundle="$CA"

# --- keymgr rewrap to a second key: ReEncrypt -------------------------------------
kms UpdateAlias "{\"AliasName\": \"alias/cryptvol-test\", \"TargetKeyId\": \"$key1\"}" >/dev/null
"$KEYMGR" create rvol --size 16M --wrap "kms:$arn1" "${KM[@]}" >/dev/null
serve rvol "${KP[@]}" -- nbdsh -u '$uri' -c "h.pwrite($DATA, 8192)"
clear_calls
"$KEYMGR" rewrap rvol --id 0 --to "kms:$arn2" "${KM[@]}" --audit-log audit.jsonl >rw.out ||
  fail "keymgr rewrap"
newid=$(sed -n 's/.* as wrap \([0-9]*\) (re-wrapped inside the key service).*/\1/p' rw.out)
[ -n "$newid" ] || { cat rw.out; fail "rewrap did not re-wrap inside KMS"; }
# ReEncrypt to the new key, then ReEncrypt of the new wrap to its own key as
# the check that it opens: no Decrypt, so the DEK never left KMS.
[ "$(calls)" = "ReEncrypt:ok ReEncrypt:ok" ] || fail "rewrap calls: $(calls)"
python3 - <<'EOS' || fail "audit log of the rewrap"
import json
r = [json.loads(l) for l in open("audit.jsonl")][-1]
assert r["command"] == "rewrap" and r["result"] == "ok", r
ops = [q["op"] for q in r["requests"] if q["service"] == "kms" and q["request_id"]]
assert ops == ["ReEncrypt", "ReEncrypt"], r["requests"]
EOS
[ "$("$KEYMGR" info rvol --json | jq -r '.wraps | map("\(.id) \(.key_arn)") | join(",")')" = "$newid $arn2" ] ||
  fail "after the rewrap the volume should have only wrap $newid under $arn2"
kms DisableKey "{\"KeyId\": \"$key1\"}" >/dev/null
nbdkit -v -U - "$PLUGIN" rvol "${KP[@]}" --run "nbdsh -u \"\$uri\" -c 'assert h.pread(4096, 8192) == $DATA'" \
  >out 2>err || { tail -20 err; fail "rewrapped volume does not open with the first key disabled"; }
cat err >>all.err
grep -q "unlocked with wrap $newid (kms $arn2)" err || fail "not unlocked with the new wrap"
kms EnableKey "{\"KeyId\": \"$key1\"}" >/dev/null
pass "keymgr rewrap KMS to KMS (ReEncrypt only, request ids audited): opens with the new key, and with the first key disabled"

# --- the AWS CLI decrypts what cryptvol wrapped -----------------------------------
if [ -x "$AWS" ]; then
  awsk () { AWS_CA_BUNDLE=$CA AWS_DEFAULT_REGION=us-east-1 AWS_PAGER='' "$AWS" --endpoint-url "$EP" kms "$@"; }
  head -c 64 /dev/urandom >dek.bin
  "$KEYMGR" create ivol --size 8M --import-key dek.bin --wrap "kms:$arn1" "${KM[@]}" >/dev/null
  "$KEYMGR" info ivol --json >ivol.json
  jq -r '.wraps[0].blob' ivol.json | base64 -d >ivol.blob
  awsk decrypt --ciphertext-blob fileb://ivol.blob --key-id "$(jq -r '.wraps[0].key_arn' ivol.json)" \
    --encryption-context "$(jq -c '.wraps[0].ctx' ivol.json)" --query Plaintext --output text |
    base64 -d >ivol.dek
  cmp -s ivol.dek dek.bin || fail "aws kms decrypt of cryptvol's blob did not give the DEK"
  if awsk decrypt --ciphertext-blob fileb://ivol.blob --key-id "$arn1" \
       --encryption-context "{\"cryptvol:volume\":\"$uuid\"}" >/dev/null 2>awserr; then
    fail "aws kms decrypt with another volume's context succeeded"
  fi
  grep -q InvalidCiphertextException awserr || fail "aws: $(cat awserr)"
  jq -r '.wraps[0].blob' info.json | base64 -d >vol.blob
  [ "$(awsk decrypt --ciphertext-blob fileb://vol.blob --key-id "$arn1" \
        --encryption-context "$(jq -c '.wraps[0].ctx' info.json)" --query Plaintext --output text |
        base64 -d | wc -c)" = 64 ] || fail "aws kms decrypt of the GenerateDataKey blob"
  pass "aws kms decrypt (the real CLI) opens cryptvol's blobs with the wrap's ctx, and not with another"
else
  echo "note: $AWS is not installed (Debian package awscli); the CLI check did not run"
fi

# --- a key that does not exist: the key-problem exit code, 2 ---------------------
nokey=arn:aws:kms:us-east-1:$account:key/00000000-0000-4000-8000-000000000000
set +e
"$KEYMGR" create nf.img --size 8M --wrap "kms:$nokey" "${KM[@]}" --json >nf.json 2>nf.err; rc=$?
set -e
[ "$rc" = 2 ] || { cat nf.err; fail "create with a KMS key that does not exist: exit $rc, expected 2"; }
jq -e '.ok == false and .exit == 2 and (.error | test("not found"))' nf.json >/dev/null ||
  fail "create --json with a KMS key that does not exist printed $(cat nf.json)"
[ ! -e nf.img ] || fail "the failed create left nf.img"
pass "a KMS key that does not exist (NotFoundException): exit 2, the error as JSON on stdout: $(jq -r .error nf.json | head -c 160)"

# --- no secret anywhere -----------------------------------------------------------
if grep -sqF -e "$secret" all.err check.out aws.log awserr; then
  fail "the secret access key appears in an output"
fi
if grep -sqi -e Plaintext -e "$(base64 -w0 dek.bin 2>/dev/null || echo none)" all.err; then
  fail "key material in the debug output"
fi
pass "no secret in nbdkit's or keymgr's output, nor in the server log"
