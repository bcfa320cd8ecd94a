#!/usr/bin/python3
"""A client that writes random data into a region of a volume and keeps a
shadow copy of the whole volume, for the online rotation test.

  shadow-writer.py URI SHADOW BASE LEN STOPFILE READY [SEED]
      Until STOPFILE exists: write random bytes (4 KiB to 256 KiB, 4 KiB
      aligned, or a quarter of the time 1 byte to 12 KiB anywhere; some with
      FUA) at a random offset of [BASE, BASE + LEN) and,
      once the server acknowledged it, the same bytes at the same offset of
      the file SHADOW (which held the volume's contents at the start).
      Every third request is instead a read of a random range of the region,
      compared with SHADOW; every 64th a flush. READY is created after the
      first acknowledged write. Exits 1 at the first read that differs from
      the shadow, 2 on a failed request; prints the counts.
"""
import os
import random
import sys

import nbd

KIB4 = 4096


def main():
    uri, shadow, base, length, stop, ready = sys.argv[1:7]
    base, length = int(base), int(length)
    rnd = random.Random(int(sys.argv[7]) if len(sys.argv) > 7 else 1)
    h = nbd.NBD()
    h.connect_uri(uri)
    writes = reads = flushes = nbytes = 0
    with open(shadow, "r+b") as sh:
        while not os.path.exists(stop):
            if rnd.random() < 0.25:  # any bytes: the server reads, modifies, writes
                n = rnd.randint(1, 3 * KIB4)
                off = base + rnd.randrange(0, length - n + 1)
            else:
                n = rnd.randint(1, 64) * KIB4
                off = base + rnd.randrange(0, (length - n) // KIB4 + 1) * KIB4
            i = writes + reads + flushes
            try:
                if i % 64 == 63:
                    h.flush()
                    flushes += 1
                elif i % 3 == 2:
                    got = h.pread(n, off)
                    sh.seek(off)
                    want = sh.read(n)
                    if got != want:
                        bad = next(k for k in range(n) if got[k] != want[k])
                        print(f"read of {n} bytes at {off}: byte {off + bad} differs "
                              f"from the shadow (after {writes} writes)")
                        sys.exit(1)
                    reads += 1
                else:
                    data = os.urandom(n)
                    h.pwrite(data, off, nbd.CMD_FLAG_FUA if rnd.random() < 0.25 else 0)
                    sh.seek(off)
                    sh.write(data)
                    writes += 1
                    nbytes += n
                    if writes == 1:
                        open(ready, "w").close()
            except nbd.Error as e:
                print(f"request {i} at {off} ({n} bytes) failed: {e}")
                sys.exit(2)
    h.shutdown()
    print(f"shadow writer: {writes} writes ({nbytes >> 20} MiB), {reads} reads "
          f"checked, {flushes} flushes")


if __name__ == "__main__":
    main()
