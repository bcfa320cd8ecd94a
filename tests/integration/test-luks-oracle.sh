#!/bin/bash
# Independent oracle: our ciphertext is dm-crypt's aes-xts-plain64, not merely
# self-consistent. cryptsetup makes a LUKS1 volume with a known master key;
# cryptvol adopts that key (--import-key) with a detached header, so the LUKS
# header stays in place and nbdkit's own luks filter can still open the file.
# Data written through either must read back identical through the other.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh cryptsetup nbdcopy

head -c 64 /dev/urandom > master.key
printf 'oracle-passphrase' > luks.pass
truncate -s 48M disk.img
cryptsetup luksFormat --type luks1 --batch-mode --cipher aes-xts-plain64 \
  --key-size 512 --hash sha256 --iter-time 10 \
  --volume-key-file master.key --key-file luks.pass disk.img
offset=$(( $(cryptsetup luksDump disk.img | awk '/^Payload offset:/ {print $3}') * 512 ))
[ "$offset" -gt 0 ] || fail "no payload offset in luksDump"
size=$(( $(stat -c %s disk.img) - offset ))

"$KEYMGR" genkey kek >/dev/null
"$KEYMGR" create disk.img --import-key master.key --detached-header disk.hdr \
  --data-offset "$offset" --size "$size" --sector-size 512 --wrap file:kek >/dev/null
pass "adopted the LUKS1 master key (payload offset $offset, $size bytes)"

luks () { nbdkit -U - file disk.img --filter=luks passphrase=+luks.pass --run "$*"; }
cryptvol () { serve disk.img header=disk.hdr keyfile=kek -- "$@"; }

# 1. Written through the luks filter, read through cryptvol.
head -c 8M /dev/urandom > a.bin
luks nbdcopy a.bin '$uri'
cryptvol nbdcopy '$uri' a.out
cmp -n 8M a.out a.bin || fail "luks filter -> cryptvol differs"
pass "data written by nbdkit's luks filter reads back identical through cryptvol"

# 2. Written through cryptvol (also at unaligned offsets), read through luks.
head -c $((5 * 1048576 + 333)) /dev/urandom > b.bin
cat > write.py <<'EOS'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(open("b.bin", "rb").read(), 4097)
h.flush()
EOS
# The luks filter accepts only 512-byte aligned requests.
cat > check.py <<'EOS'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
want = open("b.bin", "rb").read()
got = h.pread((4097 + len(want) + 511) // 512 * 512 - 4096, 4096)
sys.exit(0 if got[1:1 + len(want)] == want else "cryptvol -> luks filter differs")
EOS
cryptvol python3 write.py '$uri'
luks python3 check.py '$uri'
pass "data written by cryptvol reads back identical through nbdkit's luks filter"

# 3. The whole data areas agree.
a=$(luks nbdcopy '$uri' - | sha256sum)
b=$(cryptvol nbdcopy '$uri' - | sha256sum)
[ "$a" = "$b" ] || fail "whole-volume checksums differ: luks $a, cryptvol $b"
pass "whole data area identical through both ($a)"
