#!/bin/bash
# make-seeds.sh KEYMGR OUTDIR: seeds for fuzz-header and fuzz-unlock, taken
# from volumes cryptvol-keymgr makes with the credentials fuzz-unlock holds
# (the key file of bytes 0..31, the passphrase "cryptvol fuzz passphrase"):
# a file wrap; file and passphrase wraps (argon2id with tiny parameters, and
# the same wrap edited to scrypt N=16); a detached header; 512-byte sectors;
# a rotation in progress (rotate-dek killed after its first step); a header
# commit interrupted between the copies; three wraps after add-wrap and
# remove-wrap; the copies of two volumes in one header area. Each header
# area is written in the compact form of tests/fuzz/hdr-input.h: both
# copies, each copy alone, copy 0 for fuzz-unlock without the key file.
# `make fuzz` runs it into build-fuzz/seeds (build-fuzz/seeds/.done).
set -euo pipefail

keymgr=$(realpath "$1")
out=$2
mkdir -p "$out"
out=$(realpath "$out")
work=$(mktemp -d "${TMPDIR:-/tmp}/cv-seeds.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

key=$work/fuzz.kek
pass=$work/pass
printf "$(printf '\\x%02x' $(seq 0 31))" >"$key"
printf 'cryptvol fuzz passphrase' >"$pass"
chmod 600 "$key" "$pass"
tiny=(--pbkdf-memory 8K --pbkdf-time 1 --pbkdf-parallel 1)
km () { "$keymgr" "$@" >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }; }

# compact NAME AREA-FILE: write the seeds of one header area.
compact () {
  python3 - "$out/$1" "$2" <<'EOF'
import struct, sys
name, path = sys.argv[1], sys.argv[2]
area = open(path, 'rb').read(131072)
SEP = b'\xff\xfe--copy1--\xfe\xff'
def copy(i):
    c = area[i * 65536:(i + 1) * 65536]
    n = struct.unpack('>I', c[12:16])[0]
    return c[:80] + c[4096:4096 + min(n, 61440)]
c0, c1 = copy(0), copy(1)
# First byte 0x10: fuzz-unlock holds no key file (the passphrase wraps).
for suffix, data in (('', b'\0' + c0 + SEP + c1), ('-primary', b'\0' + c0),
                     ('-secondary', b'\0' + bytes(80) + SEP + c1),
                     ('-nokeyfile', b'\x10' + c0)):
    open(name + suffix, 'wb').write(data)
if b'"argon2id"' in c0:  # the same passphrase wrap with scrypt N=16
    import json, re
    head, text = c0[:80], json.loads(c0[80:])
    for w in text['wraps']:
        if w.get('type') == 'passphrase':
            w['kdf'] = {'n': 16, 'p': 1, 'r': 8, 'salt': w['kdf']['salt'],
                        'type': 'scrypt'}
    t = json.dumps(text, separators=(',', ':'), sort_keys=True).encode()
    open(name + '-scrypt', 'wb').write(b'\x10' + head + t)
EOF
}

km create file.img --size 1M --wrap "file:$key"
compact file file.img

km create pass.img --size 1M --wrap "file:$key" --wrap passphrase \
  --passphrase-file "$pass" "${tiny[@]}"
compact passphrase pass.img

km create data.img --size 1M --wrap "file:$key" --detached-header hdr.img
compact detached hdr.img

km create s512.img --size 1M --sector-size 512 --wrap passphrase \
  --passphrase-file "$pass" "${tiny[@]}"
compact sector512 s512.img

# Three wraps, one removed: ids 0, 2, 3 and next_wrap_id 4.
km create wraps.img --size 1M --wrap "file:$key"
for w in passphrase passphrase passphrase; do
  km add-wrap wraps.img --wrap "$w" --keyfile "$key" \
    --new-passphrase-file "$pass" "${tiny[@]}"
done
km remove-wrap wraps.img --id 1 --keyfile "$key"
compact wraps wraps.img

# Copies of two volumes: copy 0 of one, copy 1 of another (both valid).
head -c 65536 file.img >foreign.img
dd if=pass.img bs=65536 skip=1 count=1 status=none >>foreign.img
compact foreign foreign.img

# A commit killed between the copies: copy 0 newer than copy 1.
cp file.img torn.img
(CV_FAULT_KILL_AT=1 "$keymgr" add-wrap torn.img --wrap passphrase \
  --keyfile "$key" --new-passphrase-file "$pass" "${tiny[@]}" || true) \
  >/dev/null 2>&1 || true
compact torn torn.img

# A DEK rotation in progress: rotate-dek killed at its first committed step.
cp pass.img rot.img
n=$(CV_FAULT_TRACE=1 "$keymgr" rotate-dek pass.img --keyfile "$key" \
      --passphrase-file "$pass" 2>&1 >/dev/null |
    sed -n 's/^fault point \([0-9]*\): rotate: step committed$/\1/p' | head -n 1)
if [ -n "$n" ]; then
  (CV_FAULT_KILL_AT=$n "$keymgr" rotate-dek rot.img --keyfile "$key" \
    --passphrase-file "$pass" || true) >/dev/null 2>&1
  compact rotating rot.img
fi

ls "$out" | wc -l | sed 's/$/ seeds/'
