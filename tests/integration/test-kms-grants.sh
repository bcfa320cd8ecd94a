#!/bin/bash
# KMS grants end to end against the local KMS (tests/kms/kms-server.py):
# cryptvol-keymgr grant makes a grant on a volume's key for one principal,
# limited to the volume's encryption context; a grantee whose own policy has
# no kms:Decrypt unlocks that volume and not another one on the same key;
# grants lists them, revoke-grant and retire-grant (by id and by token) end
# them; with grant_propagation_seconds large, the grantee unlocks with
# kms-grant-token= (plugin) / --kms-grant-token (keymgr) and not without;
# RevokeGrant makes a running server with a key watch revoke, and a new
# grant brings it back at the watch's next check. The AWS CLI lists and
# retires cryptvol's grants, and cryptvol lists and revokes the CLI's. Bad
# input, missing permissions and an endpoint that pages in a loop are
# refused with the messages checked.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/keywatch-lib.sh"
requires nbdkit nbdsh nbdinfo curl jq openssl
HARD=30

start_kms
ACCT=111122223333
rnd () { head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F; }
H1=AKIA$(rnd) H2=AKIA$(rnd) NP=AKIA$(rnd)
HOST1=arn:aws:iam::$ACCT:user/host1 HOST2=arn:aws:iam::$ACCT:user/host2
ADMIN=arn:aws:iam::$ACCT:user/test
# config PROPAGATION_SECONDS: the admin (may do anything), two storage hosts
# whose own policy allows nothing (only grants let them in), and an operator
# who may unlock and list keys but not manage grants. The server re-reads
# the file when it changes.
config () {
  cat >"$tmp/kms-state/config.json.new" <<EOF
{"account_id": "$ACCT", "regions": ["us-east-1"],
 "grant_propagation_seconds": $1,
 "credentials": [
   {"access_key_id": "$KMS_AKID", "secret_access_key": "$KMS_SECRET"},
   {"access_key_id": "$H1", "secret_access_key": "$KMS_SECRET", "user": "host1", "allow": []},
   {"access_key_id": "$H2", "secret_access_key": "$KMS_SECRET", "user": "host2", "allow": []},
   {"access_key_id": "$NP", "secret_access_key": "$KMS_SECRET", "user": "ops",
    "allow": [{"actions": ["kms:Decrypt", "kms:DescribeKey"], "keys": ["*"]}]}
 ]}
EOF
  mv "$tmp/kms-state/config.json.new" "$tmp/kms-state/config.json"
}
config 0
key1=$(new_key)
KM=(--kms-endpoint "$EP" --ca-bundle "$CA")
KP=(kms-endpoint="$EP" ca-bundle="$CA")
"$KEYMGR" create vol1 --size 16M --wrap "kms:$(key_arn "$key1")" "${KM[@]}" >/dev/null
"$KEYMGR" create vol2 --size 16M --wrap "kms:$(key_arn "$key1")" "${KM[@]}" >/dev/null
new_volume filevol 16M
uuid1=$("$KEYMGR" info vol1 --json | jq -r .volume.uuid)
uuid2=$("$KEYMGR" info vol2 --json | jq -r .volume.uuid)
as () { local k=$1; shift; env AWS_ACCESS_KEY_ID="$k" "$@"; }

# opens AKID VOLUME [params...] / refused AKID WHAT PATTERN VOLUME [params...]
opens () {
  local k=$1 v=$2; shift 2
  as "$k" nbdkit -U - "$PLUGIN" "$v" "${KP[@]}" "$@" --run 'nbdinfo --size "$uri"' >/dev/null 2>"$tmp/open.err" ||
    { cat "$tmp/open.err"; fail "$v did not open with $k's credentials"; }
}
refused () {
  local k=$1 what=$2 pattern=$3 v=$4; shift 4
  rm -f ran
  expect_fail "$what" "$pattern" env AWS_ACCESS_KEY_ID="$k" \
    nbdkit -U - "$PLUGIN" "$v" "${KP[@]}" "$@" --run 'touch ran'
  [ ! -e ran ] || fail "$what: nbdkit served $v"
}

# --- bad input ------------------------------------------------------------------
expect_fail "grantee not an ARN" 'error: --grantee: "host1" is not an AWS principal ARN; give arn:aws:iam::ACCOUNT:role/NAME' \
  "$KEYMGR" grant vol1 --grantee host1 "${KM[@]}"
expect_fail "grantee a KMS key ARN" 'is not an AWS principal ARN' \
  "$KEYMGR" grant vol1 --grantee "$(key_arn "$key1")" "${KM[@]}"
expect_fail "bad retiring principal" 'error: --retiring-principal: "x" is not an AWS principal ARN' \
  "$KEYMGR" grant vol1 --grantee "$HOST1" --retiring-principal x "${KM[@]}"
expect_fail "no --grantee" 'grant needs --grantee ARN' "$KEYMGR" grant vol1 "${KM[@]}"
expect_fail "no kms wrap" 'filevol has no kms wrap: grants are made on the KMS key of a kms wrap' \
  "$KEYMGR" grant filevol --grantee "$HOST1" "${KM[@]}"
expect_fail "grants of a volume with no kms wrap" 'filevol has no kms wrap' "$KEYMGR" grants filevol "${KM[@]}"
expect_fail "--wrap of a file wrap" 'wrap 0 of filevol is not a kms wrap with a key ARN \(file\)' \
  "$KEYMGR" grant filevol --grantee "$HOST1" --wrap 0 "${KM[@]}"
expect_fail "no such wrap" 'vol1 has no wrap 5' "$KEYMGR" grant vol1 --grantee "$HOST1" --wrap 5 "${KM[@]}"
expect_fail "not a grant id" '"x;y" is not a KMS grant id' "$KEYMGR" revoke-grant vol1 'x;y' "${KM[@]}"
unknown=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
expect_fail "unknown grant id" "vol1: no grant $unknown on the key $(key_arn "$key1"); list the volume's grants with cryptvol-keymgr grants vol1" \
  "$KEYMGR" revoke-grant vol1 "$unknown" "${KM[@]}"
expect_fail "retire-grant with neither" "retire-grant needs the grant's token .* or its id" \
  "$KEYMGR" retire-grant vol1 "${KM[@]}"
echo 'not a token' >badtok
expect_fail "a grant token file that holds no token" 'error: --grant-token: not a KMS grant token' \
  "$KEYMGR" retire-grant vol1 --grant-token +badtok "${KM[@]}"
expect_fail "plugin: kms-grant-token= that is no token" 'kms-grant-token=: not a KMS grant token' \
  nbdkit -U - "$PLUGIN" vol1 kms-grant-token=+badtok --run true
[ "$(count_calls 'select(.op | test("Grant"))')" = 1 ] ||
  fail "bad input reached KMS: $(admin "$EP/_admin/calls" | jq -c '[.calls[].op]')"

# --- missing permission -------------------------------------------------------------
expect_fail "CreateGrant not allowed" "kms CreateGrant for vol1 wrap 0: key $(key_arn "$key1") may not be used with these credentials \(AccessDeniedException.*the key policy does not allow kms:CreateGrant for this caller: add the statement of the Grants section of doc/kms.md" \
  as "$NP" "$KEYMGR" grant vol1 --grantee "$HOST1" "${KM[@]}"
expect_fail "ListGrants not allowed" "kms ListGrants for vol1 wrap 0: .*the key policy does not allow kms:ListGrants" \
  as "$NP" "$KEYMGR" grants vol1 "${KM[@]}"

# --- a grantee unlocks only its grant's volume ----------------------------------------
refused "$H1" "host1 before any grant" "key $(key_arn "$key1") may not be used with these credentials \(AccessDeniedException.*or the grant that allowed it was revoked or retired" vol1
grep -q "cannot unlock volume [^ ]*vol1: .*access to the key denied (the key policy denies it, or the grant that allowed it was revoked or retired)" "$tmp/err" ||
  { cat "$tmp/err"; fail "the summary does not say policy or grant"; }
clear_calls
"$KEYMGR" grant vol1 --grantee "$HOST1" --token-file tok1 "${KM[@]}" >grant.out || fail "keymgr grant"
cat grant.out
gid1=$(sed -n 's/^vol1: wrap 0 (key [^)]*): grant \([0-9a-f]*\) for .*/\1/p' grant.out)
[ -n "$gid1" ] || fail "grant did not print the grant id"
grep -q "grant $gid1 for $HOST1 (Decrypt on volume $uuid1)" grant.out || fail "grant's line"
grep -q "grant token written to tok1 (mode 0600)" grant.out || fail "token file not said"
[ "$(stat -c %a tok1)" = 600 ] || fail "the token file's mode is $(stat -c %a tok1)"
[ -s tok1 ] && ! grep -qF "$(cat tok1)" grant.out || fail "token printed although written to a file"
admin "$EP/_admin/calls" | jq -e --arg u "$uuid1" --arg p "$HOST1" '[.calls[] | select(.op == "CreateGrant")] | length == 1' >/dev/null ||
  fail "not one CreateGrant: $(admin "$EP/_admin/calls" | jq -c '[.calls[].op]')"
pass "grant: one CreateGrant; the id printed, the token in a 0600 file"

"$KEYMGR" grants vol1 --json "${KM[@]}" >grants.json
jq -e --arg g "$gid1" --arg p "$HOST1" --arg u "$uuid1" --arg k "$(key_arn "$key1")" '
  length == 1 and .[0].GrantId == $g and .[0].GranteePrincipal == $p
  and .[0].Operations == ["Decrypt"] and .[0].Name == "cryptvol-\($u)"
  and .[0].Constraints == {"EncryptionContextSubset": {"cryptvol:volume": $u}}
  and .[0].wrap == 0 and .[0].key_arn == $k' grants.json >/dev/null ||
  { cat grants.json; fail "grants --json"; }
"$KEYMGR" grants vol1 "${KM[@]}" >grants.out
grep -qE "^0 +$gid1 +Decrypt +cryptvol-$uuid1 +$HOST1$" grants.out || { cat grants.out; fail "grants table"; }
"$KEYMGR" grants vol2 "${KM[@]}" >grants2.out
grep -q "vol2: no grants on $(key_arn "$key1") for volume $uuid2" grants2.out || { cat grants2.out; fail "vol2 has grants"; }
pass "grants lists the volume's grant (Decrypt, constraint on its UUID, named cryptvol-UUID); none for the other volume on the key"

opens "$H1" vol1
refused "$H1" "host1 on vol2 (same key, other volume)" "may not be used with these credentials \(AccessDeniedException" vol2
expect_fail "keymgr verify as host1 on vol2" "AccessDeniedException" as "$H1" "$KEYMGR" verify vol2 "${KM[@]}"
as "$H1" "$KEYMGR" verify vol1 "${KM[@]}" >/dev/null || fail "host1 cannot verify vol1"
pass "host1 (no kms:Decrypt of its own) unlocks vol1 through the grant, and not vol2 on the same key"

# --- propagation: the grant token ----------------------------------------------------
config 3600
"$KEYMGR" grant vol2 --grantee "$HOST2" --reencrypt --token-file tok2 --json "${KM[@]}" >grant2.json
gid2=$(jq -r '.grants[0].grant_id' grant2.json)
jq -e '.grants[0].token_file == "tok2" and (.grants[0] | has("grant_token") | not)' grant2.json >/dev/null ||
  { cat grant2.json; fail "grant --json"; }
"$KEYMGR" grants vol2 --json "${KM[@]}" | jq -e '.[0].Operations == ["Decrypt", "ReEncryptFrom"]' >/dev/null ||
  fail "--reencrypt: not Decrypt and ReEncryptFrom"
refused "$H2" "host2 before the grant propagated, no token" "AccessDeniedException.*or a new grant has not propagated yet.*kms-grant-token=" vol2
clear_calls
opens "$H2" vol2 kms-grant-token=+tok2
admin "$EP/_admin/calls" | jq -e --arg p "$HOST2" '[.calls[] | select(.op == "Decrypt")] | length == 1 and .[0].result == "ok" and .[0].principal == $p' >/dev/null ||
  fail "Decrypt with the token: $(admin "$EP/_admin/calls" | jq -c .calls)"
exec 7<tok2
opens "$H2" vol2 kms-grant-token=-7
exec 7<&-
opens "$H2" vol2 kms-grant-token="$(cat tok2)"
as "$H2" "$KEYMGR" verify vol2 --kms-grant-token +tok2 "${KM[@]}" >/dev/null || fail "keymgr --kms-grant-token"
expect_fail "keymgr without the token" "AccessDeniedException" as "$H2" "$KEYMGR" verify vol2 "${KM[@]}"
refused "$H2" "host2's token on vol1" "AccessDeniedException" vol1 kms-grant-token=+tok2
refused "$H2" "a grant token KMS did not make" "key $(key_arn "$key1") refused the grant token \(InvalidGrantTokenException.*give the token cryptvol-keymgr grant printed" \
  vol2 kms-grant-token=AQIDBAUGBwgJCgsMDQ4P
pass "a grant not yet propagated: host2 unlocks vol2 with kms-grant-token= (+FILE, -FD, literal) and --kms-grant-token, not without; not vol1"
config 0

# --- a running server with a key watch: RevokeGrant revokes, a new grant resumes -------
AWS_ACCESS_KEY_ID=$H1 start_nbd vol1 "${KP[@]}" key-check=1 key-grace=4
checks_after 1
[ "$(key_state)" = unlocked ] || fail "host1's server is not unlocked: $(status_json)"
io_served
t0=$(now_ms)
"$KEYMGR" revoke-grant vol1 "$gid1" "${KM[@]}" >revoke.out || fail "revoke-grant"
grep -q "vol1: revoked grant $gid1 on key $(key_arn "$key1"): $HOST1 can no longer use it for volume $uuid1" revoke.out ||
  { cat revoke.out; fail "revoke-grant's line"; }
ms=$(wait_state revoked "$t0" "$HARD")
io_refused
status_json | jq -e '.cause | test("grant that allowed it was revoked")' >/dev/null ||
  fail "status cause: $(status_json | jq -r .cause)"
grep -q "AccessDeniedException.*grant that allowed it was revoked or retired" "$tmp/nbdkit.log" ||
  fail "nbdkit's log does not say the grant may have been revoked"
pass "RevokeGrant -> the grantee's running server revoked in $ms ms; I/O refused (EPERM); status and log say key policy or grant"
[ "$("$KEYMGR" grants vol1 --json "${KM[@]}" | jq length)" = 0 ] || fail "the revoked grant is still listed"
t0=$(now_ms)
"$KEYMGR" grant vol1 --grantee "$HOST1" "${KM[@]}" >grant3.out || fail "a new grant"
grep -q "grant token: " grant3.out || fail "grant without --token-file does not print the token"
ms=$(wait_state unlocked "$t0" "$HARD")
io_served
pass "a new grant -> served again at the watch's next check ($ms ms)"
stop_nbd

# --- retire: by token (the retiring principal), by id ------------------------------------
"$KEYMGR" grant vol1 --grantee "$HOST2" --retiring-principal "$ADMIN" --token-file tok3 "${KM[@]}" >grant4.out
gid4=$(sed -n 's/.*: grant \([0-9a-f]*\) for .*/\1/p' grant4.out)
"$KEYMGR" grants vol1 --json "${KM[@]}" | jq -e --arg g "$gid4" --arg a "$ADMIN" \
  '[.[] | select(.GrantId == $g)][0].RetiringPrincipal == $a' >/dev/null || fail "retiring principal not in the grant"
"$KEYMGR" retire-grant vol1 --grant-token +tok3 "${KM[@]}" >retire.out || fail "retire-grant --grant-token"
grep -q "vol1: retired grant (given by its token) on key" retire.out || { cat retire.out; fail "retire-grant's line"; }
"$KEYMGR" grants vol1 --json "${KM[@]}" | jq -e --arg g "$gid4" 'map(.GrantId) | index($g) == null' >/dev/null ||
  fail "the retired grant is still listed"
expect_fail "retire a retired grant's token again" "kms RetireGrant for vol1 wrap 0: key .* has no such grant \(it was revoked or retired already\) \(NotFoundException.*list the volume's grants" \
  "$KEYMGR" retire-grant vol1 --grant-token +tok3 "${KM[@]}"
expect_fail "retire vol2's grant through vol1" "grant $gid2 on key .* is not one of vol1's grants: its constraints name volume $uuid2" \
  "$KEYMGR" retire-grant vol1 "$gid2" "${KM[@]}"
"$KEYMGR" retire-grant vol2 "$gid2" --json "${KM[@]}" | jq -e --arg g "$gid2" '.retired == $g' >/dev/null ||
  fail "retire-grant by id"
[ "$("$KEYMGR" grants vol2 --json "${KM[@]}" | jq length)" = 0 ] || fail "vol2's retired grant still listed"
refused "$H2" "host2 after its grant was retired" "AccessDeniedException" vol2 kms-grant-token=+tok2
pass "retire-grant by token (the retiring principal) and by id; another volume's grant refused; a retired grant's token unlocks nothing"

# --- a token file that cannot be written ---------------------------------------------
expect_fail "--token-file in no directory" "cannot write the grant token to nodir/tok: No such file or directory" \
  "$KEYMGR" grant vol1 --grantee "$HOST2" --token-file nodir/tok "${KM[@]}"
grep -qE "grant [0-9a-f]{64} on key .* was made, but its token is lost: revoke it \(revoke-grant vol1 [0-9a-f]{64}\)" "$tmp/err" ||
  { cat "$tmp/err"; fail "the lost token's grant is not named"; }
lost=$(grep -oE 'revoke-grant vol1 [0-9a-f]{64}' "$tmp/err" | cut -d' ' -f3)
"$KEYMGR" revoke-grant vol1 "$lost" "${KM[@]}" >/dev/null || fail "revoking the grant whose token was lost"

# --- --all ---------------------------------------------------------------------------------
kms CreateGrant "{\"KeyId\": \"$key1\", \"GranteePrincipal\": \"$HOST2\", \"Operations\": [\"Decrypt\"]}" >/dev/null
n_mine=$("$KEYMGR" grants vol1 --json "${KM[@]}" | jq length)
n_all=$("$KEYMGR" grants vol1 --all --json "${KM[@]}" | jq length)
[ "$n_all" = $((n_mine + 1)) ] || fail "--all: $n_all grants, the volume's $n_mine"
"$KEYMGR" grants vol1 --all "${KM[@]}" | grep -qE "^0 +[0-9a-f]{64} +Decrypt +- +$HOST2$" ||
  fail "--all does not show the grant without constraints"
pass "grants --all shows every grant on the key, also one that names no volume"

# --- the AWS CLI sees cryptvol's grants, and cryptvol the CLI's ---------------------------
if [ -x /usr/bin/aws ]; then
  awsk () { AWS_CA_BUNDLE=$CA AWS_DEFAULT_REGION=us-east-1 AWS_PAGER='' /usr/bin/aws --endpoint-url "$EP" kms "$@"; }
  "$KEYMGR" grant vol2 --grantee "$HOST1" --retiring-principal "$ADMIN" --token-file tok5 "${KM[@]}" >grant5.out
  gid5=$(sed -n 's/.*: grant \([0-9a-f]*\) for .*/\1/p' grant5.out)
  awsk list-grants --key-id "$(key_arn "$key1")" >cli.json
  jq -e --arg g "$gid5" --arg u "$uuid2" '[.Grants[] | select(.GrantId == $g)][0]
    | .Name == "cryptvol-\($u)" and .Operations == ["Decrypt"]
    and .Constraints.EncryptionContextSubset["cryptvol:volume"] == $u' cli.json >/dev/null ||
    { cat cli.json; fail "aws kms list-grants does not show cryptvol's grant as made"; }
  awsk retire-grant --grant-token "$(cat tok5)" || fail "aws kms retire-grant with cryptvol's token file"
  cgid=$(awsk create-grant --key-id "$(key_arn "$key1")" --grantee-principal "$HOST2" --operations Decrypt \
    --constraints "EncryptionContextEquals={cryptvol:volume=$uuid2}" --query GrantId --output text)
  "$KEYMGR" grants vol2 --json "${KM[@]}" | jq -e --arg g "$cgid" 'map(.GrantId) == [$g]' >/dev/null ||
    fail "cryptvol-keymgr grants does not list (only) the grant the AWS CLI made"
  "$KEYMGR" revoke-grant vol2 "$cgid" "${KM[@]}" >/dev/null || fail "revoke-grant of the CLI's grant"
  [ "$(awsk list-grants --key-id "$(key_arn "$key1")" --query "length(Grants[?GrantId=='$cgid'])")" = 0 ] ||
    fail "the AWS CLI still lists the revoked grant"
  pass "the AWS CLI lists cryptvol's grant as made and retires it by its token file; cryptvol lists and revokes the CLI's grant"
else
  echo "note: /usr/bin/aws is not installed (Debian package awscli); the CLI check did not run"
fi

# --- an endpoint whose listing goes round in a loop ----------------------------------------------
cat >endless.py <<'EOS'
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"Grants": [], "Truncated": True, "NextMarker": "m"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
open(sys.argv[3] + ".tmp", "w").write(str(s.server_address[1]))
import os; os.rename(sys.argv[3] + ".tmp", sys.argv[3])
s.serve_forever()
EOS
"$PY" endless.py "$tmp/ca/server.pem" "$tmp/ca/server.key" endless.port 2>endless.err &
endless=$!
cleanup_hooks+=("kill $endless")
for _ in $(seq 1 200); do [ -s endless.port ] && break; sleep 0.05; done
[ -s endless.port ] || { cat endless.err; fail "the endless endpoint did not start"; }
expect_fail "a listing that never ends" "kms ListGrants for vol1 wrap 0: the answer for marker m gives the same marker for the next page; is the endpoint AWS KMS\?" \
  "$KEYMGR" grants vol1 --kms-endpoint "https://127.0.0.1:$(cat endless.port)" --ca-bundle "$CA"

if grep -sqF -e "$KMS_SECRET" "$tmp/nbdkit.log" "$tmp/aws.log"; then
  fail "the secret access key appears in a log"
fi
if grep -sqF -e "$(cat tok1)" "$tmp/nbdkit.log"; then
  fail "a grant token in nbdkit's log"
fi
finish
