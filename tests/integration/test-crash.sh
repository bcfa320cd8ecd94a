#!/bin/bash
# Crash safety of the key lifecycle, proven by killing cryptvol-keymgr with
# SIGKILL at every state-changing step (fault points: each header copy
# write, each journal write, each hotzone piece, each commit) of rotate-dek
# and rewrap. After each kill: the volume opens (with the old or the new key)
# and every sector reads back as written before; re-running the command
# completes it, and the data is still intact. Then single header copies are
# corrupted at random and must be recovered from the other copy.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy xargs

# The base volume: 4 MiB of random data under a key file and a passphrase.
"$KEYMGR" genkey a.kek >/dev/null
"$KEYMGR" genkey b.kek >/dev/null
printf 'crash test passphrase' > pass
"$KEYMGR" create base --size 4M --wrap file:a.kek --wrap passphrase \
  --passphrase-file pass "${FAST_KDF[@]}" >/dev/null
head -c 4M /dev/urandom > data
serve base keyfile=a.kek -- nbdcopy data '$uri'
sum=$(sha256sum < data)

ROTATE=(rotate-dek --keyfile a.kek --passphrase-file pass --hotzone 104K)
REWRAP=(rewrap --id 0 --to file:b.kek --keyfile a.kek)

# How many fault points each command passes when it runs to the end.
points () {
  cp --sparse=always base count.img
  CV_FAULT_TRACE=1 "$KEYMGR" "$1" count.img "${@:2}" 2>&1 >/dev/null | grep -c '^fault point'
}
n_rotate=$(points "${ROTATE[@]}")
n_rewrap=$(points "${REWRAP[@]}")
echo "fault points: rotate-dek $n_rotate, rewrap $n_rewrap"
[ "$n_rotate" -gt 100 ] && [ "$n_rewrap" -ge 2 ] || fail "too few fault points"

# One kill: run in its own directory so that two can run at once.
cat > one.sh <<EOS
#!/bin/bash
set -u
kind=\$1 k=\$2
d=$tmp/run-\$kind-\$k; mkdir -p \$d; cd \$d
cp --sparse=always $tmp/base vol
if [ \$kind = rotate ]; then cmd=(${ROTATE[*]}); else cmd=(${REWRAP[*]}); fi
cmd=("\${cmd[@]/#a.kek/$tmp/a.kek}"); cmd=("\${cmd[@]/#file:b.kek/file:$tmp/b.kek}")
cmd=("\${cmd[@]/#pass/$tmp/pass}")
CV_FAULT_KILL_AT=\$k "$KEYMGR" "\${cmd[0]}" vol "\${cmd[@]:1}" >out 2>&1
rc=\$?
[ \$rc = 137 ] || { echo "FAIL \$kind \$k: not killed (exit \$rc)"; exit 0; }
readsum () {
  local key
  for key in $tmp/a.kek $tmp/b.kek; do
    nbdkit -U - "$PLUGIN" vol keyfile=\$key --run 'nbdcopy "\$uri" - | sha256sum' 2>>err && return
  done
  echo none
}
s=\$(readsum)
[ "\$s" = "$sum" ] || { echo "FAIL \$kind \$k: after the kill the volume reads \$s"; exit 0; }
"$KEYMGR" "\${cmd[0]}" vol "\${cmd[@]:1}" >>out 2>&1 ||
  { echo "FAIL \$kind \$k: re-run failed: \$(tail -n 1 out)"; exit 0; }
s=\$(readsum)
[ "\$s" = "$sum" ] || { echo "FAIL \$kind \$k: after the re-run the volume reads \$s"; exit 0; }
if [ \$kind = rotate ] && "$KEYMGR" info vol --json | grep -q '"rotation"'; then
  echo "FAIL \$kind \$k: rotation state left after the re-run"; exit 0
fi
if [ \$kind = rewrap ] && "$KEYMGR" verify vol --keyfile $tmp/a.kek >/dev/null 2>&1; then
  echo "FAIL \$kind \$k: the old key still opens after the rewrap completed"; exit 0
fi
echo "ok \$kind \$k"
rm -rf \$d
EOS
chmod +x one.sh
{ seq 1 "$n_rotate" | sed 's/^/rotate /'; seq 1 "$n_rewrap" | sed 's/^/rewrap /'; } |
  xargs -P 2 -L 1 ./one.sh > results 2>kill-noise.log
kills=$(wc -l < results)
failures=$(grep -c '^FAIL' results || true)
grep '^FAIL' results | head -20 || true
echo "kill points: $kills, failures: $failures"
[ "$kills" -eq $((n_rotate + n_rewrap)) ] || fail "not every kill point ran"
[ "$kills" -ge 200 ] || fail "fewer than 200 kill points"
[ "$failures" -eq 0 ] || fail "$failures kill points left a bad volume"
pass "$kills kill points over rotate-dek and rewrap: every one opened, read back and completed"

# One header copy corrupted at random (a byte in the binary header or the
# JSON): the volume opens from the other copy, says so, and reads back.
for i in $(seq 1 20); do
  cp --sparse=always base c.img
  copy=$((RANDOM % 2))
  at=$((copy * 65536 + RANDOM % 4200))
  printf "\\x$(printf %02x $((RANDOM % 255 + 1)))" | dd of=c.img bs=1 seek=$at conv=notrunc status=none
  s=$(serve c.img keyfile=a.kek -- nbdcopy '$uri' - 2>err | sha256sum)
  [ "$s" = "$sum" ] || { cat err; fail "corrupt byte at $at: data does not read back"; }
done
pass "20 random single-copy corruptions: each recovered from the other copy"
