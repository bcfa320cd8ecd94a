#!/bin/bash
# The AWS credential chain end to end (issue 13), through the real nbdkit
# and cryptvol-keymgr, against the local AWS (tests/kms/kms-server.py: KMS,
# STS, the SSO portal, instance metadata and a container endpoint, every
# request checked as AWS checks it):
#  - each source unlocks a KMS-wrapped volume, and the local KMS sees the
#    principal that source stands for: the environment, web identity,
#    profiles (static keys, role_arn with source_profile and external_id,
#    credential_source, web_identity_token_file, credential_process, SSO
#    through the CLI's token cache), the container endpoint, IMDSv2;
#  - the chain's order: with two sources present, the earlier wins;
#  - a key id's region from instance metadata; keymgr aws-identity;
#  - credentials that expire every few seconds are refreshed while a server
#    runs, and its key checks keep succeeding;
#  - each misconfiguration has its message checked: an expired web-identity
#    token, a wrong external id, unreachable instance metadata, a failing
#    credential_process, SSO without a cached token, a role profile without
#    a source, and "no credentials" listing every source.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/aws-lib.sh"
requires nbdkit nbdsh curl jq openssl

# --- the local AWS ----------------------------------------------------------
ACCT=111122223333
rnd () { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F; }
akid=AKIA$(rnd 8) secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+')
akid_ops=AKIA$(rnd 8) secret_ops=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+')
oidc_key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
sso_token=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+')
ctr_token=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+')
ISSUER=https://oidc.cryptvol.test/cluster-1
SA=system:serviceaccount:storage:cryptvol
role () { echo "arn:aws:iam::$ACCT:role/$1"; }
USE='{"actions": ["kms:Decrypt", "kms:DescribeKey"], "keys": ["*"]}'
mkdir -p state
cat >state/config.json <<EOF
{"account_id": "$ACCT", "regions": ["us-east-1"],
 "credentials": [
   {"access_key_id": "$akid", "secret_access_key": "$secret", "user": "admin"},
   {"access_key_id": "$akid_ops", "secret_access_key": "$secret_ops", "user": "ops",
    "allow": [{"actions": ["sts:*", "kms:Decrypt", "kms:DescribeKey"], "keys": ["*"]}]}
 ],
 "roles": [
   {"name": "cv-web", "allow": [$USE],
    "trust": [{"web_identity": {"issuer": "$ISSUER", "audience": "sts.amazonaws.com", "subject": "$SA"}}]},
   {"name": "cv-xacct", "allow": [$USE],
    "trust": [{"principal": "arn:aws:iam::$ACCT:user/ops", "external_id": "ext-4711"}]},
   {"name": "cv-chained", "allow": [$USE],
    "trust": [{"principal": "$(role cv-imds)"}]},
   {"name": "cv-sso", "allow": [$USE], "trust": []},
   {"name": "cv-ctr", "allow": [$USE], "trust": []},
   {"name": "cv-imds", "allow": [$USE], "trust": [], "test_lifetime_seconds": 8}
 ],
 "oidc_providers": [{"issuer": "$ISSUER", "hs256_key_b64": "$oidc_key",
                     "audiences": ["sts.amazonaws.com"]}],
 "instance": {"role": "cv-imds", "region": "us-east-1"},
 "container": {"path": "/v2/credentials/cv", "role": "cv-ctr", "token": "$ctr_token"},
 "sso": {"access_token": "$sso_token", "account_id": "$ACCT", "role_name": "cv-sso"}}
EOF

local_aws_start state --imds-port-file imds-port --container-port-file ctr-port
IMDS=http://127.0.0.1:$(cat imds-port)
CTR=http://127.0.0.1:$(cat ctr-port)/v2/credentials/cv

# Nothing from the machine: every source below is given by the test.
local_aws_env --metadata
export HOME=$tmp/home
mkdir -p "$HOME/.aws"
export AWS_CA_BUNDLE=$CA AWS_ENDPOINT_URL_KMS=$EP AWS_ENDPOINT_URL_STS=$EP \
  AWS_ENDPOINT_URL_SSO=$EP
# Where the machine has no instance metadata, nothing answers here.
export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9

local_aws_signer "$akid" "$secret"

# principals OP: the principals of the successful calls OP since clear_calls.
principals () {
  admin "$EP/_admin/calls" |
    jq -r --arg op "$1" '[.calls[] | select(.op == $op and .result == "ok") | .principal] | unique | join(" ")'
}
count_ok () {
  admin "$EP/_admin/calls" | jq --arg op "$1" '[.calls[] | select(.op == $op and .result == "ok")] | length'
}
jwt () {  # TTL: a service-account token for $SA
  "$PY" "$CV_SRCDIR/tests/kms/make-jwt.py" --key-b64 "$oidc_key" --iss "$ISSUER" \
    --sub "$SA" --aud sts.amazonaws.com --ttl "$1"
}

key=$(kms CreateKey '{"Description": "cryptvol identity test"}' | jq -r .KeyMetadata.KeyId)
ARN=arn:aws:kms:us-east-1:$ACCT:key/$key
AS_ADMIN=(AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="$secret")
env "${AS_ADMIN[@]}" "$KEYMGR" create vol --size 16M --wrap "kms:$ARN" >/dev/null ||
  fail "create a KMS-wrapped volume with the environment's credentials"
DATA='b"IDENTITY-MARKER!" * 256'
env "${AS_ADMIN[@]}" nbdkit -U - "$PLUGIN" vol \
  --run "nbdsh -u \"\$uri\" -c 'h.pwrite($DATA, 8192)'" || fail "the first write"

# unlocks_as WHAT PRINCIPAL-REGEX [env...]: nbdkit opens the volume with
# only the given environment, the data reads back, and the KMS saw Decrypt
# from a principal matching the regex (and from no other).
unlocks_as () {
  local what=$1 want=$2 seen
  shift 2
  clear_calls
  env "$@" nbdkit -U - "$PLUGIN" vol \
    --run "nbdsh -u \"\$uri\" -c 'assert h.pread(4096, 8192) == $DATA'" 2>"$tmp/err" ||
    { sed 's/^/    stderr| /' "$tmp/err" >&2; fail "$what: the volume did not open"; }
  seen=$(principals Decrypt)
  [[ $seen =~ ^$want$ ]] || fail "$what: Decrypt came from \"$seen\", not /$want/"
  ! grep -Fq -e "$secret" -e "$secret_ops" -e "$sso_token" -e "$ctr_token" "$tmp/err" ||
    fail "$what: a secret was printed"
  pass "$what: unlocked as $seen"
}
# refuses WHAT PATTERN [env...]: nbdkit does not serve, stderr matches.
refuses () {
  local what=$1 pattern=$2
  shift 2
  rm -f ran
  expect_fail "$what" "$pattern" env "$@" nbdkit -U - "$PLUGIN" vol --run 'touch ran'
  [ ! -e ran ] || fail "$what: nbdkit served the volume"
  ! grep -Fq -e "$secret" -e "$secret_ops" -e "$sso_token" -e "$ctr_token" "$tmp/err" ||
    fail "$what: a secret was printed"
}
assumed () { echo "arn:aws:sts::$ACCT:assumed-role/$1/[A-Za-z0-9@=,._-]+"; }

# --- each source ------------------------------------------------------------
unlocks_as "the environment" "arn:aws:iam::$ACCT:user/admin" "${AS_ADMIN[@]}"

jwt 600 >token
unlocks_as "web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN)" "$(assumed cv-web)" \
  AWS_WEB_IDENTITY_TOKEN_FILE="$tmp/token" AWS_ROLE_ARN="$(role cv-web)"

cat >"$HOME/.aws/credentials" <<EOF
[ops]
aws_access_key_id = $akid_ops
aws_secret_access_key = $secret_ops
[admin]
aws_access_key_id = $akid
aws_secret_access_key = $secret
EOF
chmod 600 "$HOME/.aws/credentials"
printf '#!/bin/sh\nprintf %s %s\n' "'%s'" \
  "'{\"Version\": 1, \"AccessKeyId\": \"$akid\", \"SecretAccessKey\": \"$secret\"}'" >cred-proc
printf '#!/bin/sh\necho "cred-proc: the vault is sealed" >&2\nexit 3\n' >cred-proc-fails
chmod 700 cred-proc cred-proc-fails
sso_hash=$(printf %s cv-sso | sha1sum | cut -d' ' -f1)
cat >"$HOME/.aws/config" <<EOF
[profile static]
region = us-east-1
[profile xacct]
role_arn = $(role cv-xacct)
source_profile = ops
external_id = ext-4711
role_session_name = cv-storage-host-7
[profile xacct-wrong-id]
role_arn = $(role cv-xacct)
source_profile = ops
external_id = ext-0000
[profile from-imds]
role_arn = $(role cv-chained)
credential_source = Ec2InstanceMetadata
[profile process]
credential_process = $tmp/cred-proc
[profile process-fails]
credential_process = $tmp/cred-proc-fails --vault prod
[profile sso]
sso_session = cv-sso
sso_account_id = $ACCT
sso_role_name = cv-sso
[sso-session cv-sso]
sso_region = us-east-1
sso_start_url = https://cryptvol-test.awsapps.com/start
[profile web]
role_arn = $(role cv-web)
web_identity_token_file = $tmp/token
[profile no-source]
role_arn = $(role cv-xacct)
EOF

unlocks_as "profile with static keys (credentials file)" "arn:aws:iam::$ACCT:user/ops" \
  AWS_PROFILE=ops
unlocks_as "profile role_arn + source_profile + external_id (AssumeRole)" \
  "arn:aws:sts::$ACCT:assumed-role/cv-xacct/cv-storage-host-7" AWS_PROFILE=xacct
unlocks_as "profile role_arn + credential_source = Ec2InstanceMetadata (role chaining)" \
  "$(assumed cv-chained)" AWS_PROFILE=from-imds AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS"
unlocks_as "profile web_identity_token_file" "$(assumed cv-web)" AWS_PROFILE=web
unlocks_as "profile credential_process" "arn:aws:iam::$ACCT:user/admin" AWS_PROFILE=process

mkdir -p "$HOME/.aws/sso/cache"
expires=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
printf '{"startUrl": "https://cryptvol-test.awsapps.com/start", "region": "us-east-1", "accessToken": "%s", "expiresAt": "%s"}\n' \
  "$sso_token" "$expires" >"$HOME/.aws/sso/cache/$sso_hash.json"
unlocks_as "SSO profile through the AWS CLI's token cache" "$(assumed cv-sso)" AWS_PROFILE=sso

printf %s "$ctr_token" >ctr-token
unlocks_as "container credentials (FULL_URI + token file)" "$(assumed cv-ctr)" \
  AWS_CONTAINER_CREDENTIALS_FULL_URI="$CTR" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$tmp/ctr-token"
unlocks_as "container credentials (authorization token)" "$(assumed cv-ctr)" \
  AWS_CONTAINER_CREDENTIALS_FULL_URI="$CTR" AWS_CONTAINER_AUTHORIZATION_TOKEN="$ctr_token"
unlocks_as "instance metadata (IMDSv2)" "$(assumed cv-imds)" \
  AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS"
[ "$(admin "$EP/_admin/calls" | jq '[.calls[] | select(.op == "imds:token")] | length')" -ge 1 ] ||
  fail "instance metadata: no IMDSv2 token was asked for"

# The region of a key given by id alone: from instance metadata when nothing
# else names one (and refused with a message when nothing does).
clear_calls
env "${AS_ADMIN[@]}" AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS" \
  "$KEYMGR" add-wrap vol --wrap "kms:$key" >/dev/null || fail "add-wrap kms:KEY-ID with the instance's region"
[ "$("$KEYMGR" info vol --json | jq -r '.wraps[-1].region')" = us-east-1 ] || fail "the new wrap's region"
admin "$EP/_admin/calls" | jq -e '[.calls[] | select(.op == "imds:metadata" and (.path | test("placement/region")))] | length > 0' >/dev/null ||
  fail "the region was not asked of instance metadata"
key2=$(kms CreateKey '{"Description": "cryptvol identity test 2"}' | jq -r .KeyMetadata.KeyId)
expect_fail "a key id with no region anywhere" "no AWS region for key $key2: give kms-region=" \
  env "${AS_ADMIN[@]}" AWS_EC2_METADATA_DISABLED=true "$KEYMGR" add-wrap vol --wrap "kms:$key2"
pass "a key id's region from instance metadata"

# keymgr aws-identity: the principal (STS GetCallerIdentity), source, expiry.
AWS_EC2_METADATA_SERVICE_ENDPOINT=$IMDS "$KEYMGR" aws-identity >whoami ||
  fail "aws-identity with instance metadata"
grep -Eq "^principal: $(assumed cv-imds)$" whoami && grep -q "^credentials from: .*instance metadata" whoami &&
  grep -Eq "^expire: 20[0-9-]+T" whoami || { cat whoami; fail "aws-identity's answer"; }
AWS_PROFILE=xacct "$KEYMGR" aws-identity --json >whoami.json || fail "aws-identity --json"
[ "$(jq -r .arn whoami.json)" = "arn:aws:sts::$ACCT:assumed-role/cv-xacct/cv-storage-host-7" ] &&
  jq -e '.expires | type == "string"' whoami.json >/dev/null || { cat whoami.json; fail "aws-identity --json's answer"; }
env "${AS_ADMIN[@]}" "$KEYMGR" aws-identity >whoami || fail "aws-identity with the environment"
grep -q "^principal: arn:aws:iam::$ACCT:user/admin$" whoami && grep -q "^expire: never" whoami ||
  { cat whoami; fail "aws-identity of long-lived credentials"; }
[ "$(count_ok sts:GetCallerIdentity)" -ge 3 ] || fail "aws-identity did not ask STS"
expect_fail "aws-identity without credentials" "no AWS credentials found.*1\. the environment" \
  "$KEYMGR" aws-identity
pass "aws-identity: $(head -1 whoami)"

# --- the order -------------------------------------------------------------
unlocks_as "order: the environment before instance metadata" \
  "arn:aws:iam::$ACCT:user/admin" "${AS_ADMIN[@]}" AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS"
unlocks_as "order: web identity before the profile" "$(assumed cv-web)" \
  AWS_WEB_IDENTITY_TOKEN_FILE="$tmp/token" AWS_ROLE_ARN="$(role cv-web)" AWS_PROFILE=ops
unlocks_as "order: the profile before the container" "arn:aws:iam::$ACCT:user/ops" \
  AWS_PROFILE=ops AWS_CONTAINER_CREDENTIALS_FULL_URI="$CTR" AWS_CONTAINER_AUTHORIZATION_TOKEN="$ctr_token"
unlocks_as "order: the container before instance metadata" "$(assumed cv-ctr)" \
  AWS_CONTAINER_CREDENTIALS_FULL_URI="$CTR" AWS_CONTAINER_AUTHORIZATION_TOKEN="$ctr_token" \
  AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS"

# --- misconfigurations --------------------------------------------------------
jwt -60 >expired-token
refuses "expired web-identity token" "web identity.*(expired|ExpiredToken)" \
  AWS_WEB_IDENTITY_TOKEN_FILE="$tmp/expired-token" AWS_ROLE_ARN="$(role cv-web)"
refuses "wrong external id" "cv-xacct.*(AccessDenied|not authorized).*external" \
  AWS_PROFILE=xacct-wrong-id
refuses "unreachable instance metadata" \
  "no AWS credentials found.*instance metadata: .*127\.0\.0\.1:9" \
  AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9
refuses "failing credential_process" "credential_process of profile process-fails .* exited with status 3" \
  AWS_PROFILE=process-fails
grep -q "the vault is sealed" "$tmp/err" || fail "credential_process: its stderr was not passed through"
rm "$HOME/.aws/sso/cache/$sso_hash.json"
refuses "SSO without a cached token" "aws sso login --profile sso" AWS_PROFILE=sso
refuses "role profile without a source" "profile no-source has role_arn and none of source_profile" \
  AWS_PROFILE=no-source
refuses "a named profile that does not exist" "AWS_PROFILE.*nosuch" AWS_PROFILE=nosuch
refuses "no credentials: every source is listed" \
  "no AWS credentials found.*1\. the environment: .*2\. web identity: .*3\. profile default.*4\. container credentials: .*5\. instance metadata: " \
  AWS_EC2_METADATA_DISABLED=false

# --- refresh while serving ----------------------------------------------------
# Instance-role credentials live 8 s here; the key watch checks every second.
SOCK=$tmp/nbd.sock CTL=$tmp/ctl.sock
nbd_pid=
stop_nbd () { [ -z "$nbd_pid" ] || { kill "$nbd_pid" 2>/dev/null; wait "$nbd_pid" 2>/dev/null; nbd_pid=; }; }
cleanup_hooks+=(stop_nbd)
clear_calls
AWS_EC2_METADATA_SERVICE_ENDPOINT=$IMDS nbdkit -f -v -U "$SOCK" "$PLUGIN" vol \
  key-check=1 control="$CTL" >>nbdkit.log 2>&1 &
nbd_pid=$!
t0=$(date +%s)
while :; do
  fetched=$(admin "$EP/_admin/calls" | jq '[.calls[] | select(.op == "imds:credentials" and .result == "ok")] | length')
  [ "$fetched" -ge 3 ] && break
  kill -0 "$nbd_pid" 2>/dev/null || { tail -n 30 nbdkit.log; fail "nbdkit exited"; }
  [ $(( $(date +%s) - t0 )) -lt 60 ] || { tail -n 30 nbdkit.log; fail "the credentials were not refreshed: $fetched fetches in 60 s"; }
  sleep 0.2
done
checks=$(count_ok Decrypt)
bad=$(admin "$EP/_admin/calls" | jq '[.calls[] | select(.op == "Decrypt" and .result != "ok")] | length')
[ "$bad" -eq 0 ] || fail "a key check failed while the credentials were refreshed: $(admin "$EP/_admin/calls" | jq -c '[.calls[] | select(.op == "Decrypt" and .result != "ok")][0]')"
[ "$checks" -gt "$fetched" ] || fail "the credentials were fetched for every check ($fetched fetches, $checks checks): no cache"
[ "$("$KEYMGR" status --control "$CTL" --json | jq -r .state)" = unlocked ] || fail "the server is not serving (state is not unlocked)"
nbdsh -u "nbd+unix:///?socket=$SOCK" -c "assert h.pread(4096, 8192) == $DATA" || fail "I/O after the refreshes"
grep -q "refreshed ahead of their expiry" nbdkit.log || fail "no refresh in nbdkit -v"
stop_nbd
pass "credentials living 8 s: $fetched fetched in $(( $(date +%s) - t0 )) s, $checks key checks all succeeded, still serving"
