#!/bin/bash
# Make a SoftHSM2 test token for the pkcs11 tests: make-token.sh DIR
#
# DIR gets softhsm2.conf (SOFTHSM2_CONF points at it), tokens/, the PIN files
# pin (user), so-pin and wrong-pin (mode 0600), p11-keytool (built from
# p11-keytool.c) and env, a file to source that sets SOFTHSM2_CONF, P11_MODULE,
# P11_TOKEN (the token label) and P11_KEYTOOL. The token "cv-test" holds:
#
#   aes-kek     id 01  AES-256, sensitive, never extractable, wrap/unwrap
#   rsa-kek     id 02  RSA-3072 key pair, private key sensitive, decrypt
#   dup-kek     id 03  AES-256 } two keys with one label: object=dup-kek is
#   dup-kek     id 04  AES-256 } ambiguous
#   nowrap-kek  id 05  AES-256 without wrap, unwrap, encrypt, decrypt
#
# Exit 77 (skip) if softhsm2 or opensc is not installed. These PINs are test
# values for a throwaway token; they are passed to softhsm2-util and
# pkcs11-tool on their command lines, which is not how a real token's PIN
# should ever be handled (see doc/pkcs11.md).
set -euo pipefail

dir=${1:?usage: make-token.sh DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
label=cv-test
user_pin=cv-user-1234
so_pin=cv-so-87654321

for c in softhsm2-util pkcs11-tool cc; do
  command -v "$c" >/dev/null 2>&1 || { echo "SKIP: $c is not installed"; exit 77; }
done
module=
for m in /usr/lib/softhsm/libsofthsm2.so \
         /usr/lib/"$(uname -m)"-linux-gnu/softhsm/libsofthsm2.so \
         /usr/local/lib/softhsm/libsofthsm2.so; do
  [ -r "$m" ] && { module=$m; break; }
done
[ -n "$module" ] || { echo "SKIP: libsofthsm2.so not found"; exit 77; }

mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
cat > "$dir/softhsm2.conf" <<EOF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
export SOFTHSM2_CONF=$dir/softhsm2.conf
umask 077
printf '%s\n' "$user_pin" > "$dir/pin"
printf '%s\n' "$so_pin" > "$dir/so-pin"
printf '%s\n' "not-the-pin" > "$dir/wrong-pin"

cc -O1 -o "$dir/p11-keytool" "$here/p11-keytool.c" \
  $(pkg-config --cflags p11-kit-1) -ldl

softhsm2-util --init-token --free --label "$label" \
  --so-pin "$so_pin" --pin "$user_pin" >/dev/null

p11 () { pkcs11-tool --module "$module" --token-label "$label" --login \
           --pin "$user_pin" "$@" >/dev/null 2>&1; }
keytool () { "$dir/p11-keytool" "$module" "$label" "$dir/pin" "$@"; }

keytool genaes aes-kek 01 wrap=1 unwrap=1 encrypt=0 decrypt=0
p11 --keypairgen --key-type rsa:3072 --label rsa-kek --id 02 \
  --usage-decrypt --sensitive
keytool genaes dup-kek 03 wrap=1 unwrap=1
keytool genaes dup-kek 04 wrap=1 unwrap=1
keytool genaes nowrap-kek 05 wrap=0 unwrap=0 encrypt=0 decrypt=0

cat > "$dir/env" <<EOF
export SOFTHSM2_CONF=$dir/softhsm2.conf
P11_MODULE=$module
P11_TOKEN=$label
P11_KEYTOOL=$dir/p11-keytool
EOF
