#!/bin/bash
# The data file is truncated while nbdkit serves it from its mapping
# (read-path=map, and the default): reads from several connections at once,
# each with many requests in flight on nbdkit's worker threads, that reach
# past the new end fail with an I/O error, the others read right, and the
# server lives on. Once the file's bytes are written back, every connection
# and nbdcopy read the volume right again. (Not nbdcopy while truncated:
# when it quits on the first error with requests in flight, nbdkit 1.32
# itself aborts in raw_send_socket, `nbdkit file` behind the error filter
# too.) The server says why the failed reads failed. With
# read-path=pread the same reads fail the same way; direct=true with
# read-path=map is refused at start-up.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy
/usr/bin/python3 -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd is not installed"; exit 77; }

new_volume vol 64M
head -c 64M /dev/urandom >data
serve vol keyfile=vol.kek -- nbdcopy data '$uri'

cat >readers.py <<'EOF'
# readers.py URI VOLUME-FILE DATA: the checks, from 4 connections.
import os, random, subprocess, sys, threading
import nbd

uri, path, data_path = sys.argv[1:4]
data = open(data_path, "rb").read()
conns = []
for _ in range(4):
    h = nbd.NBD()
    h.connect_uri(uri)
    conns.append(h)
size = conns[0].get_size()
doff = os.path.getsize(path) - size      # the data area ends the file
cut = size // 2                          # data-area offset of the new end
problems = []

def read_all(h, seed, expect_cut):
    """Many reads in flight on h, on both sides of the cut and across it."""
    rnd = random.Random(seed)
    cmds = []
    for _ in range(200):
        n = rnd.choice([512, 4096, 65536, 1 << 20])
        off = rnd.randrange(0, size - n) // 512 * 512
        buf = nbd.Buffer(n)
        cmds.append((h.aio_pread(buf, off), buf, off, n))
        while h.aio_in_flight() >= 16:
            h.poll(-1)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    failed = 0
    for cookie, buf, off, n in cmds:
        past = expect_cut and off + n > cut
        try:
            h.aio_command_completed(cookie)
            if past:
                problems.append(f"read {n} at {off} past the cut succeeded")
            elif buf.to_bytearray() != data[off:off + n]:
                problems.append(f"read {n} at {off}: wrong data")
        except nbd.Error as e:
            failed += 1
            if not past:
                problems.append(f"read {n} at {off} failed: {e}")
            elif e.errno != "EIO":
                problems.append(f"read {n} at {off}: {e} (want EIO)")
    return failed

def round_(expect_cut):
    fails = [0] * len(conns)
    def run(i):
        fails[i] = read_all(conns[i], i * 7 + expect_cut, expect_cut)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(conns))]
    for t in ts: t.start()
    for t in ts: t.join()
    return sum(fails)

def nbdcopy_ok():
    r = subprocess.run(["nbdcopy", uri, "copy"], capture_output=True)
    return r.returncode == 0 and open("copy", "rb").read() == data

assert round_(False) == 0 and not problems, problems
saved = open(path, "rb").read()[doff + cut:]
os.truncate(path, doff + cut)
failed = round_(True)
assert not problems, problems[:5]
assert failed > 0, "no read reached past the cut"
for h in conns:                          # every connection still answers
    assert h.pread(4096, 0) == data[:4096]
with open(path, "r+b") as f:
    f.seek(doff + cut)
    f.write(saved)
assert round_(False) == 0 and not problems, problems[:5]
assert nbdcopy_ok(), "nbdcopy after the restore"
print(f"{failed} reads past the cut failed with EIO; all others right")
EOF

for rp in map pread; do
  serve vol keyfile=vol.kek read-path=$rp -- /usr/bin/python3 readers.py '$uri' vol data 2>server.err \
    || { cat server.err; fail "read-path=$rp: the checks failed"; }
  grep -q "I/O error\|truncated while served" server.err \
    || { cat server.err; fail "read-path=$rp: the server did not say why reads failed"; }
  pass "read-path=$rp: truncated underneath: EIO past the end, the server lived, reads right after the restore"
done
grep -q "truncated while served" server.err && fail "read-path=pread read from the mapping"
serve vol keyfile=vol.kek -- /usr/bin/python3 readers.py '$uri' vol data 2>server.err \
  || { cat server.err; fail "default read path: the checks failed"; }
grep -q "truncated while served" server.err || { cat server.err; fail "the default does not read from the mapping"; }
pass "the default reads from the mapping, as safely"

if serve vol keyfile=vol.kek direct=true -- true 2>/dev/null; then
  expect_fail "read-path=map with direct=true" "read-path=map needs a regular file" \
    nbdkit -U - "$PLUGIN" vol keyfile=vol.kek direct=true read-path=map --run true
fi
expect_fail "read-path=bogus" "read-path=bogus: expected auto, map or pread" \
  nbdkit -U - "$PLUGIN" vol keyfile=vol.kek read-path=bogus --run true
