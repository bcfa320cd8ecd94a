#!/bin/bash
# Fidelity of the local AWS's identity services (tests/kms/kms-server.py,
# identity.py, metadata.py), checked with the real AWS CLI (Debian package
# awscli, /usr/bin/aws): STS AssumeRole (trust, external id, durations, role
# chaining, expiry), GetCallerIdentity, KMS grants (create, list, revoke,
# retire, grant tokens under a propagation delay, constraints), and the CLI
# taking its credentials from the local instance metadata (IMDSv2), the
# container credentials endpoint, a web identity token, and the SSO portal.
#
# How the CLI is pointed at the server:
# * KMS, STS and SSO calls: --endpoint-url.
# * The credential providers: AWS_EC2_METADATA_SERVICE_ENDPOINT and
#   AWS_CONTAINER_CREDENTIALS_FULL_URI. The web identity provider makes its
#   own STS client, and CLI 2.9 predates AWS_ENDPOINT_URL_STS: the test puts
#   an STS endpoint rule set whose only rule is "https://127.0.0.1:PORT" in
#   $tmp/models/sts/2011-06-15/endpoint-rule-set-1.json (the parameters copied
#   from the CLI's own) and loads it through AWS_DATA_PATH, which botocore
#   searches before its own data.
set -u
srcdir=${CV_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
AWS=/usr/bin/aws
PY=/usr/bin/python3

[ -x "$AWS" ] || { echo "SKIP: /usr/bin/aws is not installed (Debian package awscli)"; exit 77; }
for tool in "$PY" openssl curl base64; do
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
expect_error() {  # NAME ERROR_CODE COMMAND... : the command fails with that AWS error
  local name=$1 code=$2; shift 2
  local out
  if out=$("$@" 2>&1); then
    bad "$name" "succeeded, expected $code" "$out"
  elif grep -q "An error occurred ($code)" <<<"$out"; then
    ok "$name"
  else
    bad "$name" "expected $code" "$out"
  fi
}
q() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
rand() { head -c "$1" /dev/urandom | base64 | tr -d '\n/+=' | head -c "$2"; }

"$srcdir/tests/kms/make-test-ca.sh" "$tmp/ca" >/dev/null 2>&1 || { echo "FAIL: make-test-ca.sh"; exit 1; }
mkdir -p "$tmp/state"

acct=111122223333
akid=AKIA$(rand 30 16 | tr a-z A-Z)
secret=$(rand 40 40)
akid_host=${akid}H
secret_host=$(rand 40 40)
jwt_key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
container_token=$(rand 30 32)
sso_token=$(rand 60 64)
iss=https://oidc.eks.us-east-1.amazonaws.com/id/CRYPTVOLTEST
sub=system:serviceaccount:storage:cryptvol
user_arn=arn:aws:iam::$acct:user/test
host_arn=arn:aws:iam::$acct:user/host
role=arn:aws:iam::$acct:role/cryptvol-serve
role_ext=arn:aws:iam::$acct:role/cryptvol-ext
role_hop=arn:aws:iam::$acct:role/cryptvol-hop
role_short=arn:aws:iam::$acct:role/cryptvol-short
role_grantee=arn:aws:iam::$acct:role/cryptvol-grantee

write_config() {  # [EXTRA JSON MEMBERS]: the config, with members appended
  cat >"$tmp/state/config.json.new" <<EOF
{"account_id": "$acct", "regions": ["us-east-1"],
 "credentials": [
   {"access_key_id": "$akid", "secret_access_key": "$secret"},
   {"access_key_id": "$akid_host", "secret_access_key": "$secret_host", "user": "host",
    "allow": []}
 ],
 "roles": [
   {"name": "cryptvol-serve", "max_session_duration": 7200,
    "allow": [{"actions": ["kms:Decrypt", "kms:DescribeKey"], "keys": ["*"]}],
    "trust": [{"principal": "$user_arn"}, {"principal": "$role_hop"},
              {"web_identity": {"issuer": "$iss", "audience": "sts.amazonaws.com",
                                "subject": "$sub"}}]},
   {"name": "cryptvol-ext", "trust": [{"principal": "$user_arn", "external_id": "ext-4711"}]},
   {"name": "cryptvol-hop", "trust": [{"principal": "$user_arn"}]},
   {"name": "cryptvol-short", "test_lifetime_seconds": 6, "trust": [{"principal": "$user_arn"}]},
   {"name": "cryptvol-grantee", "allow": [], "trust": [{"principal": "$user_arn"}]}
 ],
 "oidc_providers": [{"issuer": "$iss", "hs256_key_b64": "$jwt_key",
                     "audiences": ["sts.amazonaws.com"]}],
 "container": {"path": "/v2/credentials/cryptvol", "role": "cryptvol-serve",
               "token": "$container_token"},
 "sso": {"access_token": "$sso_token", "account_id": "$acct", "role_name": "cryptvol-serve"}
 ${1:-}}
EOF
  mv "$tmp/state/config.json.new" "$tmp/state/config.json"
}
write_config ', "instance": {"role": "cryptvol-serve", "region": "us-east-1"}, "grant_propagation_seconds": 3600'

"$PY" "$srcdir/tests/kms/kms-server.py" --state-dir "$tmp/state" \
  --cert "$tmp/ca/server.pem" --key "$tmp/ca/server.key" --port-file "$tmp/port" \
  --imds-port-file "$tmp/imds-port" --container-port-file "$tmp/container-port" \
  >>"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  [ -s "$tmp/port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if ! [ -s "$tmp/port" ] || ! [ -s "$tmp/imds-port" ] || ! [ -s "$tmp/container-port" ]; then
  echo "FAIL: the local AWS did not start"; cat "$tmp/server.log"; exit 1
fi
EP=https://127.0.0.1:$(cat "$tmp/port")
IMDS=http://127.0.0.1:$(cat "$tmp/imds-port")
CONTAINER=http://127.0.0.1:$(cat "$tmp/container-port")

# HOME: the CLI caches assumed-role credentials in ~/.aws/cli/cache.
mkdir -p "$tmp/home"
export HOME=$tmp/home AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_DEFAULT_REGION=us-east-1 AWS_CA_BUNDLE=$tmp/ca/ca.pem
export AWS_PAGER='' AWS_DEFAULT_OUTPUT=json AWS_MAX_ATTEMPTS=1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION \
  AWS_ENDPOINT_URL AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_CONTAINER_CREDENTIALS_FULL_URI \
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_DATA_PATH

# as_admin / as_host / as_creds FILE: run the CLI with those credentials.
as_admin() { AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret "$AWS" --endpoint-url "$EP" "$@"; }
as_host()  { AWS_ACCESS_KEY_ID=$akid_host AWS_SECRET_ACCESS_KEY=$secret_host "$AWS" --endpoint-url "$EP" "$@"; }
as_creds() {  # FILE (an assume-role answer) CLI ARGS...
  local f=$1; shift
  AWS_ACCESS_KEY_ID=$(q 'd["Credentials"]["AccessKeyId"]' <"$f") \
  AWS_SECRET_ACCESS_KEY=$(q 'd["Credentials"]["SecretAccessKey"]' <"$f") \
  AWS_SESSION_TOKEN=$(q 'd["Credentials"]["SessionToken"]' <"$f") \
    "$AWS" --endpoint-url "$EP" "$@"
}
admin_get() { curl -sS --fail --cacert "$tmp/ca/ca.pem" "$EP$1"; }
clear_calls() {  # the calls so far are kept in $tmp/calls.jsonl for the checks at the end
  admin_get /_admin/calls >>"$tmp/calls.jsonl" && echo >>"$tmp/calls.jsonl"
  curl -sS --fail --cacert "$tmp/ca/ca.pem" -X DELETE "$EP/_admin/calls" >/dev/null
}
calls() {  # PYTHON EXPR over the call list c
  admin_get /_admin/calls | "$PY" -c 'import json,sys; c=json.load(sys.stdin)["calls"]; print(eval(sys.argv[1]))' "$1"
}
secrets_seen=("$secret" "$secret_host" "$container_token" "$sso_token" "$jwt_key")
keep_secrets() {  # FILE: remember the secret and token of an STS answer
  secrets_seen+=("$(q 'd["Credentials"]["SecretAccessKey"]' <"$1")"
                 "$(q 'd["Credentials"]["SessionToken"]' <"$1")")
}

# --- a key and a blob to decrypt
key=$(as_admin kms create-key --query KeyMetadata.KeyId --output text)
key_arn=arn:aws:kms:us-east-1:$acct:key/$key
head -c 32 /dev/urandom >"$tmp/dek"
ctx1='{"cryptvol:volume":"vol-a"}'
ctx2='{"cryptvol:volume":"vol-b"}'
as_admin kms encrypt --key-id "$key" --plaintext "fileb://$tmp/dek" --encryption-context "$ctx1" \
  --query CiphertextBlob --output text | base64 -d >"$tmp/blob1"
as_admin kms encrypt --key-id "$key" --plaintext "fileb://$tmp/dek" --encryption-context "$ctx2" \
  --query CiphertextBlob --output text | base64 -d >"$tmp/blob2"
decrypts() {  # RUNNER... -- BLOB CONTEXT [more decrypt args]: decrypts to the DEK
  local run=()
  while [ "$1" != -- ]; do run+=("$1"); shift; done
  shift
  local blob=$1 ctx=$2; shift 2
  "${run[@]}" kms decrypt --ciphertext-blob "fileb://$blob" --encryption-context "$ctx" "$@" \
    --query Plaintext --output text >"$tmp/pt.b64" &&
  base64 -d <"$tmp/pt.b64" | cmp -s - "$tmp/dek"
}

# --- STS: GetCallerIdentity, AssumeRole
out=$(as_admin sts get-caller-identity 2>&1)
if [ "$(q '(d["Account"], d["Arn"], d["UserId"][:4])' <<<"$out" 2>/dev/null)" = "('$acct', '$user_arn', 'AIDA')" ]; then
  ok "sts get-caller-identity: the IAM user test, its account, an AIDA user id"
else
  bad "sts get-caller-identity" "$out"
fi
if as_admin sts assume-role --role-arn "$role" --role-session-name vol-host-1 >"$tmp/ar.json" 2>&1 &&
   [ "$(q 'd["AssumedRoleUser"]["Arn"]' <"$tmp/ar.json")" = "arn:aws:sts::$acct:assumed-role/cryptvol-serve/vol-host-1" ] &&
   q 'd["Credentials"]["AccessKeyId"]' <"$tmp/ar.json" | grep -Eq '^ASIA[A-Z0-9]{16}$' &&
   q 'd["Credentials"]["Expiration"]' <"$tmp/ar.json" | grep -q '^20' &&
   q 'd["AssumedRoleUser"]["AssumedRoleId"]' <"$tmp/ar.json" | grep -q '^AROA.*:vol-host-1$'; then
  ok "sts assume-role: ASIA credentials, an expiration, the assumed-role ARN"
  keep_secrets "$tmp/ar.json"
else
  bad "sts assume-role" "$(cat "$tmp/ar.json")"
fi
out=$(as_creds "$tmp/ar.json" sts get-caller-identity 2>&1)
if [ "$(q '(d["Arn"], d["UserId"].split(":")[1])' <<<"$out" 2>/dev/null)" = "('arn:aws:sts::$acct:assumed-role/cryptvol-serve/vol-host-1', 'vol-host-1')" ]; then
  ok "sts get-caller-identity with the assumed credentials: the session"
else
  bad "get-caller-identity as the session" "$out"
fi
clear_calls
if decrypts as_creds "$tmp/ar.json" -- "$tmp/blob1" "$ctx1" &&
   [ "$(calls 'c[-1]["principal"]')" = "arn:aws:sts::$acct:assumed-role/cryptvol-serve/vol-host-1" ]; then
  ok "kms decrypt with the assumed credentials; the call log names the session"
else
  bad "decrypt as the session" "$(calls 'c')"
fi
expect_error "the role's allow list: no encrypt (AccessDeniedException)" AccessDeniedException \
  as_creds "$tmp/ar.json" kms encrypt --key-id "$key" --plaintext "fileb://$tmp/dek"
expect_error "a session token that is not the one issued: InvalidClientTokenId" InvalidClientTokenId \
  env AWS_ACCESS_KEY_ID="$(q 'd["Credentials"]["AccessKeyId"]' <"$tmp/ar.json")" \
  AWS_SECRET_ACCESS_KEY="$(q 'd["Credentials"]["SecretAccessKey"]' <"$tmp/ar.json")" \
  AWS_SESSION_TOKEN=forged "$AWS" --endpoint-url "$EP" sts get-caller-identity

out=$(as_admin sts assume-role --role-arn "$role_ext" --role-session-name s1 2>&1)
if grep -q "An error occurred (AccessDenied) when calling the AssumeRole operation.*: User: $user_arn is not authorized to perform: sts:AssumeRole on resource: $role_ext" <<<"$out"; then
  ok "assume-role without the required external id: AccessDenied, AWS's message"
else
  bad "assume-role without external id" "$out"
fi
expect_error "assume-role with a wrong external id: AccessDenied" AccessDenied \
  as_admin sts assume-role --role-arn "$role_ext" --role-session-name s1 --external-id ext-0000
check "assume-role with the right --external-id" \
  as_admin sts assume-role --role-arn "$role_ext" --role-session-name s1 --external-id ext-4711
expect_error "assume-role by a principal the trust policy does not name: AccessDenied" \
  AccessDenied as_host sts assume-role --role-arn "$role" --role-session-name s1
expect_error "assume-role of a role that does not exist: AccessDenied" AccessDenied \
  as_admin sts assume-role --role-arn "arn:aws:iam::$acct:role/nope" --role-session-name s1
out=$(as_admin sts assume-role --role-arn "$role" --role-session-name s1 --duration-seconds 7201 2>&1)
if grep -q "(ValidationError).*exceeds the MaxSessionDuration" <<<"$out"; then
  ok "--duration-seconds above max_session_duration: ValidationError"
else
  bad "duration above the maximum" "$out"
fi
check "--duration-seconds 7200 (the role's maximum) is accepted" \
  as_admin sts assume-role --role-arn "$role" --role-session-name s1 --duration-seconds 7200
expect_error "a role session name with a space: ValidationError" ValidationError \
  as_admin sts assume-role --role-arn "$role" --role-session-name "bad name"
expect_error "unsigned assume-role: MissingAuthenticationToken" MissingAuthenticationToken \
  "$AWS" --endpoint-url "$EP" --no-sign-request sts assume-role --role-arn "$role" --role-session-name s1
expect_error "a wrong secret: SignatureDoesNotMatch" SignatureDoesNotMatch \
  env AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="${secret}x" "$AWS" --endpoint-url "$EP" \
  sts get-caller-identity

# role chaining: the hop's session assumes cryptvol-serve (its trust names the hop role)
if as_admin sts assume-role --role-arn "$role_hop" --role-session-name hop >"$tmp/hop.json" 2>&1 &&
   keep_secrets "$tmp/hop.json" &&
   as_creds "$tmp/hop.json" sts assume-role --role-arn "$role" --role-session-name chained \
     >"$tmp/chain.json" 2>&1 && keep_secrets "$tmp/chain.json" &&
   [ "$(as_creds "$tmp/chain.json" sts get-caller-identity --query Arn --output text)" = "arn:aws:sts::$acct:assumed-role/cryptvol-serve/chained" ]; then
  ok "role chaining: temporary credentials assume another role"
else
  bad "role chaining" "$(cat "$tmp/hop.json" "$tmp/chain.json" 2>/dev/null)"
fi
out=$(as_creds "$tmp/hop.json" sts assume-role --role-arn "$role" --role-session-name c1 \
  --duration-seconds 3601 2>&1)
if grep -q "(ValidationError).*1 hour session limit for roles assumed by role chaining" <<<"$out"; then
  ok "role chaining beyond one hour: ValidationError"
else
  bad "role chaining beyond one hour" "$out"
fi

# expiry: cryptvol-short's credentials live 6 s (test_lifetime_seconds)
if as_admin sts assume-role --role-arn "$role_short" --role-session-name short \
     --duration-seconds 900 >"$tmp/short.json" 2>&1; then
  keep_secrets "$tmp/short.json"
  exp=$(q 'd["Credentials"]["Expiration"]' <"$tmp/short.json")
  left=$(( $(date -d "$exp" +%s) - $(date +%s) ))
  if [ "$left" -le 6 ] && [ "$left" -ge 0 ]; then
    ok "test_lifetime_seconds caps the Expiration ($exp, ${left}s away)"
  else
    bad "Expiration not capped" "$exp"
  fi
  check "the short-lived credentials work before they expire" \
    as_creds "$tmp/short.json" kms describe-key --key-id "$key"
  # Wait for the clock to pass the expiry (a deadline, not synchronisation).
  while [ "$(date +%s)" -le "$(( $(date -d "$exp" +%s) ))" ]; do sleep 0.2; done
  expect_error "expired credentials at KMS: ExpiredTokenException" ExpiredTokenException \
    as_creds "$tmp/short.json" kms describe-key --key-id "$key"
  expect_error "expired credentials at STS: ExpiredToken" ExpiredToken \
    as_creds "$tmp/short.json" sts get-caller-identity
else
  bad "assume-role cryptvol-short" "$(cat "$tmp/short.json")"
fi

# --- grants (grant_propagation_seconds 3600 for now)
cons='EncryptionContextEquals={cryptvol:volume=vol-a}'
if as_admin kms create-grant --key-id "$key" --grantee-principal "$host_arn" \
     --operations Decrypt RetireGrant --constraints "$cons" --name vol-a >"$tmp/g1.json" 2>&1 &&
   gid1=$(q 'd["GrantId"]' <"$tmp/g1.json") && tok1=$(q 'd["GrantToken"]' <"$tmp/g1.json") &&
   [[ $gid1 =~ ^[0-9a-f]{64}$ ]] && [ -n "$tok1" ]; then
  ok "kms create-grant: a GrantId and a GrantToken"
else
  bad "create-grant" "$(cat "$tmp/g1.json")"; gid1=none tok1=none
fi
if [ "$(as_admin kms create-grant --key-id "$key" --grantee-principal "$host_arn" \
        --operations Decrypt RetireGrant --constraints "$cons" --name vol-a \
        --query GrantId --output text 2>&1)" = "$gid1" ]; then
  ok "create-grant again with the same name and parameters: the same grant"
else
  bad "create-grant is not idempotent"
fi
out=$(as_admin kms list-grants --key-id "$key" 2>&1)
if [ "$(q '[(g["KeyId"], g["GrantId"], g["Name"], g["GranteePrincipal"], g["IssuingAccount"], sorted(g["Operations"]), g["Constraints"]) for g in d["Grants"]]' <<<"$out" 2>/dev/null)" = "[('$key_arn', '$gid1', 'vol-a', '$host_arn', 'arn:aws:iam::$acct:root', ['Decrypt', 'RetireGrant'], {'EncryptionContextEquals': {'cryptvol:volume': 'vol-a'}})]" ] &&
   q 'd["Grants"][0]["CreationDate"]' <<<"$out" | grep -q '^20'; then
  ok "kms list-grants: one grant, as AWS lists it"
else
  bad "list-grants" "$out"
fi
expect_error "during propagation, decrypt without the grant token: AccessDeniedException" \
  AccessDeniedException as_host kms decrypt --ciphertext-blob "fileb://$tmp/blob1" \
  --encryption-context "$ctx1"
if decrypts as_host -- "$tmp/blob1" "$ctx1" --grant-tokens "$tok1"; then
  ok "during propagation, decrypt with --grant-tokens works"
else
  bad "decrypt with the grant token" "$(cat "$tmp/pt.b64")"
fi
expect_error "the grant's constraint: another volume's context is refused" \
  AccessDeniedException as_host kms decrypt --ciphertext-blob "fileb://$tmp/blob2" \
  --encryption-context "$ctx2" --grant-tokens "$tok1"
expect_error "the grant allows Decrypt only: encrypt is refused" AccessDeniedException \
  as_host kms encrypt --key-id "$key" --plaintext "fileb://$tmp/dek" --encryption-context "$ctx1" \
  --grant-tokens "$tok1"
expect_error "a malformed grant token: InvalidGrantTokenException" InvalidGrantTokenException \
  as_host kms decrypt --ciphertext-blob "fileb://$tmp/blob1" --encryption-context "$ctx1" \
  --grant-tokens bm90LWEtdG9rZW4=
write_config ', "instance": {"role": "cryptvol-serve", "region": "us-east-1"}, "grant_propagation_seconds": 0'
if decrypts as_host -- "$tmp/blob1" "$ctx1"; then
  ok "once propagated, the grant works without its token"
else
  bad "decrypt after propagation" "$(cat "$tmp/pt.b64")"
fi
# a grant to a role works for each of its sessions
as_admin kms create-grant --key-id "$key" --grantee-principal "$role_grantee" \
  --operations Decrypt --constraints 'EncryptionContextSubset={cryptvol:volume=vol-b}' \
  --name vol-b-role --query GrantId --output text >"$tmp/gid2" 2>&1
gid2=$(cat "$tmp/gid2")
as_admin sts assume-role --role-arn "$role_grantee" --role-session-name g1 >"$tmp/ge.json" 2>&1
keep_secrets "$tmp/ge.json"
if decrypts as_creds "$tmp/ge.json" -- "$tmp/blob2" "$ctx2"; then
  ok "a grant to a role: its assumed-role session decrypts (Subset constraint)"
else
  bad "grant to a role" "$(cat "$tmp/gid2" "$tmp/ge.json" "$tmp/pt.b64")"
fi
expect_error "the same session, another volume: AccessDeniedException" AccessDeniedException \
  as_creds "$tmp/ge.json" kms decrypt --ciphertext-blob "fileb://$tmp/blob1" --encryption-context "$ctx1"
n=$(as_admin kms list-grants --key-id "$key" --page-size 1 --query 'length(Grants)' 2>&1)
if [ "$n" = 2 ]; then ok "list-grants one per page (Limit/Marker): both grants"; else bad "paged list-grants" "$n"; fi
out=$(as_admin kms list-grants --key-id "$key" --grantee-principal "$role_grantee" --query 'Grants[].GrantId' --output text 2>&1)
if [ "$out" = "$gid2" ]; then ok "list-grants --grantee-principal filters"; else bad "list-grants filter" "$out"; fi
expect_error "retire-grant by someone who is neither retiring principal nor grantee: AccessDeniedException" \
  AccessDeniedException as_creds "$tmp/ge.json" kms retire-grant --grant-token "$tok1"
if as_host kms retire-grant --grant-token "$tok1" >/dev/null 2>&1 &&
   [ "$(as_admin kms list-grants --key-id "$key" --query 'Grants[].GrantId' --output text)" = "$gid2" ]; then
  ok "kms retire-grant by the grantee (the grant has RetireGrant): the grant is gone"
else
  bad "retire-grant"
fi
expect_error "a retired grant's token grants nothing: AccessDeniedException" AccessDeniedException \
  as_host kms decrypt --ciphertext-blob "fileb://$tmp/blob1" --encryption-context "$ctx1" \
  --grant-tokens "$tok1"
if as_admin kms revoke-grant --key-id "$key" --grant-id "$gid2" >/dev/null 2>&1 &&
   [ "$(as_admin kms list-grants --key-id "$key" --query 'length(Grants)')" = 0 ]; then
  ok "kms revoke-grant: no grant left"
else
  bad "revoke-grant"
fi
expect_error "after revoke-grant, the role's session may not decrypt" AccessDeniedException \
  as_creds "$tmp/ge.json" kms decrypt --ciphertext-blob "fileb://$tmp/blob2" --encryption-context "$ctx2"
expect_error "revoke-grant of an unknown grant: NotFoundException" NotFoundException \
  as_admin kms revoke-grant --key-id "$key" --grant-id "$gid2"
expect_error "a grantee may not list grants: AccessDeniedException" AccessDeniedException \
  as_host kms list-grants --key-id "$key"
# a grant with CreateGrant lets its grantee pass on no more than it has
as_admin kms create-grant --key-id "$key" --grantee-principal "$host_arn" \
  --operations CreateGrant Decrypt --constraints 'EncryptionContextSubset={cryptvol:volume=vol-a}' \
  --name delegate >/dev/null
check "a grantee with CreateGrant creates a grant as strict as its own" \
  as_host kms create-grant --key-id "$key" --grantee-principal "$role_grantee" --operations Decrypt \
  --constraints 'EncryptionContextEquals={cryptvol:volume=vol-a,cryptvol:slot=1}'
expect_error "... but not one with an operation it lacks" AccessDeniedException \
  as_host kms create-grant --key-id "$key" --grantee-principal "$role_grantee" --operations Encrypt \
  --constraints 'EncryptionContextSubset={cryptvol:volume=vol-a}'
expect_error "... nor one without its constraint" AccessDeniedException \
  as_host kms create-grant --key-id "$key" --grantee-principal "$role_grantee" --operations Decrypt

# --- IMDSv2
imds_put() { curl -s -o "$tmp/imds.out" -w '%{http_code}' -X PUT "$@" "$IMDS/latest/api/token"; }
imds_get() { curl -s -o "$tmp/imds.out" -w '%{http_code}' "$@"; }
[ "$(imds_put -H 'X-aws-ec2-metadata-token-ttl-seconds: 0')" = 400 ] &&
[ "$(imds_put -H 'X-aws-ec2-metadata-token-ttl-seconds: 21601')" = 400 ] &&
[ "$(imds_put)" = 400 ] && ok "IMDS token PUT: TTL missing, 0 or 21601: 400" || bad "IMDS TTL bounds"
[ "$(imds_put -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' -H 'X-Forwarded-For: 10.0.0.1')" = 403 ] &&
  ok "IMDS token PUT with X-Forwarded-For: 403" || bad "IMDS X-Forwarded-For"
[ "$(imds_get "$IMDS/latest/meta-data/iam/security-credentials/")" = 401 ] &&
[ "$(imds_get -H 'X-aws-ec2-metadata-token: forged' "$IMDS/latest/meta-data/iam/security-credentials/")" = 401 ] &&
  ok "IMDS GET without a token or with a forged one: 401 (IMDSv2 required)" || bad "IMDSv2 required"
imds_put -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' >/dev/null
itok=$(cat "$tmp/imds.out")
if [ "$(imds_get -H "X-aws-ec2-metadata-token: $itok" "$IMDS/latest/meta-data/iam/security-credentials/")" = 200 ] &&
   [ "$(cat "$tmp/imds.out")" = cryptvol-serve ] &&
   [ "$(imds_get -H "X-aws-ec2-metadata-token: $itok" "$IMDS/latest/meta-data/iam/security-credentials/cryptvol-serve")" = 200 ] &&
   [ "$(q '(d["Code"], d["Type"], d["AccessKeyId"][:4], sorted(d))' <"$tmp/imds.out")" = "('Success', 'AWS-HMAC', 'ASIA', ['AccessKeyId', 'Code', 'Expiration', 'LastUpdated', 'SecretAccessKey', 'Token', 'Type'])" ] &&
   [ "$(imds_get -H "X-aws-ec2-metadata-token: $itok" "$IMDS/latest/meta-data/placement/region")" = 200 ] &&
   [ "$(cat "$tmp/imds.out")" = us-east-1 ]; then
  ok "IMDS: the role list, the role's credentials (AWS's fields), placement/region"
  secrets_seen+=("$(q 'd["SecretAccessKey"]' <"$tmp/imds.out" 2>/dev/null)" "$(q 'd["Token"]' <"$tmp/imds.out" 2>/dev/null)")
else
  bad "IMDS metadata" "$(cat "$tmp/imds.out")"
fi
imds_put -H 'X-aws-ec2-metadata-token-ttl-seconds: 1' >/dev/null
itok1=$(cat "$tmp/imds.out")
t_end=$(( $(date +%s) + 10 ))
while [ "$(imds_get -H "X-aws-ec2-metadata-token: $itok1" "$IMDS/latest/meta-data/placement/region")" = 200 ] &&
      [ "$(date +%s)" -lt "$t_end" ]; do sleep 0.2; done
[ "$(imds_get -H "X-aws-ec2-metadata-token: $itok1" "$IMDS/latest/meta-data/placement/region")" = 401 ] &&
  ok "an IMDS token with TTL 1 expires (then 401)" || bad "IMDS token expiry"
clear_calls
out=$(env AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS/" \
  "$AWS" --endpoint-url "$EP" sts get-caller-identity --query Arn --output text 2>&1)
if [ "$out" = "arn:aws:sts::$acct:assumed-role/cryptvol-serve/i-0c0ffee0c0ffee000" ] &&
   [ "$(calls '" ".join(sorted(set(x["op"] for x in c)))')" = "imds:credentials imds:metadata imds:token sts:GetCallerIdentity" ]; then
  ok "the CLI takes instance role credentials from the local IMDSv2"
else
  bad "CLI from IMDS" "$out" "$(calls '[x["op"] for x in c]')"
fi
write_config ', "grant_propagation_seconds": 0'
[ "$(imds_get -H "X-aws-ec2-metadata-token: $itok" "$IMDS/latest/meta-data/iam/security-credentials/")" = 404 ] &&
  ok "IMDS without an instance role: the role list is 404" || bad "IMDS without a role"
out=$(env AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT="$IMDS/" \
  "$AWS" --endpoint-url "$EP" sts get-caller-identity 2>&1)
if grep -q "Unable to locate credentials" <<<"$out"; then
  ok "the CLI on an instance without a role: Unable to locate credentials"
else
  bad "CLI on an instance without a role" "$out"
fi

# --- the container credentials endpoint
curi=$CONTAINER/v2/credentials/cryptvol
[ "$(curl -s -o "$tmp/c.out" -w '%{http_code}' "$curi")" = 401 ] &&
[ "$(curl -s -o "$tmp/c.out" -w '%{http_code}' -H 'Authorization: forged' "$curi")" = 403 ] &&
  ok "container endpoint: no Authorization 401, a wrong one 403" || bad "container auth"
if [ "$(curl -s -o "$tmp/c.out" -w '%{http_code}' -H "Authorization: $container_token" "$curi")" = 200 ] &&
   [ "$(q '(sorted(d), d["RoleArn"])' <"$tmp/c.out")" = "(['AccessKeyId', 'Expiration', 'RoleArn', 'SecretAccessKey', 'Token'], '$role')" ]; then
  ok "container endpoint: the role's credentials with AWS's fields"
  secrets_seen+=("$(q 'd["SecretAccessKey"]' <"$tmp/c.out")" "$(q 'd["Token"]' <"$tmp/c.out")")
else
  bad "container credentials" "$(cat "$tmp/c.out")"
fi
out=$(env AWS_CONTAINER_CREDENTIALS_FULL_URI="$curi" AWS_CONTAINER_AUTHORIZATION_TOKEN="$container_token" \
  "$AWS" --endpoint-url "$EP" sts get-caller-identity --query Arn --output text 2>&1)
if [ "$out" = "arn:aws:sts::$acct:assumed-role/cryptvol-serve/cryptvol-container" ]; then
  ok "the CLI takes credentials from the container endpoint (FULL_URI + token)"
else
  bad "CLI from the container endpoint" "$out"
fi
if ! env AWS_CONTAINER_CREDENTIALS_FULL_URI="$curi" AWS_CONTAINER_AUTHORIZATION_TOKEN=forged \
     "$AWS" --endpoint-url "$EP" sts get-caller-identity >/dev/null 2>&1; then
  ok "the CLI with a wrong container token gets no credentials"
else
  bad "the CLI with a wrong container token succeeded"
fi

# --- web identity
mkjwt() { "$PY" "$srcdir/tests/kms/make-jwt.py" --key-b64 "$jwt_key" --iss "$iss" "$@"; }
mkjwt --sub "$sub" --aud sts.amazonaws.com --ttl 600 >"$tmp/jwt"
mkjwt --sub "$sub" --aud sts.amazonaws.com --ttl -60 >"$tmp/jwt-expired"
mkjwt --sub system:serviceaccount:other:sa --aud sts.amazonaws.com --ttl 600 >"$tmp/jwt-other"
mkjwt --sub "$sub" --aud someone-else --ttl 600 >"$tmp/jwt-aud"
"$PY" "$srcdir/tests/kms/make-jwt.py" --key-b64 "$(head -c 32 /dev/urandom | base64)" \
  --iss "$iss" --sub "$sub" --aud sts.amazonaws.com --ttl 600 >"$tmp/jwt-badsig"
wi() {  # JWT FILE: aws sts assume-role-with-web-identity (unsigned)
  "$AWS" --endpoint-url "$EP" sts assume-role-with-web-identity --role-arn "$role" \
    --role-session-name pod-1 --web-identity-token "$(cat "$1")"
}
out=$(wi "$tmp/jwt" 2>&1)
if [ "$(q '(d["AssumedRoleUser"]["Arn"], d["SubjectFromWebIdentityToken"], d["Audience"], d["Credentials"]["AccessKeyId"][:4])' <<<"$out" 2>/dev/null)" = "('arn:aws:sts::$acct:assumed-role/cryptvol-serve/pod-1', '$sub', 'sts.amazonaws.com', 'ASIA')" ]; then
  ok "sts assume-role-with-web-identity: the session, subject and audience"
  secrets_seen+=("$(q 'd["Credentials"]["SecretAccessKey"]' <<<"$out")" "$(q 'd["Credentials"]["SessionToken"]' <<<"$out")")
else
  bad "assume-role-with-web-identity" "$out"
fi
expect_error "an expired web identity token: ExpiredTokenException" ExpiredTokenException wi "$tmp/jwt-expired"
expect_error "a token signed with another key: InvalidIdentityToken" InvalidIdentityToken wi "$tmp/jwt-badsig"
expect_error "a token for another audience: InvalidIdentityToken" InvalidIdentityToken wi "$tmp/jwt-aud"
expect_error "a subject the trust policy does not name: AccessDenied" AccessDenied wi "$tmp/jwt-other"
echo "not a jwt" >"$tmp/jwt-garbage"
expect_error "a token that is not a JWT: InvalidIdentityToken" InvalidIdentityToken wi "$tmp/jwt-garbage"

# The CLI's own web identity provider: its STS endpoint comes from the rule set
# in AWS_DATA_PATH (see the comment at the top).
ruleset=$("$PY" -c 'import awscli.botocore, os; print(os.path.dirname(awscli.botocore.__file__))')/data/sts/2011-06-15/endpoint-rule-set-1.json
mkdir -p "$tmp/models/sts/2011-06-15"
"$PY" - "$ruleset" "$EP" "$tmp/models/sts/2011-06-15/endpoint-rule-set-1.json" <<'EOF'
import json, sys
rs = json.load(open(sys.argv[1]))
rs["rules"] = [{"conditions": [], "type": "endpoint",
                "endpoint": {"url": sys.argv[2], "properties": {}, "headers": {}}}]
json.dump(rs, open(sys.argv[3], "w"))
EOF
clear_calls
out=$(env AWS_DATA_PATH="$tmp/models" AWS_WEB_IDENTITY_TOKEN_FILE="$tmp/jwt" AWS_ROLE_ARN="$role" \
  AWS_ROLE_SESSION_NAME=pod-cli "$AWS" sts get-caller-identity --query Arn --output text 2>&1)
if [ "$out" = "arn:aws:sts::$acct:assumed-role/cryptvol-serve/pod-cli" ] &&
   [ "$(calls '[x["op"] for x in c]')" = "['sts:AssumeRoleWithWebIdentity', 'sts:GetCallerIdentity']" ]; then
  ok "the CLI takes credentials from a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN)"
else
  bad "CLI from a web identity token" "$out" "$(calls '[x["op"] for x in c]')"
fi
out=$(env AWS_DATA_PATH="$tmp/models" AWS_WEB_IDENTITY_TOKEN_FILE="$tmp/jwt-expired" AWS_ROLE_ARN="$role" \
  "$AWS" sts get-caller-identity 2>&1)
if grep -q "ExpiredTokenException" <<<"$out"; then
  ok "the CLI with an expired web identity token reports ExpiredTokenException"
else
  bad "CLI with an expired web identity token" "$out"
fi

# --- the SSO portal
out=$("$AWS" --endpoint-url "$EP" sso get-role-credentials --access-token "$sso_token" \
  --account-id "$acct" --role-name cryptvol-serve 2>&1)
if [ "$(q '(sorted(d["roleCredentials"]), d["roleCredentials"]["accessKeyId"][:4], d["roleCredentials"]["expiration"] > 10**12)' <<<"$out" 2>/dev/null)" = "(['accessKeyId', 'expiration', 'secretAccessKey', 'sessionToken'], 'ASIA', True)" ]; then
  ok "aws sso get-role-credentials: roleCredentials, expiration in ms"
  secrets_seen+=("$(q 'd["roleCredentials"]["secretAccessKey"]' <<<"$out")" "$(q 'd["roleCredentials"]["sessionToken"]' <<<"$out")")
else
  bad "sso get-role-credentials" "$out"
fi
expect_error "sso with a bad access token: UnauthorizedException" UnauthorizedException \
  "$AWS" --endpoint-url "$EP" sso get-role-credentials --access-token forged \
  --account-id "$acct" --role-name cryptvol-serve
expect_error "sso for a role not assigned: ForbiddenException" ForbiddenException \
  "$AWS" --endpoint-url "$EP" sso get-role-credentials --access-token "$sso_token" \
  --account-id "$acct" --role-name cryptvol-hop

# --- faults aimed at non-KMS operations by name
fault() { curl -sS --fail --cacert "$tmp/ca/ca.pem" -X POST -d "$1" "$EP/_admin/fault" >/dev/null; }
fault '{"error500": 1, "ops": ["container:credentials"]}'
if [ "$(curl -s -o "$tmp/c.out" -w '%{http_code}' -H "Authorization: $container_token" "$curi")" = 500 ] &&
   [ "$(curl -s -o "$tmp/c.out" -w '%{http_code}' -H "Authorization: $container_token" "$curi")" = 200 ]; then
  ok "a fault aimed at container:credentials: one 500, then credentials"
else
  bad "container fault" "$(cat "$tmp/c.out")"
fi
clear_calls
fault '{"throttle": 1, "ops": ["sts:GetCallerIdentity"]}'
out=$(AWS_MAX_ATTEMPTS=2 as_admin sts get-caller-identity --query Arn --output text 2>&1)
if [ "$out" = "$user_arn" ] &&
   [ "$(calls '[(x["op"], x["result"], x["status"]) for x in c]')" = "[('sts:GetCallerIdentity', 'Throttling', 400), ('sts:GetCallerIdentity', 'ok', 200)]" ]; then
  ok "STS Throttling (a named fault): the CLI retries and succeeds"
else
  bad "STS throttling" "$out" "$(calls '[(x["op"], x["result"]) for x in c]')"
fi
fault '{"throttle": 1}'
if as_admin sts get-caller-identity >/dev/null 2>&1; then
  ok "a fault without ops is for KMS calls: STS is not throttled"
else
  bad "an unnamed fault hit STS"
fi
expect_error "... and the next KMS call is" ThrottlingException as_admin kms describe-key --key-id "$key"

# --- the call log and the server's output
clear_calls
all_calls() {  # PYTHON EXPR over every call of the test, c
  "$PY" -c 'import json,sys; c=[x for l in open(sys.argv[1]) if l.strip() for x in json.loads(l)["calls"]]; print(eval(sys.argv[2]))' "$tmp/calls.jsonl" "$1"
}
missing=$(all_calls 'sum(1 for x in c if "principal" not in x)')
ops=$(all_calls '" ".join(sorted(set(x["op"] for x in c if ":" in x["op"])))')
if [ "$missing" = 0 ] && [ "$ops" = "container:credentials imds:credentials imds:metadata imds:token sso:GetRoleCredentials sts:AssumeRole sts:AssumeRoleWithWebIdentity sts:GetCallerIdentity" ]; then
  ok "the call log: every call with a principal; op names for STS, IMDS, container, SSO"
else
  bad "the call log" "missing principal: $missing" "ops: $ops"
fi
leaks=0
for s in "${secrets_seen[@]}"; do
  [ -n "$s" ] || continue
  if grep -qF -e "$s" "$tmp/server.log" "$tmp/calls.jsonl"; then leaks=$((leaks + 1)); fi
done
if [ "$leaks" = 0 ] && [ "${#secrets_seen[@]}" -ge 20 ]; then
  ok "no secret, session token or bearer token in the call log or on stderr (${#secrets_seen[@]} checked)"
else
  bad "secrets leaked: $leaks of ${#secrets_seen[@]}"
fi

kill -TERM "$pid" && wait "$pid"
rc=$?
pid=
if [ "$rc" = 0 ] && ! [ -e "$tmp/imds-port" ] && ! [ -e "$tmp/container-port" ]; then
  ok "SIGTERM: exit 0, the port files removed"
else
  bad "shutdown" "exit $rc"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
