#!/bin/bash
# SSO profiles against the local AWS's SSO portal, beyond what
# test-kms-identity.sh covers: a legacy profile (sso_start_url in the
# profile, its cache file named by the URL's SHA-1), and each way the token
# or the role is refused, with its message: the portal refuses the cached
# token (401), the role is not assigned (403), the cached token expired
# (also written the older CLI's way, "...UTC"), the portal failing,
# throttling or dropping the connection. The token is never printed.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/aws-lib.sh"
requires nbdkit nbdinfo curl jq openssl sha1sum

ACCT=111122223333
akid=AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+')
sso_token=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+')
mkdir -p state
cat >state/config.json <<EOF
{"account_id": "$ACCT", "regions": ["us-east-1"],
 "credentials": [{"access_key_id": "$akid", "secret_access_key": "$secret", "user": "admin"}],
 "roles": [{"name": "cv-sso", "trust": [],
            "allow": [{"actions": ["kms:Decrypt"], "keys": ["*"]}]}],
 "sso": {"access_token": "$sso_token", "account_id": "$ACCT", "role_name": "cv-sso"}}
EOF
local_aws_start state

local_aws_env
export HOME=$tmp/home AWS_CA_BUNDLE=$CA AWS_ENDPOINT_URL_KMS=$EP AWS_ENDPOINT_URL_SSO=$EP
mkdir -p "$HOME/.aws/sso/cache"

local_aws_signer "$akid" "$secret"
key=$(kms CreateKey '{"Description": "cryptvol sso test"}' | jq -r .KeyMetadata.KeyId)
AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret "$KEYMGR" create vol --size 8M \
  --wrap "kms:arn:aws:kms:us-east-1:$ACCT:key/$key" >/dev/null || fail "create"

legacy_url=https://legacy.awsapps.com/start
cat >"$HOME/.aws/config" <<EOF
[profile legacy]
sso_start_url = $legacy_url
sso_region = us-east-1
sso_account_id = $ACCT
sso_role_name = cv-sso
[profile unassigned]
sso_session = corp
sso_account_id = $ACCT
sso_role_name = cv-other
[profile corp]
sso_session = corp
sso_account_id = $ACCT
sso_role_name = cv-sso
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1
EOF
cache () {  # KEY TOKEN EXPIRES: the CLI's cache file for KEY
  local hash
  hash=$(printf %s "$1" | sha1sum | cut -d' ' -f1)
  printf '{"accessToken": "%s", "expiresAt": "%s"}\n' "$2" "$3" \
    >"$HOME/.aws/sso/cache/$hash.json"
}
later=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)

refuses () {  # WHAT PATTERN PROFILE
  expect_fail "$1" "$2" env AWS_PROFILE="$3" nbdkit -U - "$PLUGIN" vol --run true
  ! grep -Fq -e "$sso_token" -e "$secret" "$tmp/err" || fail "$1: a secret was printed"
}

cache "$legacy_url" "$sso_token" "$later"
AWS_PROFILE=legacy nbdkit -U - "$PLUGIN" vol --run 'nbdinfo --size "$uri"' >/dev/null 2>err ||
  { cat err; fail "a legacy SSO profile did not unlock"; }
! grep -Fq "$sso_token" err || fail "the token was printed"
pass "a legacy SSO profile (sso_start_url): the cache file of the URL's SHA-1"

cache corp "not-the-token" "$later"
refuses "a token the portal refuses" \
  "AWS profile corp: the SSO portal refused the cached token \(HTTP 401.*\); run \`aws sso login --profile corp\`" corp
cache corp "$sso_token" "$later"
refuses "a role not assigned" \
  "AWS profile unassigned: the SSO portal refused role cv-other in account $ACCT \(HTTP 403.*check sso_account_id and sso_role_name" \
  unassigned
cache corp "$sso_token" 2020-01-01T00:00:00UTC
refuses "an expired token (the older CLI's UTC suffix)" \
  "AWS profile corp: the SSO token cached in .* expired at 2020-01-01T00:00:00Z; run \`aws sso login --profile corp\`" corp

# The portal unavailable: retried as the SDKs retry (3 attempts); when every
# attempt fails, 500 and throttled (429) say to try again.
cache corp "$sso_token" "$later"
admin -X POST -d '{"error500": 3, "ops": ["sso:GetRoleCredentials"]}' "$EP/_admin/fault" >/dev/null
refuses "the portal failing (500, 3 attempts)" \
  "AWS profile corp: the SSO portal at $EP/ failed \(HTTP 500: .*; request id .*\); try again later" corp
admin -X POST -d '{"throttle": 3, "ops": ["sso:GetRoleCredentials"]}' "$EP/_admin/fault" >/dev/null
refuses "the portal throttling (429, 3 attempts)" "the SSO portal at .* failed \(HTTP 429: .*\); try again later" corp
admin -X POST -d '{"drop": 3, "ops": ["sso:GetRoleCredentials"]}' "$EP/_admin/fault" >/dev/null
refuses "the portal dropping the connection (3 attempts)" "AWS profile corp: cannot reach the SSO portal at $EP/" corp
admin -X POST -d '{"error500": 1, "ops": ["sso:GetRoleCredentials"]}' "$EP/_admin/fault" >/dev/null
admin -X POST -d '{"drop": 1, "ops": ["sso:GetRoleCredentials"]}' "$EP/_admin/fault" >/dev/null
AWS_PROFILE=corp nbdkit -U - "$PLUGIN" vol --run 'nbdinfo --size "$uri"' >/dev/null 2>err ||
  { cat err; fail "a 500 and a dropped connection were not retried"; }
pass "a 500 and a dropped connection from the portal are retried"
AWS_PROFILE=corp nbdkit -U - "$PLUGIN" vol --run 'nbdinfo --size "$uri"' >/dev/null 2>err ||
  { cat err; fail "the session profile did not unlock once the portal is back"; }
pass "an sso-session profile unlocks once the portal answers again"
