#!/bin/bash
# fio's NBD engine (ioengine=nbd, libnbd) on cryptvol: four jobs, each on its
# own 16 MiB of the volume, random writes of 512 bytes to 64 KiB (below the
# 4096-byte sector: read-modify-write) with crc32c verify headers, verified by
# fio right away; then the server is restarted and a second fio run
# (verify_only) checks every block again; a final run over a 512-byte-sector
# volume does the same with several queued requests per job.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/vm/helpers.sh"
requires nbdkit fio
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "SKIP: this fio has no nbd engine"; exit 77; }

# fio_job URI [extra options...]: a job file for four verified writers.
fio_job () {
  local uri=$1; shift
  cat <<EOF
[global]
ioengine=nbd
uri=$uri
rw=randwrite
bsrange=512-64k
size=16m
offset_increment=16m
numjobs=4
iodepth=8
verify=crc32c
verify_fatal=1
randseed=4242
$(printf '%s\n' "$@")
[writers]
EOF
}

# check_fio LOG WHAT: fio ran four jobs without errors.
check_fio () {
  grep -q 'err= 0' "$1" || { cat "$1"; fail "$2: fio reported an error"; }
  [ "$(grep -c 'err= 0' "$1")" = 4 ] || { cat "$1"; fail "$2: not four clean jobs"; }
  ! grep -qi 'verify.*bad\|bad magic\|crc32c: verify failed' "$1" || { cat "$1"; fail "$2: verify failed"; }
}

for ss in 4096 512; do
  new_volume vol$ss 64M --sector-size $ss
  start_server fio$ss unix "$PLUGIN" vol$ss keyfile=vol$ss.kek
  uri="nbd+unix:///?socket=$tmp/fio$ss.sock"
  fio_job "$uri" do_verify=1 >write.fio
  fio write.fio >write$ss.log 2>&1 || { cat write$ss.log; fail "sector $ss: fio write+verify failed"; }
  check_fio write$ss.log "sector $ss write+verify"
  stop_server fio$ss
  pass "sector $ss: fio nbd engine, 4 jobs, random writes 512B-64K verified (crc32c)"

  start_server fio$ss unix "$PLUGIN" vol$ss keyfile=vol$ss.kek
  fio_job "$uri" verify_only=1 >verify.fio
  fio verify.fio >verify$ss.log 2>&1 || { cat verify$ss.log; fail "sector $ss: fio verify after restart failed"; }
  check_fio verify$ss.log "sector $ss verify_only"
  grep -qE 'READ: bw=[^,]*, [^,]*, io=([1-9][0-9.]*[KMG]i?B)' verify$ss.log ||
    { cat verify$ss.log; fail "sector $ss: verify_only read nothing"; }
  stop_server fio$ss
  pass "sector $ss: every block verified again by fio after a server restart"
done

# The verifier is not blind: one changed ciphertext byte in the data area
# (a whole decrypted sector changes) makes fio's verify fail.
new_volume bad 64M
start_server bad unix "$PLUGIN" bad keyfile=bad.kek
uri="nbd+unix:///?socket=$tmp/bad.sock"
fio_job "$uri" do_verify=0 size=4m >w.fio
fio w.fio >w.log 2>&1 || { cat w.log; fail "fio write failed"; }
stop_server bad
# The data area is the last 64 MiB of the file; flip a byte 1 MiB into it.
off=$(( $(stat -c %s bad) - (64 << 20) + (1 << 20) + 100 ))
# (inverted, so that it changes whatever it was)
python3 -c 'import sys
with open("bad", "r+b") as f:
    f.seek(int(sys.argv[1])); b = f.read(1); f.seek(int(sys.argv[1])); f.write(bytes([b[0] ^ 0xff]))' "$off"
start_server bad unix "$PLUGIN" bad keyfile=bad.kek
fio_job "$uri" verify_only=1 size=4m >v.fio
if fio v.fio >v.log 2>&1; then
  cat v.log; fail "fio verify passed over a corrupted sector"
fi
grep -qE "verify type mismatch|bad magic|crc32c.*(mismatch|verify failed)|verify: bad" v.log || { cat v.log; fail "fio failed for another reason than verify"; }
stop_server bad
pass "a corrupted ciphertext sector is caught by fio's verify"
