#!/bin/bash
# A stale or foreign header is refused before a sector is served or written,
# in the attached and the detached layout: a backup from before rotate-dek
# given with header=, the old copies written back with dd, the detached
# headers of two volumes sharing a key file swapped, and a header from before
# remove-wrap written back (which would re-admit the removed key). The seal
# sector, not the header, decides (doc/format.md, "Seal sector"); a running
# server refuses to reload such a header; restore-header still works and
# says which removed wraps a backup brings back.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh

"$KEYMGR" genkey k.kek >/dev/null
"$KEYMGR" genkey old.kek >/dev/null
pattern () { printf 'cryptvol rollback test %s\n' "$1" | head -c 4096; }

# serve_ok VOLUME [params]: the volume serves, and reads what was written.
serve_ok () {
  nbdkit -U - "$PLUGIN" "$@" --run 'nbdsh -u "$uri" -c "assert h.pread(4096, 0)[:23] == b\"cryptvol rollback test \""' \
    2>"$tmp/serve.err" || { cat "$tmp/serve.err" >&2; return 1; }
}
# refused WHAT PATTERN VOLUME [params]: nbdkit refuses to serve it, keymgr
# verify too, and the data file is not written.
refused () {
  local what=$1 pat=$2 vol=$3; shift 3
  local before; before=$(sha256sum < "$vol")
  expect_fail "$what: nbdkit" "$pat" nbdkit -U - "$PLUGIN" "$vol" "$@" --run 'nbdsh -u "$uri" -c "h.pwrite(b\"X\" * 4096, 0)"'
  local hdr=() p
  for p in "$@"; do [[ $p == header=* ]] && hdr=(--header "${p#header=}"); done
  expect_fail "$what: keymgr verify" "$pat" "$KEYMGR" verify "$vol" "${hdr[@]}" --keyfile k.kek
  [ "$(sha256sum < "$vol")" = "$before" ] || fail "$what: the data file was written"
}
write_pattern () { # VOLUME [params]
  local vol=$1; shift
  pattern "$vol" > pat
  nbdkit -U - "$PLUGIN" "$vol" "$@" --run 'nbdsh -u "$uri" -c "h.pwrite(open(\"pat\", \"rb\").read().ljust(4096, b\"\\0\"), 0)"'
}
STALE="stale|before a DEK rotation|does not hold the data key"

for layout in attached detached; do
  rm -f v v.hdr v.bak v.rm.bak w w.hdr
  if [ $layout = attached ]; then
    "$KEYMGR" create v --size 8M --wrap file:k.kek --wrap file:old.kek >/dev/null
    hp=(); hk=(); H=v; dd_off=0
  else
    "$KEYMGR" create v --size 8M --detached-header v.hdr --wrap file:k.kek --wrap file:old.kek >/dev/null
    hp=(header=v.hdr); hk=(--header v.hdr); H=v.hdr
  fi
  write_pattern v "${hp[@]}" keyfile=k.kek
  serve_ok v "${hp[@]}" keyfile=k.kek || fail "$layout: fresh volume does not serve"

  # 1. A header from before remove-wrap, written back: the removed key
  # would open the volume again.
  "$KEYMGR" backup-header v "${hk[@]}" v.rm.bak >/dev/null
  "$KEYMGR" remove-wrap v "${hk[@]}" --id 1 --keyfile k.kek >/dev/null
  cp "$H" cur.hdr.save
  dd if=v.rm.bak of="$H" bs=128K count=1 conv=notrunc status=none
  refused "$layout: header from before remove-wrap written back" "$STALE" v "${hp[@]}" keyfile=old.kek
  expect_fail "$layout: the removed key after the rollback" "$STALE" \
    "$KEYMGR" verify v "${hk[@]}" --keyfile old.kek
  dd if=cur.hdr.save of="$H" bs=128K count=1 conv=notrunc status=none
  serve_ok v "${hp[@]}" keyfile=k.kek || fail "$layout: current header no longer serves"

  # 2. A backup from before rotate-dek: given with header=, and written back.
  "$KEYMGR" backup-header v "${hk[@]}" v.bak >/dev/null
  "$KEYMGR" rotate-dek v "${hk[@]}" --keyfile k.kek >/dev/null
  serve_ok v "${hp[@]}" keyfile=k.kek || fail "$layout: rotated volume does not serve"
  refused "$layout: header= a backup from before rotate-dek" "$STALE" v header=v.bak keyfile=k.kek
  cp "$H" cur.hdr.save
  dd if=v.bak of="$H" bs=128K count=1 conv=notrunc status=none
  refused "$layout: old copies written back with dd" "$STALE" v "${hp[@]}" keyfile=k.kek
  dd if=cur.hdr.save of="$H" bs=128K count=1 conv=notrunc status=none
  serve_ok v "${hp[@]}" keyfile=k.kek || fail "$layout: current header no longer serves"
  pass "$layout: every stale header refused, the current one serves"
done

# 3. Two detached volumes sharing a key file, headers swapped.
"$KEYMGR" create w --size 8M --detached-header w.hdr --wrap file:k.kek >/dev/null
write_pattern w header=w.hdr keyfile=k.kek
refused "detached headers swapped (w's header on v)" "another volume" v header=w.hdr keyfile=k.kek
refused "detached headers swapped (v's header on w)" "another volume" w header=v.hdr keyfile=k.kek
serve_ok w header=w.hdr keyfile=k.kek || fail "w does not serve with its own header"

# 4. A seal that lags its header (killed between the two writes) is
# written again by the next open, and the volume serves.
# The fault points of add-wrap's first commit: the header's copy 0, then
# "seal: header committed, seal not written".
CV_FAULT_KILL_AT=2 CV_FAULT_TRACE=1 "$KEYMGR" add-wrap v --header v.hdr \
  --wrap file:old.kek --keyfile k.kek >kill.out 2>&1 && fail "add-wrap was not killed"
grep -q "seal: header committed" kill.out || { cat kill.out; fail "not killed before the seal write"; }
seal_gen () { od -An -j24 -N8 -tu1 v | awk '{g = 0; for (i = 1; i <= 8; i++) g = g * 256 + $i; print g}'; }
hdr_gen () { "$KEYMGR" info v --header v.hdr --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["volume"]["seal"]["generation"])'; }
[ "$(seal_gen)" -lt "$(hdr_gen)" ] || fail "the kill did not leave the seal behind its header"
serve_ok v header=v.hdr keyfile=old.kek || fail "a lagging seal stops the volume"
[ "$(seal_gen)" = "$(hdr_gen)" ] || fail "the lagging seal was not written again"
pass "a seal lagging its header (interrupted commit) is accepted and written again"

# 5. A served volume refuses to reload a header written back from before.
"$KEYMGR" backup-header v --header v.hdr v.bak2 >/dev/null
"$KEYMGR" remove-wrap v --header v.hdr --id 2 --keyfile k.kek >/dev/null
start_nbd v header=v.hdr keyfile=k.kek
cp v.hdr cur.hdr.save
dd if=v.bak2 of=v.hdr bs=128K count=1 conv=notrunc status=none
expect_fail "reload of a header written back" "older than the one being served" \
  "$KEYMGR" reload --control "$CTL"
stop_nbd
cp cur.hdr.save v.hdr

# 6. restore-header of that backup (the operator's choice) works, says the
# removed wrap comes back, and the restored header serves.
"$KEYMGR" restore-header v v.bak2 --header v.hdr --keyfile k.kek 2>restore.err >/dev/null ||
  { cat restore.err; fail "restore-header of a backup of the current DEK"; }
grep -q "brings back wrap 2" restore.err || fail "restore-header did not name the re-admitted wrap"
serve_ok v header=v.hdr keyfile=old.kek || fail "restored header does not serve"
pass "restore-header restores an older backup of the current DEK and names what it re-admits"
