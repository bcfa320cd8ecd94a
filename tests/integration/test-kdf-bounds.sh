#!/bin/bash
# Passphrase KDF parameters are read from the header before anything can
# authenticate them. A header edited to ask for an absurd KDF (4 GiB, 100
# passes: about 14 minutes per attempt) is refused before any key derivation,
# in well under a second, with a message naming the wrap, the parameters, the
# limit and the override; with the override, a wrap over the limit is tried.
# Making a wrap over the limit needs the override too.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh
TAMPER=$CV_BUILD/tools/cv-tamper

printf 'correct horse battery staple' >pass
chmod 600 pass
"$KEYMGR" create pvol --size 8M --wrap passphrase --passphrase-file pass "${FAST_KDF[@]}" >/dev/null


# The finding: m = 4 GiB, t = 100 in the header, checksums fixed.
cp pvol huge
"$TAMPER" huge set-json both wraps.0.kdf.m 4194304
"$TAMPER" huge set-json both wraps.0.kdf.t 100
ms "$KEYMGR" verify huge --passphrase-file pass
[ "$rc" -ne 0 ] || fail "verify of a header asking for 4 GiB x 100 passes succeeded"
grep -Eq 'wrap 0 \(passphrase\): argon2id t=100 m=4194304 KiB p=1 is over the unlock limit \(t <= 10, m <= 1 GiB, p <= 16, m\*t <= 4 GiB-passes\).*--allow-costly-kdf' "$tmp/err" ||
  { cat "$tmp/err"; fail "verify huge: no message naming the wrap, parameters, limit and override"; }
[ "$ms" -lt 1000 ] || fail "refusing the 4 GiB x 100 KDF took $ms ms (must be well under 1 s)"
pass "keymgr verify refuses a 4 GiB x 100 passes KDF in $ms ms: $(grep -m1 -o 'wrap 0.*limit ([^)]*)' "$tmp/err")"

# Every command that unlocks refuses it the same way (add-wrap here).
"$KEYMGR" genkey new.kek >/dev/null
ms "$KEYMGR" add-wrap huge --wrap file:new.kek --passphrase-file pass
[ "$rc" -ne 0 ] && [ "$ms" -lt 1000 ] && grep -q 'over the unlock limit' "$tmp/err" ||
  { cat "$tmp/err"; fail "add-wrap on the 4 GiB x 100 header: rc $rc, $ms ms"; }
pass "keymgr add-wrap refuses it too ($ms ms)"

# The plugin: nbdkit stops before it listens, with the plugin's override named.
start=$(date +%s%N)
expect_fail "nbdkit refuses the 4 GiB x 100 passes KDF" \
  'wrap 0 \(passphrase\): argon2id t=100 m=4194304 KiB.*over the unlock limit.*allow-costly-kdf=true' \
  nbdkit -U - "$PLUGIN" huge passphrase=+pass --run 'touch served'
[ ! -e served ] || fail "nbdkit served the volume with the 4 GiB x 100 KDF"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 3000 ] || fail "nbdkit took $ms ms to refuse the 4 GiB x 100 KDF"

# scrypt: N = 2^21 (2 GiB) is over the limit of 2^20.
"$KEYMGR" create svol --size 8M --wrap passphrase --passphrase-file pass --pbkdf scrypt >/dev/null
cp svol sbig
"$TAMPER" sbig set-json both wraps.0.kdf.n 2097152
ms "$KEYMGR" verify sbig --passphrase-file pass
[ "$rc" -ne 0 ] && [ "$ms" -lt 1000 ] &&
  grep -q 'wrap 0 (passphrase): scrypt N=2097152 r=8 p=1 is over the unlock limit (N <= 1048576)' "$tmp/err" ||
  { cat "$tmp/err"; fail "scrypt N=2^21: rc $rc, $ms ms"; }
pass "scrypt N=2^21 refused in $ms ms"

# Just over the limit (t = 11, cheap at 8 MiB): refused without the override;
# with it the KDF runs, and as the header's t is not the one the wrap was
# made with, the derived key is wrong.
cp pvol t11
"$TAMPER" t11 set-json both wraps.0.kdf.t 11
expect_fail "t=11 without the override" 'argon2id t=11 m=8192 KiB p=1 is over the unlock limit' \
  "$KEYMGR" verify t11 --passphrase-file pass
expect_fail "t=11 with --allow-costly-kdf: tried, wrong key" 'wrong passphrase' \
  "$KEYMGR" verify t11 --passphrase-file pass --allow-costly-kdf
! grep -q 'over the unlock limit' "$tmp/err" || fail "--allow-costly-kdf still refused t=11"

# A real wrap just over the memory limit (1025 MiB, one pass: a few seconds):
# made only with the override, refused at once without it, opened with it by
# keymgr and by the plugin.
expect_fail "create with --pbkdf-memory 1025M" \
  'new passphrase wrap: argon2id t=1 m=1049600 KiB p=2 is over the unlock limit.*--allow-costly-kdf' \
  "$KEYMGR" create big --size 8M --wrap passphrase --passphrase-file pass --pbkdf-memory 1025M --pbkdf-time 1
[ ! -e big ] || fail "a refused create left the volume file behind"
expect_fail "add-wrap of a new passphrase wrap with --pbkdf-time 11" 'new passphrase wrap: argon2id t=11 .*over the unlock limit' \
  "$KEYMGR" add-wrap pvol --wrap passphrase --passphrase-file pass --new-passphrase-file pass --pbkdf-time 11
[ "$("$KEYMGR" list-wraps pvol --json | grep -c '"id"')" -eq 1 ] || fail "a refused add-wrap added a wrap"

"$KEYMGR" create big --size 8M --wrap passphrase --passphrase-file pass --pbkdf-memory 1025M --pbkdf-time 1 \
  --allow-costly-kdf >/dev/null
ms "$KEYMGR" verify big --passphrase-file pass
[ "$rc" -ne 0 ] && [ "$ms" -lt 1000 ] && grep -q 'm=1049600 KiB p=2 is over the unlock limit' "$tmp/err" ||
  { cat "$tmp/err"; fail "1025 MiB wrap without the override: rc $rc, $ms ms"; }
ms "$KEYMGR" verify big --passphrase-file pass --allow-costly-kdf
[ "$rc" -eq 0 ] || { cat "$tmp/err"; fail "1025 MiB wrap with --allow-costly-kdf did not verify"; }
pass "1025 MiB wrap: made and verified with --allow-costly-kdf ($ms ms)"
serve big passphrase=+pass allow-costly-kdf=true -- nbdinfo --size '$uri' >size
[ "$(cat size)" = 8388608 ] || fail "nbdkit with allow-costly-kdf=true did not serve the 1025 MiB wrap"
pass "nbdkit allow-costly-kdf=true serves it"
