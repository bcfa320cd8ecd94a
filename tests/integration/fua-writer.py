#!/usr/bin/python3
"""A client that writes numbered 4 KiB blocks with FUA, for the key-watch tests.

  fua-writer.py write URI BASE NBLOCKS STOPFILE LOG
      Write block n (n = 0, 1, 2, ...) at BASE + (n % NBLOCKS) * 4096 with
      FUA until STOPFILE exists; append "ack n" or "err n ERRNO" to LOG for
      each (line-buffered, so a reader sees each as it happens). After a
      failure, pause 10 ms (pacing only: a refused client should not spin).
  fua-writer.py verify URI BASE NBLOCKS LOG
      Every acknowledged write reads back: each block holds its last
      acknowledged write, or a whole later write that failed (a failed
      write is all or nothing, never torn). Prints the counts.
"""
import errno
import os
import sys
import time

import nbd

BS = 4096


def block(n):
    return (b"%015d\n" % n) * (BS // 16)


def write(uri, base, nblocks, stop, log):
    h = nbd.NBD()
    h.connect_uri(uri)
    assert h.can_fua(), "the server does not offer FUA"
    with open(log, "w", buffering=1) as out:
        n = 0
        while not os.path.exists(stop):
            try:
                h.pwrite(block(n), base + (n % nblocks) * BS, nbd.CMD_FLAG_FUA)
                out.write(f"ack {n}\n")
            except nbd.Error as e:
                out.write(f"err {n} {e.errnum}\n")
                time.sleep(0.01)
            n += 1
    h.shutdown()


def verify(uri, base, nblocks, log):
    acked, failed = {}, {}  # block -> last n acknowledged / failed after it
    nack = nerr = 0
    errnos = set()
    phase = []  # "a"/"e" runs, to see the transitions
    for line in open(log):
        f = line.split()
        n = int(f[1])
        b = n % nblocks
        if f[0] == "ack":
            nack += 1
            acked[b] = n
            failed.pop(b, None)
            if not phase or phase[-1] != "a":
                phase.append("a")
        else:
            nerr += 1
            errnos.add(int(f[2]))
            failed.setdefault(b, []).append(n)
            if not phase or phase[-1] != "e":
                phase.append("e")
    h = nbd.NBD()
    h.connect_uri(uri)
    bad = []
    for b, n in acked.items():
        got = h.pread(BS, base + b * BS)
        if got != block(n) and got not in [block(m) for m in failed.get(b, [])]:
            bad.append((b, n, got[:16]))
    h.shutdown()
    print(f"writes acknowledged {nack}, refused {nerr} (errno {sorted(errnos)}), "
          f"phases {''.join(phase)}, blocks checked {len(acked)}, lost {len(bad)}")
    assert not bad, f"acknowledged writes lost: {bad[:5]}"
    assert errnos <= {errno.EPERM}, f"writes failed with {errnos}, not only EPERM"
    return "".join(phase)


def main():
    mode, uri, base, nblocks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode == "write":
        write(uri, base, nblocks, sys.argv[5], sys.argv[6])
    else:
        phases = verify(uri, base, nblocks, sys.argv[5])
        want = sys.argv[6] if len(sys.argv) > 6 else None
        assert want is None or phases == want, f"phases {phases}, expected {want}"


if __name__ == "__main__":
    main()
