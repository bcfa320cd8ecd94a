#!/bin/bash
# The AWS settings of the KMS provider, end to end through cryptvol-keymgr
# and nbdkit against the local test KMS, with no kms-endpoint= or
# kms-region=: the region and the endpoint from a profile (its services
# section), AWS_ENDPOINT_URL_KMS and AWS_REGION, AWS_MAX_ATTEMPTS, the
# adaptive retry mode slowing down after throttling, and the refusals of a
# bad endpoint URL, retry mode and named profile with their messages.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/aws-lib.sh"
requires nbdkit nbdsh nbdinfo curl jq openssl

account=111122223333
akid=AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+')
mkdir -p state
cat >state/config.json <<EOF
{"account_id": "$account", "regions": ["us-east-1"],
 "credentials": [{"access_key_id": "$akid", "secret_access_key": "$secret"}]}
EOF
local_aws_start state

local_aws_env
export AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret AWS_CA_BUNDLE=$CA
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=$tmp/config

local_aws_signer "$akid" "$secret"

calls () { admin "$EP/_admin/calls" | jq -r '[.calls[] | "\(.op):\(.result)"] | join(" ")'; }

key=$(kms CreateKey '{"Description": "cryptvol settings test"}' | jq -r .KeyMetadata.KeyId)
kms CreateAlias "{\"AliasName\": \"alias/settings\", \"TargetKeyId\": \"$key\"}" >/dev/null

# --- a profile gives the region and, in its services section, the endpoint
cat >"$tmp/config" <<EOF
# the services section is how the AWS CLI points one service elsewhere
[profile serve]
region = us-east-1
services = local
[services local]
kms =
  endpoint_url = $EP
[profile badmode]
retry_mode = fast
EOF
clear_calls
AWS_PROFILE=serve "$KEYMGR" create vol --size 8M --wrap kms:alias/settings >/dev/null ||
  fail "create with the profile's region and services endpoint"
[ "$(calls)" = "GenerateDataKey:ok" ] || fail "create: $(calls)"
jq -e '.wraps[0].region == "us-east-1"' <("$KEYMGR" info vol --json) >/dev/null ||
  fail "the wrap's region is not the profile's"
pass "create with alias/NAME: region from the profile, endpoint from its services section"

# --- the environment: AWS_REGION and AWS_ENDPOINT_URL_KMS, no profile
export AWS_CONFIG_FILE=/dev/null AWS_ENDPOINT_URL_KMS=$EP
clear_calls
serve vol key-check=0 -- nbdinfo --size '$uri' >/dev/null || fail "open with AWS_ENDPOINT_URL_KMS"
[ "$(calls)" = "Decrypt:ok" ] || fail "open: $(calls)"
pass "served with the endpoint from AWS_ENDPOINT_URL_KMS (region from the key ARN)"

expect_fail "an http endpoint URL" \
  'KMS endpoint "http://127.0.0.1:1" \(from AWS_ENDPOINT_URL_KMS\) is not an https:// URL' \
  env AWS_ENDPOINT_URL_KMS=http://127.0.0.1:1 nbdkit -U - "$PLUGIN" vol --run true
expect_fail "an endpoint URL with a path" \
  "KMS endpoint \"$EP/kms\" \\(from AWS_ENDPOINT_URL\\) must be https://HOST\\[:PORT\\] with no path" \
  env -u AWS_ENDPOINT_URL_KMS AWS_ENDPOINT_URL="$EP/kms" nbdkit -U - "$PLUGIN" vol --run true
expect_fail "alias/NAME without a region" \
  "no AWS region for key alias/settings: give kms-region= .* give the profile a region" \
  "$KEYMGR" create vol2 --size 8M --wrap kms:alias/settings
expect_fail "a bad retry mode" \
  "AWS_RETRY_MODE=sometimes is not a retry mode \(standard, adaptive or legacy\)" \
  env AWS_RETRY_MODE=sometimes nbdkit -U - "$PLUGIN" vol --run true
expect_fail "a bad retry mode in the profile" \
  "retry_mode = fast in profile badmode of the AWS config file .*config is not a retry mode" \
  env AWS_CONFIG_FILE="$tmp/config" AWS_PROFILE=badmode nbdkit -U - "$PLUGIN" vol --run true
expect_fail "a named profile that does not exist" \
  "AWS_PROFILE is nope, but neither the AWS config file .* nor the credentials file .* has that profile" \
  env AWS_CONFIG_FILE="$tmp/config" AWS_PROFILE=nope nbdkit -U - "$PLUGIN" vol --run true

# --- AWS_MAX_ATTEMPTS
clear_calls
fault '{"error500": 10, "ops": ["Decrypt"]}'
expect_fail "permanent 500s with AWS_MAX_ATTEMPTS=5" "KMSInternalException.*5 attempts" \
  env AWS_MAX_ATTEMPTS=5 nbdkit -U - "$PLUGIN" vol --run true
[ "$(calls | wc -w)" = 5 ] || fail "AWS_MAX_ATTEMPTS=5: $(calls)"
clear_calls
expect_fail "permanent 500s with AWS_MAX_ATTEMPTS=1" "KMSInternalException" \
  env AWS_MAX_ATTEMPTS=1 nbdkit -U - "$PLUGIN" vol --run true
[ "$(calls)" = "Decrypt:KMSInternalException" ] || fail "AWS_MAX_ATTEMPTS=1: $(calls)"
fault '{"clear": true}'
pass "AWS_MAX_ATTEMPTS sets the attempts per call (5, 1)"

# --- adaptive: after a throttle, the next attempt waits for the limiter
clear_calls
fault '{"throttle": 1, "ops": ["Decrypt"]}'
AWS_RETRY_MODE=adaptive nbdkit -v -U - "$PLUGIN" vol key-check=0 --run 'nbdinfo --size "$uri"' >out 2>err ||
  { tail -20 err; fail "adaptive: nbdkit did not start"; }
[ "$(calls)" = "Decrypt:ThrottlingException Decrypt:ok" ] || fail "adaptive: $(calls)"
grep -qE "kms: Decrypt attempt 2 waits [0-9]+ ms for the adaptive retry mode's rate limit" err ||
  { grep kms: err; fail "adaptive: the second attempt did not wait for the rate limiter"; }
fault '{"clear": true}'
clear_calls
AWS_RETRY_MODE=standard nbdkit -v -U - "$PLUGIN" vol --run 'nbdinfo --size "$uri"' >out 2>err ||
  fail "standard: nbdkit did not start"
! grep -q "rate limit" err || fail "standard mode waited for a rate limiter"
pass "adaptive retry mode: after a ThrottlingException the retry waits for the client-side rate limiter; standard mode never does"
