# Random I/O against an NBD export with a shadow copy, using libnbd:
#   python3 tests/integration/iotest.py URI MODE ARGS...
# Modes:
#   random SEED N STATE     zero the export, then N random writes, zeroes and
#                           reads (aligned and unaligned, 1 byte to 32 MiB),
#                           every read checked against the shadow; the
#                           shadow's sha256 is saved to STATE
#   checksum STATE          the export's sha256 must equal the one in STATE
#   part I OF SEED          write part I of OF disjoint ranges in 512-byte
#                           pieces at unaligned offsets, in random order
#   parts OF SEED           check all parts written by "part"
import hashlib
import random
import sys

import nbd

h = nbd.NBD()
h.connect_uri(sys.argv[1])
args = sys.argv[2:]
mode = args[0]
size = h.get_size()
MiB = 1 << 20


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def pread_all(n, off):
    # nbdsh requests are limited to 32 MiB.
    out = bytearray()
    while n:
        k = min(n, 32 * MiB)
        out += h.pread(k, off)
        off += k
        n -= k
    return bytes(out)


def digest_export():
    d = hashlib.sha256()
    for off in range(0, size, 32 * MiB):
        d.update(h.pread(min(32 * MiB, size - off), off))
    return d.hexdigest()


def pick_len(rng):
    kind = rng.random()
    if kind < 0.3:
        return rng.randint(1, 4096)  # small, often inside one sector
    if kind < 0.8:
        return rng.choice([512, 4096, 8192, 65536, 1 << 20]) * rng.randint(1, 4)
    if kind < 0.95:
        return rng.randint(1, 4 * MiB)
    return 32 * MiB  # the largest request a client may send


def part_range(i, of):
    # Ranges meet at unaligned offsets, so neighbours share edge sectors.
    step = (size - 8192) // of
    start = 1000 + i * step
    return start, step


if mode == "random":
    seed, n, state = int(args[1]), int(args[2]), args[3]
    rng = random.Random(seed)
    print("seed", seed, "size", size)
    for off in range(0, size, 32 * MiB):
        h.zero(min(32 * MiB, size - off), off)
    shadow = bytearray(size)
    for i in range(n):
        ln = min(pick_len(rng), size)
        align = rng.choice([1, 512, 4096])
        off = rng.randrange(0, size - ln + 1) // align * align
        op = rng.random()
        if op < 0.45:
            data = rng.randbytes(ln)
            fua = nbd.CMD_FLAG_FUA if rng.random() < 0.1 else 0
            h.pwrite(data, off, fua)
            shadow[off:off + ln] = data
        elif op < 0.55:
            h.zero(ln, off)
            shadow[off:off + ln] = bytes(ln)
        elif op < 0.6:
            h.flush()
        else:
            got = h.pread(ln, off)
            if got != shadow[off:off + ln]:
                bad = next(j for j in range(ln) if got[j] != shadow[off + j])
                fail("op %d: read of %d at %d differs at byte %d" % (i, ln, off, off + bad))
    if pread_all(size, 0) != shadow:
        fail("whole-export read differs from the shadow")
    h.flush()
    with open(state, "w") as f:
        f.write(hashlib.sha256(shadow).hexdigest())
    print("ok: %d random operations verified" % n)

elif mode == "checksum":
    want = open(args[1]).read().strip()
    got = digest_export()
    if got != want:
        fail("export sha256 %s, expected %s" % (got, want))
    print("ok: export sha256 matches", got)

elif mode == "part":
    i, of, seed = int(args[1]), int(args[2]), int(args[3])
    start, step = part_range(i, of)
    data = random.Random(seed * 1000 + i).randbytes(step)
    pieces = list(range(0, step, 512))
    random.Random(i).shuffle(pieces)
    for p in pieces:
        h.pwrite(data[p:p + 512], start + p)
    h.flush()
    print("ok: part %d written" % i)

elif mode == "parts":
    of, seed = int(args[1]), int(args[2])
    for i in range(of):
        start, step = part_range(i, of)
        want = random.Random(seed * 1000 + i).randbytes(step)
        if pread_all(step, start) != want:
            fail("part %d does not read back as written" % i)
    print("ok: %d parts verified" % of)

else:
    fail("unknown mode " + mode)
