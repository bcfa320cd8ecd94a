#!/bin/bash
# A kms wrap authenticates its own metadata through the KMS encryption
# context (doc/kms.md, "The encryption context"), against the local test KMS:
# a new wrap's context holds "cryptvol:wrap", the digest of its id, type,
# ref, created and region (checked here against the documented definition);
# editing any of them (checksums fixed, with or without the stored digest
# fixed too) makes unlock fail as a tampered wrap (exit 3) saying the
# metadata does not match what it was wrapped with; stripping the pair from
# "ctx" does not downgrade; a wrap made before the pair existed still
# unlocks; a KMS-to-KMS rewrap (ReEncrypt, no DEK) makes a new wrap with the
# pair, which a metadata edit breaks the same way, from an old or a new
# source wrap.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/aws-lib.sh"
requires nbdkit nbdsh curl jq openssl
EDIT=("$PY" "$CV_SRCDIR/tests/kms/edit-wrap.py")

account=111122223333
akid=AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+')
mkdir -p state
cat >state/config.json <<EOF
{"account_id": "$account", "regions": ["us-east-1", "us-west-2"],
 "credentials": [{"access_key_id": "$akid", "secret_access_key": "$secret"}]}
EOF
local_aws_start state
local_aws_env
export AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
local_aws_signer "$akid" "$secret"
calls () { admin "$EP/_admin/calls" | jq -r '[.calls[] | "\(.op):\(.result)"] | join(" ")'; }
new_key () { kms CreateKey '{"Description": "cryptvol test"}' | jq -r .KeyMetadata.KeyId; }
arn1=arn:aws:kms:us-east-1:$account:key/$(new_key)
arn2=arn:aws:kms:us-east-1:$account:key/$(new_key)
KM=(--kms-endpoint "$EP" --ca-bundle "$CA")
KP=(kms-endpoint="$EP" ca-bundle="$CA" key-check=0) # no key-watch Decrypt among the calls counted
ALTERED="does not match what it was wrapped with"

wrap () { "$KEYMGR" info "$1" --json | jq -c --argjson id "$2" '.wraps[] | select(.id == $id)'; }
# has_pair VOLUME ID: wrap ID's ctx is exactly the volume's UUID and the
# digest of the wrap's metadata, computed here from doc/kms.md.
has_pair () {
  local w uuid d
  w=$(wrap "$1" "$2")
  uuid=$("$KEYMGR" info "$1" --json | jq -r .volume.uuid)
  d=$("${EDIT[@]}" --digest "$w")
  [[ $d =~ ^v1:[0-9a-f]{32}$ ]] || fail "digest $d"
  jq -e --arg u "$uuid" --arg d "$d" '.ctx == {"cryptvol:volume": $u, "cryptvol:wrap": $d}' \
    <<<"$w" >/dev/null || fail "wrap $2 of $1: ctx is not {volume, wrap: $d}: $w"
}
# verify_fails WHAT VOLUME PATTERN: keymgr verify exits 3 (a tampered
# header) with PATTERN in its message.
verify_fails () {
  local rc=0
  "$KEYMGR" verify "$2" "${KM[@]}" >out 2>err || rc=$?
  [ "$rc" = 3 ] || { cat err; fail "$1: verify exited $rc, not 3"; }
  grep -Eq "$3" err || { cat err; fail "$1: the message does not match /$3/"; }
}

# --- a new wrap (Encrypt) carries its metadata's digest, and unlocks ------
head -c 64 /dev/urandom >dek.bin
"$KEYMGR" create vol --size 8M --import-key dek.bin --wrap "kms:$arn1" "${KM[@]}" >/dev/null
has_pair vol 0
serve vol "${KP[@]}" -- nbdsh -u '$uri' -c 'h.pwrite(b"META" * 1024, 0)'
"$KEYMGR" verify vol "${KM[@]}" >/dev/null || fail "verify of the new wrap"
pass "a new kms wrap's ctx is {cryptvol:volume, cryptvol:wrap: digest of id, type, ref, created, region}; it unlocks"

# --- each metadata edit is refused ------------------------------------------
for e in 'ref "alias/other"' 'created "2020-01-01T00:00:00Z"' 'id 7' 'region "us-west-2"'; do
  read -r member value <<<"$e"
  # The edit alone: the stored digest gives it away before any KMS call.
  cp vol t
  "${EDIT[@]}" t 0 "$member" "$value"
  id=0; [ "$member" = id ] && id=7
  clear_calls
  verify_fails "$member edited" t "kms Decrypt for wrap $id .*: the wrap's metadata .*$ALTERED"
  [ -z "$(calls)" ] || fail "$member edited: KMS was asked: $(calls)"
  # The edit with the stored digest made to match: KMS refuses the context.
  "${EDIT[@]}" t "$id" --fix-digest
  clear_calls
  verify_fails "$member edited, digest fixed" t "InvalidCiphertextException.*$ALTERED"
  [ "$(calls)" = "Decrypt:InvalidCiphertextException" ] || fail "$member: calls $(calls)"
  expect_fail "nbdkit with $member edited" "$ALTERED" nbdkit -U - "$PLUGIN" t "${KP[@]}" --run true
done
pass "ref, created, id or region edited: refused as altered (exit 3), by the digest and by KMS itself"

# Stripping the pair from ctx (to hide an edit) sends the one-pair context
# the blob was not made with: KMS refuses it too.
cp vol t
"${EDIT[@]}" t 0 ctx/cryptvol:wrap --delete
"${EDIT[@]}" t 0 ref '"alias/other"'
clear_calls
verify_fails "cryptvol:wrap stripped from ctx" t "InvalidCiphertextException"
[ "$(calls)" = "Decrypt:InvalidCiphertextException" ] || fail "stripped: calls $(calls)"
pass "cryptvol:wrap removed from ctx: no downgrade, KMS refuses the one-pair context"

# --- a wrap made before the pair existed still unlocks ------------------------
uuid=$("$KEYMGR" info vol --json | jq -r .volume.uuid)
old_blob=$(kms Encrypt "{\"KeyId\": \"$arn1\", \"Plaintext\": \"$(base64 -w0 dek.bin)\",
  \"EncryptionContext\": {\"cryptvol:volume\": \"$uuid\"}}" | jq -r .CiphertextBlob)
cp vol old
"${EDIT[@]}" old 0 blob "\"$old_blob\""
"${EDIT[@]}" old 0 ctx "{\"cryptvol:volume\": \"$uuid\"}"
# ...on a volume made before wrap binding (the binding would refuse the
# changed wrap): binding taken out, the MAC made again with the DEK.
"$CV_BUILD/tools/cv-tamper" old set-json both volume.wrap_binding -
"$CV_BUILD/tools/cv-tamper" old set-json both volume.requirements '["seal"]'
remac old dek.bin
clear_calls
"$KEYMGR" verify old "${KM[@]}" >/dev/null || fail "an old-style wrap does not unlock"
[ "$(calls)" = "Decrypt:ok" ] || fail "old-style unlock: $(calls)"
serve old "${KP[@]}" -- nbdsh -u '$uri' -c 'assert h.pread(4096, 0) == b"META" * 1024'
# ...and given the pair it was not made with, it is refused.
cp old t
"${EDIT[@]}" t 0 --fix-digest
verify_fails "old-style wrap given a cryptvol:wrap pair" t "InvalidCiphertextException"
pass "a wrap with the one-pair context (made before cryptvol:wrap) still unlocks; a pair added to it is refused"

# --- rewrap KMS to KMS: the new wrap carries the pair too ---------------------
for src in vol old; do
  cp "$src" "r-$src"
  clear_calls
  "$KEYMGR" rewrap "r-$src" --id 0 --to "kms:$arn2" "${KM[@]}" >rw.out 2>&1 ||
    { cat rw.out; fail "rewrap of $src"; }
  [ "$(calls)" = "ReEncrypt:ok ReEncrypt:ok" ] || fail "rewrap of $src: $(calls)"
  nid=$(sed -n 's/.* as wrap \([0-9]*\) (re-wrapped inside the key service).*/\1/p' rw.out)
  [ -n "$nid" ] || { cat rw.out; fail "rewrap of $src did not re-wrap inside KMS"; }
  has_pair "r-$src" "$nid"
  serve "r-$src" "${KP[@]}" -- nbdsh -u '$uri' -c 'assert h.pread(4096, 0) == b"META" * 1024'
  cp "r-$src" t
  "${EDIT[@]}" t "$nid" created '"2020-01-01T00:00:00Z"'
  "${EDIT[@]}" t "$nid" --fix-digest
  verify_fails "rewrapped wrap of $src, created edited" t "InvalidCiphertextException.*$ALTERED"
done
pass "rewrap KMS to KMS (ReEncrypt, from an old or a new wrap): the new wrap has the pair, unlocks, and an edit is refused"

# The re-wrapped wrap is pending (made without the DEK) until a commit with
# the key binds it (doc/format.md, "Wrap binding"): upgrade does.
"$KEYMGR" info r-vol | grep -q "added by a KMS re-wrap" || fail "info does not show the pending wrap"
"$KEYMGR" upgrade r-vol "${KM[@]}" | grep -q "wraps sealed as they are now" || fail "upgrade of pending wraps"
! "$KEYMGR" info r-vol | grep -q "added by a KMS re-wrap" || fail "the wrap is still pending after upgrade"
"$KEYMGR" verify r-vol "${KM[@]}" >/dev/null || fail "verify after the pending wrap was sealed"
pass "a wrap added by ReEncrypt is shown pending until upgrade seals it with the key"

# A source wrap with edited metadata is refused by ReEncrypt as by Decrypt.
cp vol t
"${EDIT[@]}" t 0 created '"2020-01-01T00:00:00Z"'
"${EDIT[@]}" t 0 --fix-digest
clear_calls
rc=0
"$KEYMGR" rewrap t --id 0 --to "kms:$arn2" "${KM[@]}" >out 2>err || rc=$?
[ "$rc" = 3 ] && grep -q "kms ReEncrypt for wrap 0.*InvalidCiphertextException.*$ALTERED" err ||
  { cat err; fail "rewrap of an edited wrap: exit $rc"; }
[ "$(calls)" = "ReEncrypt:InvalidCiphertextException" ] || fail "rewrap of an edited wrap: $(calls)"
pass "rewrap of a wrap whose metadata was edited: KMS refuses the source context (exit 3)"
